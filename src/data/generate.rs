//! Generation of the benchmark files: presets, reproducible seeds, parallel solving across
//! trajectories, sharding by environment and merging of shards.
//!
//! Streams: environment parameters come from Philox(key, 16·env), trajectory j of that
//! environment from Philox(key, 16·env + 1 + j), with key = mix(seed, dataset, split). So an
//! environment's bytes do not depend on which shard or thread produced it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::hdf5::{self, FileAttrs, Trajectories};
use super::pde::advection::Advection;
use super::pde::combined::Combined;
use super::pde::grayscott::GrayScott;
use super::pde::vorticity::Vorticity;
use super::pde::wave::Wave;
use super::pde::{Pde, Split};
use crate::error::{Error, Result};
use crate::ops::random::Philox;

/// Trajectories per environment (DATA.md).
pub const PER_ENV: usize = 10;
pub const GENERATOR_VERSION: &str = "enma-data-1";

/// The five benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum PdeName {
    Advection,
    Combined,
    Wave,
    GrayScott,
    Vorticity,
}

impl PdeName {
    pub const ALL: [PdeName; 5] =
        [PdeName::Advection, PdeName::Combined, PdeName::Wave, PdeName::GrayScott, PdeName::Vorticity];

    pub fn name(self) -> &'static str {
        match self {
            PdeName::Advection => "advection",
            PdeName::Combined => "combined",
            PdeName::Wave => "wave",
            PdeName::GrayScott => "gray-scott",
            PdeName::Vorticity => "vorticity",
        }
    }

    pub fn parse(s: &str) -> Result<PdeName> {
        let k = s.trim().to_ascii_lowercase().replace('_', "-");
        PdeName::ALL
            .into_iter()
            .find(|d| {
                d.name() == k
                    || (k == "grayscott" && *d == PdeName::GrayScott)
                    || (k == "gs" && *d == PdeName::GrayScott)
            })
            .ok_or_else(|| {
                Error::invalid(
                    "dataset",
                    format!("unknown dataset `{s}`; choose one of advection, combined, wave, gray-scott, vorticity"),
                )
            })
    }

    pub fn is_2d(self) -> bool {
        matches!(self, PdeName::Wave | PdeName::GrayScott | PdeName::Vorticity)
    }

    /// Group name of a split in this dataset's files.
    pub fn group(self, split: Split) -> &'static str {
        match split {
            Split::Train => "train",
            Split::InD | Split::OutD => "test",
        }
    }

    fn id(self) -> u64 {
        self as u64 + 1
    }
}

/// Data sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Preset {
    Tiny,
    Small,
    Paper,
}

impl Preset {
    pub fn parse(s: &str) -> Result<Preset> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tiny" => Ok(Preset::Tiny),
            "small" => Ok(Preset::Small),
            "paper" => Ok(Preset::Paper),
            _ => Err(Error::invalid("preset", format!("unknown preset `{s}`; choose tiny, small or paper"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Small => "small",
            Preset::Paper => "paper",
        }
    }
}

/// Options of one generation run.
#[derive(Debug, Clone)]
pub struct GenConfig {
    pub dataset: PdeName,
    pub preset: Preset,
    pub seed: u64,
    /// Keep the full solver resolution (1D sets only).
    pub full: bool,
    /// Gray–Scott diffusion as printed in the paper (0.102, 0.204) instead of (0.204, 0.102).
    pub gs_as_printed: bool,
    /// Override the vorticity simulation grid.
    pub vorticity_grid: Option<usize>,
}

impl GenConfig {
    pub fn new(dataset: PdeName, preset: Preset, seed: u64) -> GenConfig {
        GenConfig { dataset, preset, seed, full: false, gs_as_printed: false, vorticity_grid: None }
    }

    /// Environments of a split.
    pub fn envs(&self, split: Split) -> usize {
        match (self.preset, split, self.dataset.is_2d()) {
            (Preset::Paper, Split::Train, _) => 1200,
            (Preset::Paper, Split::InD, _) => 120,
            (Preset::Paper, Split::OutD, _) => 12,
            (Preset::Small, Split::Train, _) => 120,
            (Preset::Small, _, _) => 12,
            (Preset::Tiny, Split::Train, false) => 40,
            (Preset::Tiny, Split::InD, false) => 10,
            (Preset::Tiny, Split::OutD, false) => 4,
            (Preset::Tiny, Split::Train, true) => 8,
            (Preset::Tiny, _, true) => 2,
        }
    }

    pub fn pde(&self) -> Box<dyn Pde> {
        match self.dataset {
            PdeName::Advection => Box::new(Advection { terms: 5, full: self.full }),
            PdeName::Combined => Box::new(Combined { terms: 5, substeps: 10, full: self.full }),
            PdeName::Wave => Box::new(Wave),
            PdeName::GrayScott => {
                Box::new(GrayScott { diffusion: if self.gs_as_printed { (0.102, 0.204) } else { (0.204, 0.102) } })
            }
            PdeName::Vorticity => {
                let n = self.vorticity_grid.unwrap_or(match self.preset {
                    Preset::Tiny => 128,
                    Preset::Small => 256,
                    Preset::Paper => 512,
                });
                Box::new(Vorticity { n })
            }
        }
    }

