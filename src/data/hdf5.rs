//! HDF5 files: our writers (the authors' layouts, DATA.md) and readers that also load the
//! authors' original files and PDEBench files. Keys are found by scanning.
//!
//! In memory every split is `[N, T, C, spatial..]` f32, with per-trajectory parameters.
//! On disk: 1D `pde_{T}-{X}` (N, T, X) under `train`/`valid`/`test`; 2D `states` (N, C, H, W, T)
//! under `train`/`val`/`test`; PDEBench `tensor` (N, T, X) with `x-coordinate`, `t-coordinate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdf5_metno as h5;

use crate::error::{Error, Result};

/// One split of trajectories in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectories {
    /// `[N, T, C, spatial..]`.
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    /// Per-trajectory parameters by name (each of length N).
    pub params: BTreeMap<String, Vec<f64>>,
    /// Environment of each trajectory (positional ⌊i/10⌋ when the file has none).
    pub env: Vec<i64>,
    /// Seed stream of each trajectory, when the file records it.
    pub seed: Option<Vec<i64>>,
}

impl Trajectories {
    pub fn n(&self) -> usize {
        self.shape[0]
    }
    pub fn frames(&self) -> usize {
        self.shape[1]
    }
    pub fn channels(&self) -> usize {
        self.shape[2]
    }
    pub fn spatial(&self) -> &[usize] {
        &self.shape[3..]
    }
    /// Keeps the first `n` trajectories (all when `n` is 0 or at least N).
    pub fn truncate(&mut self, n: usize) {
        if n == 0 || n >= self.n() {
            return;
        }
        self.data.truncate(n * self.stride());
        self.shape[0] = n;
        self.env.truncate(n);
        for v in self.params.values_mut() {
            v.truncate(n);
        }
        if let Some(s) = &mut self.seed {
            s.truncate(n);
        }
    }

    /// Values per trajectory.
    pub fn stride(&self) -> usize {
        self.shape[1..].iter().product()
    }
    pub fn trajectory(&self, i: usize) -> &[f32] {
        let s = self.stride();
        &self.data[i * s..(i + 1) * s]
    }

    /// Fails naming the first trajectory that holds NaN or Inf.
    pub fn check_finite(&self, what: &str) -> Result<()> {
        let s = self.stride().max(1);
        if let Some(i) = self.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(
                what,
                format!("trajectory {} holds {} (value {} of it)", i / s, self.data[i], i % s),
            ));
        }
        Ok(())
    }
}

/// Which layout a split was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// `pde_{T}-{X}` (N, T, X).
    OneD { key: String },
    /// `states` (N, C, H, W, T).
    TwoD,
    /// PDEBench `tensor`.
    PdeBench,
}

/// A file's splits (by group name: `train`, `valid`, `val`, `test`, or `data` for PDEBench) and
/// its root attributes (numbers and strings, as text).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub splits: BTreeMap<String, (Layout, Trajectories)>,
    pub attrs: BTreeMap<String, String>,
    /// Coordinates, when the file has them.
    pub x: Option<Vec<f64>>,
    pub t: Option<Vec<f64>>,
}

fn h5err(path: &Path, e: h5::Error) -> Error {
    Error::invalid("HDF5", format!("{}: {e}", path.display()))
}

/// What to write next to the data.
#[derive(Debug, Clone, Default)]
pub struct FileAttrs {
    pub strings: Vec<(String, String)>,
    pub numbers: Vec<(String, f64)>,
    pub arrays: Vec<(String, Vec<f64>)>,
}

/// The temporary name a file is written under before it is renamed into place.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".partial-{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `split` under group `group` of a new file at `path` (2D data when the trajectories
/// have two spatial axes), atomically: a crash leaves no half-written file under `path`.
pub fn write(path: &Path, group: &str, split: &Trajectories, attrs: &FileAttrs) -> Result<()> {
    let tmp = temp_path(path);
    let result = write_inner(&tmp, group, split, attrs);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })
}

