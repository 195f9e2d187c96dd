//! Run configurations: the presets of `assets/presets/*.toml` (built into the binary), files of
//! one's own that `extends` a preset, and `--set key=value` overrides. [`RunConfig::load`]
//! resolves all three, checks every key against `base.toml` (which documents every field) and
//! every value against its range, naming the key in the error.

use serde::{Deserialize, Serialize};

use crate::data::generate::{PdeName, Preset};
use crate::error::{Error, Result};
use crate::model::enma::GeneratorConfig;
use crate::model::{Block, InterpConfig, VaeConfig};

macro_rules! presets {
    ($($name:literal),* $(,)?) => {
        /// The built-in presets: (name, TOML text).
        pub const PRESETS: &[(&str, &str)] = &[$(($name, include_str!(concat!("../assets/presets/", $name, ".toml")))),*];
    };
}

presets!(
    "base",
    "advection-tiny",
    "advection-small",
    "advection-paper",
    "combined-tiny",
    "combined-small",
    "combined-paper",
    "gray-scott-tiny",
    "gray-scott-small",
    "gray-scott-paper",
    "wave-tiny",
    "wave-small",
    "wave-paper",
    "vorticity-tiny",
    "vorticity-small",
    "vorticity-paper",
    "quickstart",
    "micro",
);

