//! HDF5 files: our writers (the authors' layouts, DATA.md) and readers that also load the
//! authors' original files and PDEBench files. Keys are found by scanning.
//!
//! In memory every split is `[N, T, C, spatial..]` f32, with per-trajectory parameters.
//! On disk: 1D `pde_{T}-{X}` (N, T, X) under `train`/`valid`/`test`; 2D `states` (N, C, H, W, T)
//! under `train`/`val`/`test`; GEPS 1D `states` (N, C, X, T) under `train`/`val`/`test` (the rank
//! of `states` tells the two apart); PDEBench `tensor` (N, T, X) with `x-coordinate`,
//! `t-coordinate`.

use std::collections::{BTreeMap, BTreeSet};
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
    /// GEPS 1D: `states` (N, C, X, T), channels first and time last like the 2D layout.
    Geps1D,
    /// PDEBench `tensor`.
    PdeBench,
}

impl Layout {
    /// The layout's name and its axes on disk, e.g. ``GEPS 1D `states` (N, C, X, T)``.
    pub fn name(&self) -> String {
        match self {
            Layout::OneD { key } => format!("1D `{key}` (N, T, X)"),
            Layout::TwoD => "2D `states` (N, C, H, W, T)".into(),
            Layout::Geps1D => "GEPS 1D `states` (N, C, X, T)".into(),
            Layout::PdeBench => "PDEBench `tensor` (N, T, X)".into(),
        }
    }