fn write_inner(path: &Path, group: &str, s: &Trajectories, attrs: &FileAttrs) -> Result<()> {
    let e = |err| h5err(path, err);
    let file = h5::File::with_options().with_fcpl(|p| p.obj_track_times(false)).create(path).map_err(e)?;
    let g = file.create_group_builder().obj_track_times(false).create(group).map_err(e)?;
    let (n, t, c) = (s.shape[0], s.shape[1], s.shape[2]);
    let sp = &s.shape[3..];
    match sp.len() {
        1 => {
            if c != 1 {
                return Err(Error::invalid("HDF5 write", format!("the 1D layout holds one channel, got {c}")));
            }
            let key = format!("pde_{t}-{}", sp[0]);
            let ds = g
                .new_dataset::<f32>()
                .with_dcpl(|p| p.obj_track_times(false))
                .shape([n, t, sp[0]])
                .create(key.as_str())
                .map_err(e)?;
            ds.write_raw(&s.data).map_err(e)?;
        }
        2 => {
            // (N, T, C, H, W) → (N, C, H, W, T)
            let (h, w) = (sp[0], sp[1]);
            let mut out = vec![0f32; s.data.len()];
            for i in 0..n {
                for ti in 0..t {
                    for ci in 0..c {
                        for y in 0..h {
                            for x in 0..w {
                                let src = (((i * t + ti) * c + ci) * h + y) * w + x;
                                let dst = (((i * c + ci) * h + y) * w + x) * t + ti;
                                out[dst] = s.data[src];
                            }
                        }
                    }
                }
            }
            let ds = g
                .new_dataset::<f32>()
                .with_dcpl(|p| p.obj_track_times(false))
                .shape([n, c, h, w, t])
                .create("states")
                .map_err(e)?;
            ds.write_raw(&out).map_err(e)?;
        }
        d => return Err(Error::invalid("HDF5 write", format!("{d} spatial axes are not supported (1 or 2)"))),
    }
    for (name, v) in &s.params {
        let ds = g
            .new_dataset::<f64>()
            .with_dcpl(|p| p.obj_track_times(false))
            .shape([v.len()])
            .create(name.as_str())
            .map_err(e)?;
        ds.write_raw(v).map_err(e)?;
    }
    let env: Vec<i32> = s.env.iter().map(|&v| v as i32).collect();
    g.new_dataset::<i32>()
        .with_dcpl(|p| p.obj_track_times(false))
        .shape([n])
        .create("env")
        .map_err(e)?
        .write_raw(&env)
        .map_err(e)?;
    if let Some(seed) = &s.seed {
        g.new_dataset::<i64>()
            .with_dcpl(|p| p.obj_track_times(false))
            .shape([n])
            .create("seed")
            .map_err(e)?
            .write_raw(seed)
            .map_err(e)?;
    }
    for (k, v) in &attrs.strings {
        let val: h5::types::VarLenUnicode =
            v.parse().map_err(|_| Error::invalid("HDF5 write", format!("attribute {k} is not valid text")))?;
        file.new_attr::<h5::types::VarLenUnicode>().create(k.as_str()).map_err(e)?.write_scalar(&val).map_err(e)?;
    }
    for (k, v) in &attrs.numbers {
        file.new_attr::<f64>().create(k.as_str()).map_err(e)?.write_scalar(v).map_err(e)?;
    }
    for (k, v) in &attrs.arrays {
        file.new_attr::<f64>().shape([v.len()]).create(k.as_str()).map_err(e)?.write_raw(v).map_err(e)?;
    }
    file.flush().map_err(e)?;
    Ok(())
}

const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Fails unless `path` starts with the HDF5 signature (at 0, 512, 1024, ... as the format allows).
fn check_signature(path: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e| Error::Io { path: path.display().to_string(), source: e };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut off = 0u64;
    while off + 8 <= len {
        let mut buf = [0u8; 8];
        f.seek(SeekFrom::Start(off)).map_err(io)?;
        f.read_exact(&mut buf).map_err(io)?;
        if &buf == SIGNATURE {
            return Ok(());
        }
        off = if off == 0 { 512 } else { off * 2 };
    }
    Err(Error::invalid("HDF5", format!("{} is not an HDF5 file (no HDF5 signature)", path.display())))
}