    fn key(&self, split: Split) -> u64 {
        let mut h = self.seed ^ 0x9E37_79B9_7F4A_7C15;
        for v in [self.dataset.id(), split.id() + 1] {
            h = (h ^ v).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            h ^= h >> 29;
        }
        h
    }

    /// File name of a split (`<dataset>_<split>.h5`, `.shard-i-of-n` before the extension).
    pub fn file_name(&self, split: Split, shard: Option<(usize, usize)>) -> String {
        match shard {
            None => format!("{}_{}.h5", self.dataset.name(), split.name()),
            Some((i, n)) => format!("{}_{}.shard-{i}-of-{n}.h5", self.dataset.name(), split.name()),
        }
    }
}

/// Environments of shard `i` of `n` (contiguous blocks).
pub fn shard_range(envs: usize, shard: Option<(usize, usize)>) -> std::ops::Range<usize> {
    match shard {
        None => 0..envs,
        Some((i, n)) => (i * envs / n)..((i + 1) * envs / n),
    }
}

/// Generates environments `envs` of a split in parallel; `progress` is called once per
/// finished trajectory (from worker threads).
pub fn generate_split(
    cfg: &GenConfig,
    split: Split,
    envs: std::ops::Range<usize>,
    progress: &(dyn Fn() + Sync),
) -> Result<Trajectories> {
    let pde = cfg.pde();
    let spec = pde.spec();
    let key = cfg.key(split);
    let env_params: Vec<Vec<f64>> =
        envs.clone().map(|e| pde.sample_params(split, &mut Philox::new(key, 16 * e as u64))).collect();
    let jobs: Vec<(usize, usize)> = envs.clone().flat_map(|e| (0..PER_ENV).map(move |j| (e, j))).collect();
    let results: Vec<Result<Vec<f32>>> = jobs
        .par_iter()
        .map(|&(e, j)| {
            let mut rng = Philox::new(key, 16 * e as u64 + 1 + j as u64);
            let r = pde.simulate(&env_params[e - envs.start], &mut rng).map_err(|err| {
                Error::invalid(
                    "generate",
                    format!("{} {} env {e} trajectory {j}: {err}", cfg.dataset.name(), split.name()),
                )
            });
            progress();
            r
        })
        .collect();
    let n = jobs.len();
    let mut data = Vec::with_capacity(n * spec.values_per_trajectory());
    for r in results {
        data.extend(r?);
    }
    let mut params = BTreeMap::new();
    for (pi, name) in spec.params.iter().enumerate() {
        let v: Vec<f64> = jobs.iter().map(|&(e, _)| env_params[e - envs.start][pi]).collect();
        if name == &"delta" && split != Split::OutD {
            continue; // the δ term exists only out of distribution
        }
        params.insert(name.to_string(), v);
    }
    let mut shape = vec![n, spec.frames, spec.channels];
    shape.extend(&spec.spatial);
    Ok(Trajectories {
        shape,
        data,
        params,
        env: jobs.iter().map(|&(e, _)| e as i64).collect(),
        seed: Some(jobs.iter().map(|&(e, j)| (16 * e + 1 + j) as i64).collect()),
    })
}

const STRING_ATTRS: [&str; 7] = ["dataset", "generator_version", "solver", "preset", "split", "seed_base", "seed_key"];
const NUMBER_ATTRS: [&str; 5] = ["dt_internal", "env_start", "env_end", "env_total", "trajectories_per_env"];

/// The attributes written with a split.
pub fn file_attrs(cfg: &GenConfig, split: Split, envs: std::ops::Range<usize>) -> FileAttrs {
    let spec = cfg.pde().spec();
    FileAttrs {
        strings: vec![
            ("dataset".into(), cfg.dataset.name().into()),
            ("generator_version".into(), GENERATOR_VERSION.into()),
            ("solver".into(), spec.solver.clone()),
            ("preset".into(), cfg.preset.name().into()),
            ("split".into(), split.name().into()),
            ("seed_base".into(), cfg.seed.to_string()),
            ("seed_key".into(), cfg.key(split).to_string()),
        ],
        numbers: vec![
            ("dt_internal".into(), spec.dt_internal),
            ("env_start".into(), envs.start as f64),
            ("env_end".into(), envs.end as f64),
            ("env_total".into(), cfg.envs(split) as f64),
            ("trajectories_per_env".into(), PER_ENV as f64),
        ],
        arrays: vec![
            ("domain".into(), spec.domain.clone()),
            ("x".into(), spec.x.clone()),
            ("t".into(), spec.t.clone()),
        ],
    }
}

/// Generates and writes one split (or one shard of it); returns the file written.
pub fn write_split(
    cfg: &GenConfig,
    split: Split,
    out: &Path,
    shard: Option<(usize, usize)>,
    progress: &(dyn Fn() + Sync),
) -> Result<PathBuf> {
    if let Some((i, n)) = shard {
        if n == 0 || i >= n {
            return Err(Error::invalid("shard", format!("shard {i}/{n}: need 0 <= i < n")));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| Error::Io { path: out.display().to_string(), source: e })?;
    let envs = shard_range(cfg.envs(split), shard);
    let data = generate_split(cfg, split, envs.clone(), progress)?;
    let path = out.join(cfg.file_name(split, shard));
    hdf5::write(&path, cfg.dataset.group(split), &data, &file_attrs(cfg, split, envs))?;
    Ok(path)
}

/// Joins shard files of one split into `out`, checking that they are of one run and cover every
/// environment exactly once.
pub fn merge(shards: &[PathBuf], out: &Path) -> Result<()> {
    if shards.is_empty() {
        return Err(Error::invalid("merge", "no shard files given"));
    }
    let mut parts = Vec::new();
    for p in shards {
        let l = hdf5::read(p)?;
        let num = |k: &str| -> Result<usize> {
            l.attrs.get(k).and_then(|v| v.parse::<f64>().ok()).map(|v| v as usize).ok_or_else(|| {
                Error::invalid(
                    "merge",
                    format!("{} has no `{k}` attribute: not a shard written by `enma generate`", p.display()),
                )
            })
        };
        let (start, end, total) = (num("env_start")?, num("env_end")?, num("env_total")?);
        parts.push((start, end, total, p.clone(), l));
    }
    parts.sort_by_key(|p| p.0);
    let first = &parts[0].4;
    let same = ["dataset", "split", "preset", "seed_base", "generator_version"];
    let mut at = 0;
    for (start, end, total, path, l) in &parts {
        for k in same {
            if l.attrs.get(k) != first.attrs.get(k) {
                return Err(Error::invalid(
                    "merge",
                    format!("{} differs in `{k}` from the other shards", path.display()),
                ));
            }
        }
        if *start != at {
            return Err(Error::invalid(
                "merge",
                format!("environments {at}..{start} are missing (next shard {})", path.display()),
            ));
        }
        if *total != parts[0].2 {
            return Err(Error::invalid(
                "merge",
                format!("{} belongs to a run of {total} environments", path.display()),
            ));
        }
        at = *end;
    }
    if at != parts[0].2 {
        return Err(Error::invalid("merge", format!("environments {at}..{} are missing", parts[0].2)));
    }
    let (group, _) = first
        .splits
        .iter()
        .next()
        .map(|(g, v)| (g.clone(), v.0.clone()))
        .ok_or_else(|| Error::invalid("merge", "empty shard"))?;
    let mut merged: Option<Trajectories> = None;
    for (_, _, _, path, l) in &parts {
        let (_, t) = l
            .splits
            .get(&group)
            .ok_or_else(|| Error::invalid("merge", format!("{} has no group `{group}`", path.display())))?;
        match &mut merged {
            None => merged = Some(t.clone()),
            Some(m) => {
                if m.shape[1..] != t.shape[1..] {
                    return Err(Error::shape("merge", &m.shape, &t.shape, "trajectory shapes differ between shards"));
                }
                m.shape[0] += t.shape[0];
                m.data.extend_from_slice(&t.data);
                m.env.extend_from_slice(&t.env);
                if let (Some(a), Some(b)) = (&mut m.seed, &t.seed) {
                    a.extend_from_slice(b);
                }
                for (k, v) in &t.params {
                    m.params.entry(k.clone()).or_default().extend_from_slice(v);
                }
            }
        }
    }
    let merged = merged.expect("at least one shard");
    // the attributes of the unsharded file, in the order `file_attrs` writes them
    let mut attrs = FileAttrs::default();
    for k in STRING_ATTRS {
        let v =
            first.attrs.get(k).ok_or_else(|| Error::invalid("merge", format!("the shards have no `{k}` attribute")))?;
        attrs.strings.push((k.to_string(), v.clone()));
    }
    for k in NUMBER_ATTRS {
        let v = match k {
            "env_start" => 0.0,
            "env_end" => at as f64,
            _ => first
                .attrs
                .get(k)
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| Error::invalid("merge", format!("the shards have no `{k}` attribute")))?,
        };
        attrs.numbers.push((k.to_string(), v));
    }
    attrs.arrays = hdf5_arrays(&parts[0].3)?;
    hdf5::write(out, &group, &merged, &attrs)
}

/// The array attributes (`domain`, `x`, `t`) of a file, in writing order.
fn hdf5_arrays(path: &Path) -> Result<Vec<(String, Vec<f64>)>> {
    let f = hdf5_metno::File::open(path).map_err(|e| Error::invalid("merge", format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for k in ["domain", "x", "t"] {
        if let Ok(a) = f.attr(k) {
            if let Ok(v) = a.read_raw::<f64>() {
                out.push((k.to_string(), v));
            }
        }
    }
    Ok(out)
}