    /// The shape on disk of trajectories of in-memory shape `[N, T, C, spatial..]`.
    pub fn stored_shape(&self, shape: &[usize]) -> Vec<usize> {
        let (head, sp) = shape.split_at(shape.len().min(3));
        match (self, head) {
            (Layout::TwoD | Layout::Geps1D, [n, t, c]) => [&[*n, *c][..], sp, &[*t]].concat(),
            (Layout::OneD { .. } | Layout::PdeBench, [n, t, _]) => [&[*n, *t][..], sp].concat(),
            _ => shape.to_vec(),
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// The most channels a `states` layout may hold: a longer channel axis means the axes are in
/// another order than (N, C, space.., T).
pub const MAX_CHANNELS: usize = 8;

/// A file's splits (by group name: `train`, `valid`, `val`, `test`, or `data` for PDEBench) and
/// its root attributes (numbers and strings, as text).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub splits: BTreeMap<String, (Layout, Trajectories)>,
    pub attrs: BTreeMap<String, String>,
    /// Coordinates, when the file has them.
    pub x: Option<Vec<f64>>,
    pub t: Option<Vec<f64>>,
    /// Splits whose environments come from the file's `env` data set (the others are
    /// positional: trajectory i in environment ⌊i/10⌋).
    pub env_from_file: BTreeSet<String>,
}

impl Loaded {
    /// What `enma inspect` prints: root attributes, then per split its layout, shapes, value
    /// statistics, environments (and where they come from), seeds and parameter ranges.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for (k, v) in &self.attrs {
            let short: String = v.chars().take(100).collect();
            let _ = writeln!(out, "  @{k} = {short}{}", if v.chars().count() > 100 { " ..." } else { "" });
        }
        let range = |v: &mut dyn Iterator<Item = f64>| {
            v.fold(None, |acc: Option<(f64, f64)>, x| Some(acc.map_or((x, x), |(a, b)| (a.min(x), b.max(x)))))
        };
        for (group, (layout, t)) in &self.splits {
            let _ = writeln!(out, "  /{group}: {layout}", layout = layout.name());
            let _ = writeln!(
                out,
                "    stored {:?} -> [N, T, C, space..] = {:?}: {} trajectories of {} frames, {} channel(s), {} points",
                layout.stored_shape(&t.shape),
                t.shape,
                t.n(),
                t.frames(),
                t.channels(),
                t.spatial().iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" x ")
            );
            let (mut sum, mut sq) = (0.0, 0.0);
            for &v in &t.data {
                sum += v as f64;
                sq += (v as f64) * (v as f64);
            }
            if let Some((lo, hi)) = range(&mut t.data.iter().map(|&v| v as f64)) {
                let n = t.data.len() as f64;
                let mean = sum / n;
                let std = (sq / n - mean * mean).max(0.0).sqrt();
                let _ = writeln!(out, "    values: min {lo:.4e}, max {hi:.4e}, mean {mean:.4e}, std {std:.4e}");
            }
            let mut per_env: BTreeMap<i64, usize> = BTreeMap::new();
            for &e in &t.env {
                *per_env.entry(e).or_default() += 1;
            }
            let source = if self.env_from_file.contains(group) {
                "from the file's `env`"
            } else {
                "by file order (trajectory i in environment i / 10; the file has no `env`)"
            };
            let sizes = range(&mut per_env.values().map(|&v| v as f64)).unwrap_or((0.0, 0.0));
            let ids = match (per_env.keys().next(), per_env.keys().next_back()) {
                (Some(a), Some(b)) => format!("ids {a} to {b}"),
                _ => "none".into(),
            };
            let each = if sizes.0 == sizes.1 {
                format!("{} trajectories each", sizes.0)
            } else {
                format!("{} to {} trajectories each", sizes.0, sizes.1)
            };
            let _ = writeln!(out, "    environments: {} ({ids}), {each}, {source}", per_env.len());
            if let Some((a, b)) = t.seed.as_ref().and_then(|s| range(&mut s.iter().map(|&v| v as f64))) {
                let _ = writeln!(out, "    seed: {a} to {b}");
            }
            for (name, v) in &t.params {
                match range(&mut v.iter().copied()) {
                    Some((a, b)) => {
                        let _ = writeln!(out, "    {name}: [{a:.6}, {b:.6}]");
                    }
                    None => {
                        let _ = writeln!(out, "    {name}: (empty)");
                    }
                }
            }
        }
        out
    }
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
    let mut loaded =
        Loaded { splits: BTreeMap::new(), attrs: BTreeMap::new(), x: None, t: None, env_from_file: BTreeSet::new() };
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
        let key = if let Some(k) = names.iter().find(|n| n.starts_with("pde_")) {
            k.clone()
        } else if names.iter().any(|n| n == "states") {
            "states".to_string()
        } else {
            continue;
        };
        let ds = g.dataset(&key).map_err(e)?;
        let shape = ds.shape();
        let what = format!("{}: /{gname}/{key}", path.display());
        // the layout from the key and the rank, checked before the data are read
        let layout = if key == "states" {
            states_layout(&what, &shape)?
        } else if shape.len() == 3 {
            Layout::OneD { key: key.clone() }
        } else {
            return Err(Error::invalid("HDF5", format!("{what} should be (N, T, X), got {shape:?}")));
        };
        let raw = read_f32(path, &ds, &key)?;
        let (tshape, data) = match &layout {
            Layout::TwoD | Layout::Geps1D => {
                // (N, C, space.., T) → (N, T, C, space..)
                let (n, c, t) = (shape[0], shape[1], shape[shape.len() - 1]);
                let space = &shape[2..shape.len() - 1];
                let data = time_last_to_canonical(&raw, n, c, space.iter().product(), t);
                ([&[n, t, c][..], space].concat(), data)
            }
            _ => (vec![shape[0], shape[1], 1, shape[2]], raw),
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
            if m == "env" {
                // the environments decide which trajectories are each other's context: a
                // malformed `env` is an error, not a silent fall-back to file order
                let v = read_numbers(&d).filter(|v| v.len() == n && d.shape().first() == Some(&n));
                let Some(v) = v else {
                    return Err(Error::invalid(
                        "HDF5",
                        format!(
                            "{}: /{gname}/env should hold one integer environment id per trajectory ({n} numbers, \
                             shape [{n}]), got shape {:?}; fix it, or delete it to group trajectories by 10 in file \
                             order",
                            path.display(),
                            d.shape()
                        ),
                    ));
                };
                env = Some(v.iter().map(|&x| x as i64).collect());
                continue;
            }
            if d.shape() != [n] {
                continue;
            }
            let Some(v) = read_numbers(&d) else { continue };
            if m == "seed" {
                seed = Some(v.iter().map(|&x| x as i64).collect());
            } else {
                params.insert(m.clone(), v);
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
        if env.is_some() {
            loaded.env_from_file.insert(gname.clone());
        }
        let tr = Trajectories {
            shape: tshape,
            data,
            params,
            env: env.unwrap_or_else(|| (0..n as i64).map(|i| i / 10).collect()),
            seed,
        };
        tr.check_finite(&what)?;
        loaded.splits.insert(gname.clone(), (layout, tr));
    }
    if loaded.splits.is_empty() {
        return Err(Error::invalid(
            "HDF5",
            format!(
                "{}: no known layout (expected groups train/valid/val/test holding `pde_{{T}}-{{X}}` (N, T, X), \
                 `states` (N, C, X, T) or `states` (N, C, H, W, T), or a PDEBench `tensor`); found {}",
                path.display(),
                if seen.is_empty() { "nothing".to_string() } else { seen.join("; ") }
            ),
        ));
    }
    Ok(loaded)
}