/// A whole run: data, both stages with their schedules, and evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub name: String,
    pub seed: u64,
    pub data: DataSection,
    pub vae: VaeSection,
    #[serde(rename = "gen")]
    pub generator: GenSection,
    pub eval: EvalSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    pub dataset: String,
    pub size: String,
    pub max_train: usize,
    pub max_test: usize,
    /// Keep every `time_step`-th frame and every `space_step`-th point per spatial axis of the
    /// files (for files on a finer grid than the model's, such as the authors' originals).
    pub time_step: usize,
    pub space_step: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeSection {
    pub width: usize,
    pub max_width: usize,
    pub latent_dim: usize,
    pub blocks: Vec<Block>,
    pub kl_weight: f32,
    pub interp: InterpSection,
    pub train: VaeTrainSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterpSection {
    pub enabled: bool,
    pub grid: Vec<usize>,
    pub features: usize,
    pub layers: usize,
    pub slices: usize,
    pub periodic: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeTrainSection {
    pub steps: u64,
    pub batch: usize,
    pub lr: f32,
    pub lr_floor: f32,
    pub checkpoint_every: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenSection {
    pub width: usize,
    pub heads: usize,
    pub causal_depth: usize,
    pub spatial_depth: usize,
    pub mlp_ratio: usize,
    pub flow_width: usize,
    pub flow_depth: usize,
    pub fm_batch_mul: usize,
    pub unmask_steps: usize,
    pub ode_steps: usize,
    pub mask_min: f32,
    pub patch: usize,
    pub train: GenTrainSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenTrainSection {
    pub steps: u64,
    pub batch: usize,
    pub lr: f32,
    pub lr_floor: f32,
    pub warmup: u64,
    pub context_prob: f32,
    pub weight_decay: f32,
    pub clip_norm: f32,
    pub checkpoint_every: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    pub context: usize,
    pub samples: usize,
    pub batch: usize,
    pub temperature: f32,
}

fn builtin(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

fn parse_table(text: &str, origin: &str) -> Result<toml::Table> {
    text.parse::<toml::Table>().map_err(|e| Error::invalid("config", format!("{origin}: {e}")))
}

/// Every key of `t` must be a key of `reference` (tables recursively); `prefix` names the
/// table for the error.
fn check_keys(t: &toml::Table, reference: &toml::Table, prefix: &str, origin: &str) -> Result<()> {
    for (k, v) in t {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        if prefix.is_empty() && k == "extends" {
            continue;
        }
        match (reference.get(k), v) {
            (None, _) => {
                let known: Vec<&str> = reference.keys().map(|s| s.as_str()).collect();
                return Err(Error::invalid(
                    "config",
                    format!("{origin}: unknown key `{key}` (known here: {})", known.join(", ")),
                ));
            }
            (Some(toml::Value::Table(r)), toml::Value::Table(t)) => check_keys(t, r, &key, origin)?,
            (Some(toml::Value::Table(_)), _) => {
                return Err(Error::invalid("config", format!("{origin}: `{key}` is a table ([{key}])")));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Every value of `t` must have the type of the same key in `reference` (integers are accepted
/// for floats).
fn check_types(t: &mut toml::Table, reference: &toml::Table, prefix: &str, origin: &str) -> Result<()> {
    use toml::Value as V;
    for (k, v) in t.iter_mut() {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        let Some(r) = reference.get(k) else { continue };
        if let (V::Float(_), V::Integer(i)) = (r, &*v) {
            *v = V::Float(*i as f64);
        }
        match (r, &mut *v) {
            (V::Table(r), V::Table(t)) => check_types(t, r, &key, origin)?,
            // every integer setting is a count, a size or a seed
            (V::Integer(_), V::Integer(i)) if *i < 0 => {
                return Err(Error::invalid("config", format!("{origin}: `{key}` must be 0 or more, not `{i}`")));
            }
            (r, v) if r.type_str() == v.type_str() => {}
            (r, v) => {
                return Err(Error::invalid(
                    "config",
                    format!(
                        "{origin}: `{key}` must be {} {}, not {} {} `{v}`",
                        article(r.type_str()),
                        r.type_str(),
                        article(v.type_str()),
                        v.type_str()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
}

/// `over` on top of `base`: tables merge key by key, anything else is replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// A preset name (`advection-tiny`; the paper size also as just `advection`) or a `.toml` file.
fn resolve_table(spec: &str, reference: &toml::Table, depth: usize) -> Result<toml::Table> {
    if depth > 8 {
        return Err(Error::invalid("config", format!("`extends` chain too long at `{spec}` (a cycle?)")));
    }
    let paper = format!("{spec}-paper");
    let (text, origin, dir) = if let Some(t) = builtin(spec).or_else(|| builtin(&paper)) {
        (t.to_string(), format!("preset `{spec}`"), None)
    } else if spec.ends_with(".toml") || std::path::Path::new(spec).is_file() {
        let path = std::path::Path::new(spec);
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        (text, path.display().to_string(), path.parent().map(|p| p.to_path_buf()))
    } else {
        let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).filter(|n| *n != "base").collect();
        return Err(Error::invalid(
            "--preset",
            format!("no preset or file `{spec}`; presets: {} (or a path to a .toml file)", names.join(", ")),
        ));
    };
    let mut table = parse_table(&text, &origin)?;
    check_keys(&table, reference, "", &origin)?;
    let parent = match table.remove("extends") {
        None => None,
        Some(toml::Value::String(p)) => Some(p),
        Some(_) => return Err(Error::invalid("config", format!("{origin}: `extends` must be a preset name or path"))),
    };
    let mut out = match parent {
        None => reference.clone(),
        Some(p) if p == "base" => reference.clone(),
        Some(p) => {
            let local = dir.map(|d| d.join(&p)).filter(|f| f.is_file());
            let p = local.map(|f| f.display().to_string()).unwrap_or(p);
            resolve_table(&p, reference, depth + 1)?
        }
    };
    merge(&mut out, table);
    Ok(out)
}

/// Applies `key=value` (`gen.width=128`; the value in TOML syntax, bare words as strings).
fn apply_set(table: &mut toml::Table, set: &str) -> Result<()> {
    let (key, value) = set
        .split_once('=')
        .ok_or_else(|| Error::invalid("--set", format!("`{set}` is not key=value (e.g. gen.width=128)")))?;
    let (key, value) = (key.trim(), value.trim());
    let value = match format!("v = {value}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(value.to_string())),
        Err(_) => toml::Value::String(value.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    set_path(table, &parts, 0, value)
}

fn set_path(t: &mut toml::Table, parts: &[&str], i: usize, value: toml::Value) -> Result<()> {
    let here = parts[..=i].join(".");
    let last = i + 1 == parts.len();
    match t.get_mut(parts[i]) {
        None => Err(Error::invalid("--set", format!("unknown key `{here}`"))),
        Some(toml::Value::Table(inner)) if !last => set_path(inner, parts, i + 1, value),
        Some(toml::Value::Table(_)) => {
            Err(Error::invalid("--set", format!("`{here}` is a table; set one of its keys")))
        }
        Some(_) if !last => Err(Error::invalid("--set", format!("`{here}` has no keys"))),
        Some(slot) => {
            *slot = value;
            Ok(())
        }
    }
}

impl RunConfig {
    /// Resolves a preset name or `.toml` file, then the `--set` overrides, and checks the result.
    pub fn load(spec: &str, sets: &[String]) -> Result<RunConfig> {
        let reference = parse_table(builtin("base").unwrap_or_default(), "preset `base`")?;
        let mut table = resolve_table(spec, &reference, 0)?;
        for s in sets {
            apply_set(&mut table, s)?;
        }
        RunConfig::from_table(table, spec)
    }

    /// Parses a resolved configuration (a run's `config.toml`).
    pub fn from_toml(text: &str, origin: &str) -> Result<RunConfig> {
        let reference = parse_table(builtin("base").unwrap_or_default(), "preset `base`")?;
        let table = parse_table(text, origin)?;
        check_keys(&table, &reference, "", origin)?;
        let mut full = reference;
        merge(&mut full, table);
        RunConfig::from_table(full, origin)
    }

    fn from_table(mut table: toml::Table, origin: &str) -> Result<RunConfig> {
        let reference = parse_table(builtin("base").unwrap_or_default(), "preset `base`")?;
        check_types(&mut table, &reference, "", origin)?;
        let cfg: RunConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| Error::invalid("config", format!("{origin}: {}", e.message())))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The resolved configuration as TOML (saved as `config.toml` with every run).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::invalid("config", e.to_string()))
    }

    pub fn dataset(&self) -> Result<PdeName> {
        PdeName::parse(&self.data.dataset).map_err(|e| Error::invalid("config", format!("data.dataset: {e}")))
    }

    pub fn data_size(&self) -> Result<Preset> {
        Preset::parse(&self.data.size).map_err(|e| Error::invalid("config", format!("data.size: {e}")))
    }

    /// Checks every value against its range; the error names the key.
    pub fn validate(&self) -> Result<()> {
        fn need(ok: bool, key: &str, msg: impl std::fmt::Display) -> Result<()> {
            if ok { Ok(()) } else { Err(Error::invalid("config", format!("`{key}` {msg}"))) }
        }
        let dataset = self.dataset()?;
        self.data_size()?;
        let axes = if dataset.is_2d() { 2 } else { 1 };
        need(self.data.time_step > 0, "data.time_step", "must be at least 1")?;
        need(self.data.space_step > 0, "data.space_step", "must be at least 1")?;
        let (v, g, e) = (&self.vae, &self.generator, &self.eval);
        need(v.width > 0, "vae.width", "must be at least 1")?;
        need(v.max_width >= v.width, "vae.max_width", format!("must be at least vae.width = {}", v.width))?;
        need(v.latent_dim > 0, "vae.latent_dim", "must be at least 1")?;
        need(!v.blocks.is_empty(), "vae.blocks", "must name at least one block")?;
        need(v.blocks.iter().filter(|b| **b == Block::Time).count() <= 1, "vae.blocks", "may hold one \"time\" block")?;
        need(v.kl_weight >= 0.0 && v.kl_weight.is_finite(), "vae.kl_weight", "must be >= 0")?;
        let i = &v.interp;
        need(
            i.grid.len() == axes && i.grid.iter().all(|&n| n > 0),
            "vae.interp.grid",
            format!("needs {axes} positive entries for {}", dataset.name()),
        )?;
        need(i.features > 0, "vae.interp.features", "must be at least 1")?;
        need(i.slices > 0, "vae.interp.slices", "must be at least 1")?;
        let vt = &v.train;
        need(vt.steps > 0, "vae.train.steps", "must be at least 1")?;
        need(vt.batch > 0, "vae.train.batch", "must be at least 1")?;
        need(vt.lr > 0.0 && vt.lr.is_finite(), "vae.train.lr", "must be > 0")?;
        need(vt.lr_floor >= 0.0 && vt.lr_floor <= vt.lr, "vae.train.lr_floor", "must be in [0, vae.train.lr]")?;
        need(g.width > 0 && g.heads > 0, "gen.width", "and gen.heads must be at least 1")?;
        need(g.width % g.heads == 0, "gen.width", format!("must be a multiple of gen.heads = {}", g.heads))?;
        need(g.width / g.heads <= 64, "gen.heads", format!("too few: head dim {} is over 64", g.width / g.heads))?;
        need(g.causal_depth > 0, "gen.causal_depth", "must be at least 1")?;
        need(g.spatial_depth > 0, "gen.spatial_depth", "must be at least 1")?;
        need(g.mlp_ratio > 0, "gen.mlp_ratio", "must be at least 1")?;
        need(g.flow_width > 0, "gen.flow_width", "must be at least 1")?;
        need(g.flow_depth > 0, "gen.flow_depth", "must be at least 1")?;
        need(g.fm_batch_mul > 0, "gen.fm_batch_mul", "must be at least 1")?;
        need(g.unmask_steps > 0, "gen.unmask_steps", "must be at least 1")?;
        need(g.ode_steps > 0, "gen.ode_steps", "must be at least 1")?;
        need(g.mask_min > 0.0 && g.mask_min <= 1.0, "gen.mask_min", "must be in (0, 1]")?;
        need(g.patch > 0, "gen.patch", "must be at least 1")?;
        let gt = &g.train;
        need(gt.steps > 0, "gen.train.steps", "must be at least 1")?;
        need(gt.batch > 0, "gen.train.batch", "must be at least 1")?;
        need(gt.lr > 0.0 && gt.lr.is_finite(), "gen.train.lr", "must be > 0")?;
        need(gt.lr_floor >= 0.0 && gt.lr_floor <= gt.lr, "gen.train.lr_floor", "must be in [0, gen.train.lr]")?;
        need((0.0..=1.0).contains(&gt.context_prob), "gen.train.context_prob", "must be in [0, 1]")?;
        need(gt.weight_decay >= 0.0, "gen.train.weight_decay", "must be >= 0")?;
        need(gt.clip_norm > 0.0, "gen.train.clip_norm", "must be > 0")?;
        need(e.context % 2 == 1, "eval.context", "must be odd (L frames = (L + 1)/2 latent frames)")?;
        need(e.samples > 0, "eval.samples", "must be at least 1")?;
        need(e.batch > 0, "eval.batch", "must be at least 1")?;
        need(e.temperature > 0.0 && e.temperature.is_finite(), "eval.temperature", "must be > 0")?;
        Ok(())
    }

    /// The VAE of this configuration.
    pub fn vae_config(&self) -> Result<VaeConfig> {
        let v = &self.vae;
        let mut c = VaeConfig::for_dataset(self.dataset()?, v.max_width);
        c.width = v.width;
        c.latent_dim = v.latent_dim;
        c.blocks = v.blocks.clone();
        c.kl_weight = v.kl_weight;
        c.interp = v.interp.enabled.then(|| InterpConfig {
            grid: v.interp.grid.clone(),
            features: v.interp.features,
            layers: v.interp.layers,
            slices: v.interp.slices,
            periodic: v.interp.periodic,
        });
        c.validate()?;
        Ok(c)
    }

    pub fn vae_train(&self) -> crate::train::VaeTrainConfig {
        let t = &self.vae.train;
        crate::train::VaeTrainConfig { steps: t.steps, batch: t.batch, lr: t.lr, lr_floor: t.lr_floor, seed: self.seed }
    }

    /// The generator for tokens of `token_dim` channels on a token grid `grid`.
    pub fn generator_config(&self, token_dim: usize, grid: Vec<usize>) -> GeneratorConfig {
        let g = &self.generator;
        GeneratorConfig {
            token_dim,
            grid,
            width: g.width,
            heads: g.heads,
            causal_depth: g.causal_depth,
            spatial_depth: g.spatial_depth,
            mlp_ratio: g.mlp_ratio,
            flow_width: g.flow_width,
            flow_depth: g.flow_depth,
            fm_batch_mul: g.fm_batch_mul,
            unmask_steps: g.unmask_steps,
            ode_steps: g.ode_steps,
            mask_min: g.mask_min,
        }
    }

    pub fn gen_train(&self) -> crate::train::GeneratorTrainConfig {
        let t = &self.generator.train;
        crate::train::GeneratorTrainConfig {
            steps: t.steps,
            batch: t.batch,
            lr: t.lr,
            lr_floor: t.lr_floor,
            warmup: t.warmup,
            context_prob: t.context_prob,
            weight_decay: t.weight_decay,
            clip_norm: t.clip_norm,
            seed: self.seed,
        }
    }

    /// Temporal-conditioning rollouts as `[eval]` says.
    pub fn rollout(&self) -> crate::eval::RolloutConfig {
        crate::eval::RolloutConfig {
            context_frames: self.eval.context,
            context_trajectory: false,
            samples: self.eval.samples,
            batch: self.eval.batch,
            temperature: self.eval.temperature,
            seed: self.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_resolves_and_validates() {
        for (name, _) in PRESETS {
            let c = RunConfig::load(name, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
            if *name != "base" {
                assert_eq!(c.name, *name);
            }
            let v = c.vae_config().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(v.spatial_axes, if c.dataset().unwrap().is_2d() { 2 } else { 1 });
        }
        let small = RunConfig::load("vorticity-small", &[]).unwrap();
        assert_eq!((small.generator.width, small.generator.patch, small.vae.latent_dim), (256, 4, 8));
        assert_eq!(small.vae.interp.grid, vec![16, 16]);
        let paper = RunConfig::load("advection", &[]).unwrap();
        assert_eq!(paper.name, "advection-paper");
    }

    #[test]
    fn set_overrides_and_round_trips() {
        let sets = ["gen.width=128".to_string(), "vae.interp.enabled=true".into(), "data.dataset=combined".into()];
        let c = RunConfig::load("advection-tiny", &sets).unwrap();
        assert_eq!(c.generator.width, 128);
        assert!(c.vae_config().unwrap().interp.is_some());
        assert_eq!(c.dataset().unwrap(), PdeName::Combined);
        let back = RunConfig::from_toml(&c.to_toml().unwrap(), "saved").unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn errors_name_the_key() {
        let err = |spec: &str, sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            RunConfig::load(spec, &sets).unwrap_err().to_string()
        };
        assert!(err("advection-tiny", &["gen.widht=3"]).contains("gen.widht"));
        assert!(err("advection-tiny", &["gen.width=102"]).contains("gen.width"));
        assert!(err("advection-tiny", &["gen.mask_min=1.5"]).contains("gen.mask_min"));
        assert!(err("advection-tiny", &["eval.context=4"]).contains("eval.context"));
        assert!(err("advection-tiny", &["gen.train.steps=many"]).contains("steps"));
        assert!(err("advection-tiny", &["vae.train.steps=-3"]).contains("`vae.train.steps` must be 0 or more"));
        assert!(err("advection-tiny", &["seed=-1"]).contains("`seed`"));
        assert!(err("advection-tiny", &["vae.interp.grid=[16, 16]"]).contains("vae.interp.grid"));
        assert!(err("advection-tiny", &["gen"]).contains("key=value"));
        assert!(err("no-such-preset", &[]).contains("advection-tiny"));
        let dir = std::env::temp_dir().join(format!("enma-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("mine.toml");
        std::fs::write(&file, "extends = \"advection-tiny\"\n[gen]\nwidht = 3\n").unwrap();
        assert!(err(file.to_str().unwrap(), &[]).contains("unknown key `gen.widht`"));
        std::fs::write(&file, "extends = \"micro\"\nname = \"mine\"\n[gen.train]\nsteps = 9\n").unwrap();
        let c = RunConfig::load(file.to_str().unwrap(), &[]).unwrap();
        assert_eq!((c.name.as_str(), c.generator.train.steps, c.generator.width), ("mine", 9, 16));
        std::fs::remove_dir_all(&dir).ok();
    }
}