fn read_f32(path: &Path, ds: &h5::Dataset, name: &str) -> Result<Vec<f32>> {
    let dt = ds.dtype().map_err(|e| h5err(path, e))?;
    if dt.is::<f32>() {
        ds.read_raw::<f32>().map_err(|e| h5err(path, e))
    } else if dt.is::<f64>() {
        Ok(ds.read_raw::<f64>().map_err(|e| h5err(path, e))?.into_iter().map(|v| v as f32).collect())
    } else {
        Err(Error::invalid("HDF5", format!("{}: dataset `{name}` is not float32 or float64", path.display())))
    }
}

fn read_numbers(ds: &h5::Dataset) -> Option<Vec<f64>> {
    let dt = ds.dtype().ok()?;
    if dt.is::<f64>() || dt.is::<f32>() || dt.is::<i64>() || dt.is::<i32>() || dt.is::<u32>() || dt.is::<u8>() {
        ds.read_raw::<f64>().ok()
    } else {
        None
    }
}

fn attr_numbers(a: &h5::Attribute) -> Option<Vec<f64>> {
    let dt = a.dtype().ok()?;
    if dt.is::<f64>() || dt.is::<f32>() || dt.is::<i64>() || dt.is::<i32>() { a.read_raw::<f64>().ok() } else { None }
}

fn attr_text(a: &h5::Attribute) -> Option<String> {
    if let Ok(s) = a.read_scalar::<h5::types::VarLenUnicode>() {
        return Some(s.to_string());
    }
    if let Ok(s) = a.read_scalar::<h5::types::VarLenAscii>() {
        return Some(s.to_string());
    }
    attr_numbers(a).map(|v| if v.len() == 1 { v[0].to_string() } else { format!("{v:?}") })
}