/// The layout of a `states` data set of `shape` (`what` names it in errors): rank 4 is GEPS 1D
/// (N, C, X, T), rank 5 is 2D (N, C, H, W, T); both hold 1 to [`MAX_CHANNELS`] channels and no
/// empty axis but N.
fn states_layout(what: &str, shape: &[usize]) -> Result<Layout> {
    const EXPECTED: &str = "`states` is (N, C, X, T) in the GEPS 1D layout or (N, C, H, W, T) in the 2D layout \
                            (channels first, time last)";
    let layout = match shape.len() {
        4 => Layout::Geps1D,
        5 => Layout::TwoD,
        r => {
            return Err(Error::invalid(
                "HDF5",
                format!(
                    "{what} has shape {shape:?} (rank {r}), which fits no layout: {EXPECTED}; rewrite it in one \
                     of them, or as `pde_{{T}}-{{X}}` (N, T, X) for 1D data"
                ),
            ));
        }
    };
    let c = shape[1];
    if c == 0 {
        return Err(Error::invalid(
            "HDF5",
            format!("{what} has shape {shape:?}: the channel axis of {} is empty; {EXPECTED}", layout.name()),
        ));
    }
    if c > MAX_CHANNELS {
        return Err(Error::invalid(
            "HDF5",
            format!(
                "{what} has shape {shape:?}: read as {} its channel axis would hold {c} channels (at most \
                 {MAX_CHANNELS} expected), so its axes are probably in another order; {EXPECTED}: transpose it \
                 to one of them",
                layout.name()
            ),
        ));
    }
    if let Some(k) = (2..shape.len()).find(|&k| shape[k] == 0) {
        return Err(Error::invalid(
            "HDF5",
            format!("{what} has shape {shape:?}: axis {k} of {} is empty; {EXPECTED}", layout.name()),
        ));
    }
    Ok(layout)
}

/// (N, C, P, T) → (N, T, C, P), where P is the product of the spatial axes.
fn time_last_to_canonical(raw: &[f32], n: usize, c: usize, points: usize, t: usize) -> Vec<f32> {
    let mut out = vec![0f32; raw.len()];
    for i in 0..n {
        for ci in 0..c {
            for p in 0..points {
                let src = ((i * c + ci) * points + p) * t;
                for (ti, v) in raw[src..src + t].iter().enumerate() {
                    out[((i * t + ti) * c + ci) * points + p] = *v;
                }
            }
        }
    }
    out
}