/// Reads every split of a file in any supported layout.
pub fn read(path: &Path) -> Result<Loaded> {
    check_signature(path)?;
    let e = |err| h5err(path, err);
    let file = h5::File::open(path).map_err(e)?;
    let mut loaded = Loaded { splits: BTreeMap::new(), attrs: BTreeMap::new(), x: None, t: None };
    for name in file.attr_names().map_err(e)? {
        if let Some(v) = file.attr(&name).ok().and_then(|a| attr_text(&a)) {
            loaded.attrs.insert(name.clone(), v);
        }
        if name == "x" || name == "t" {
            if let Some(v) = file.attr(&name).ok().and_then(|a| attr_numbers(&a)) {
                if name == "x" { loaded.x = Some(v) } else { loaded.t = Some(v) }
            }
        }
    }
    let members = file.member_names().map_err(e)?;
    // PDEBench: `tensor` at the root
    if members.iter().any(|m| m == "tensor") {
        let ds = file.dataset("tensor").map_err(e)?;
        let shape = ds.shape();
        if shape.len() != 3 {
            return Err(Error::invalid(
                "HDF5",
                format!("{}: PDEBench `tensor` should be (N, T, X), got {shape:?}", path.display()),
            ));
        }
        let data = read_f32(path, &ds, "tensor")?;
        loaded.x = file.dataset("x-coordinate").ok().and_then(|d| read_numbers(&d));
        loaded.t = file.dataset("t-coordinate").ok().and_then(|d| read_numbers(&d));
        let n = shape[0];
        let tr = Trajectories {
            shape: vec![n, shape[1], 1, shape[2]],
            data,
            params: BTreeMap::new(),
            env: (0..n as i64).map(|i| i / 10).collect(),
            seed: None,
        };
        tr.check_finite(&format!("{}: tensor", path.display()))?;
        loaded.splits.insert("data".into(), (Layout::PdeBench, tr));
        return Ok(loaded);
    }
    let mut seen = Vec::new();
    for gname in &members {
        let Ok(g) = file.group(gname) else {
            seen.push(format!("/{gname} (dataset)"));
            continue;
        };
        let names = g.member_names().map_err(e)?;
        seen.push(format!("/{gname}: [{}]", names.join(", ")));
        let one_d = names.iter().find(|n| n.starts_with("pde_"));
        let (layout, key) = if let Some(k) = one_d {
            (Layout::OneD { key: k.clone() }, k.clone())
        } else if names.iter().any(|n| n == "states") {
            (Layout::TwoD, "states".to_string())
        } else {
            continue;
        };
        let ds = g.dataset(&key).map_err(e)?;
        let shape = ds.shape();
        let raw = read_f32(path, &ds, &key)?;
        let (tshape, data) = match &layout {
            Layout::OneD { .. } => {
                if shape.len() != 3 {
                    return Err(Error::invalid(
                        "HDF5",
                        format!("{}: /{gname}/{key} should be (N, T, X), got {shape:?}", path.display()),
                    ));
                }
                (vec![shape[0], shape[1], 1, shape[2]], raw)
            }
            _ => {
                if shape.len() != 5 {
                    return Err(Error::invalid(
                        "HDF5",
                        format!("{}: /{gname}/states should be (N, C, H, W, T), got {shape:?}", path.display()),
                    ));
                }
                let (n, c, h, w, t) = (shape[0], shape[1], shape[2], shape[3], shape[4]);
                let mut out = vec![0f32; raw.len()];
                for i in 0..n {
                    for ci in 0..c {
                        for y in 0..h {
                            for x in 0..w {
                                for ti in 0..t {
                                    out[(((i * t + ti) * c + ci) * h + y) * w + x] =
                                        raw[(((i * c + ci) * h + y) * w + x) * t + ti];
                                }
                            }
                        }
                    }
                }
                (vec![n, t, c, h, w], out)
            }
        };
        let n = tshape[0];
        let mut params = BTreeMap::new();
        let mut env = None;
        let mut seed = None;
        for m in &names {
            if *m == key {
                continue;
            }
            let Ok(d) = g.dataset(m) else { continue };
            if d.shape() != [n] {
                continue;
            }
            let Some(v) = read_numbers(&d) else { continue };
            match m.as_str() {
                "env" => env = Some(v.iter().map(|&x| x as i64).collect()),
                "seed" => seed = Some(v.iter().map(|&x| x as i64).collect()),
                _ => {
                    params.insert(m.clone(), v);
                }
            }
        }
        // MP-PDE style: parameters as attributes of the data set or the group
        for holder in [
            ds.attr_names().unwrap_or_default().into_iter().map(|a| ds.attr(&a)).collect::<Vec<_>>(),
            g.attr_names().unwrap_or_default().into_iter().map(|a| g.attr(&a)).collect(),
        ] {
            for a in holder.into_iter().flatten() {
                let aname = a.name().rsplit('/').next().unwrap_or_default().to_string();
                if let Some(v) = attr_numbers(&a) {
                    if v.len() == n && !params.contains_key(&aname) {
                        params.insert(aname, v);
                    }
                }
            }
        }
        let tr = Trajectories {
            shape: tshape,
            data,
            params,
            env: env.unwrap_or_else(|| (0..n as i64).map(|i| i / 10).collect()),
            seed,
        };
        tr.check_finite(&format!("{}: /{gname}/{key}", path.display()))?;
        loaded.splits.insert(gname.clone(), (layout, tr));
    }
    if loaded.splits.is_empty() {
        return Err(Error::invalid(
            "HDF5",
            format!(
                "{}: no known layout (expected groups train/valid/val/test holding `pde_{{T}}-{{X}}` or `states`, or a \
                 PDEBench `tensor`); found {}",
                path.display(),
                if seen.is_empty() { "nothing".to_string() } else { seen.join("; ") }
            ),
        ));
    }
    Ok(loaded)
}
