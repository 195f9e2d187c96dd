//! The `generate` and `inspect` commands: progress, summaries, estimates.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use enma::data::generate::{self, GenConfig, PER_ENV};
use enma::data::hdf5;
use enma::data::pde::Split;
use indicatif::{ProgressBar, ProgressStyle};

/// Seconds per trajectory on one core of the 2-core reference machine (`enma generate
/// --preset tiny`, README), for the time estimate of `paper` runs.
fn seconds_per_trajectory(cfg: &GenConfig) -> f64 {
    use enma::data::generate::PdeName::*;
    match cfg.dataset {
        Advection => 0.0002,
        Combined => 0.003,
        Wave => 0.005,
        GrayScott => 0.025,
        // measured: 0.82 s at 128², 4.5 s at 256² (steps grow like n by the CFL limit, each step
        // like n² log n): about n^2.5
        Vorticity => {
            let n = cfg.vorticity_grid.unwrap_or(match cfg.preset {
                enma::data::generate::Preset::Tiny => 128,
                enma::data::generate::Preset::Small => 256,
                enma::data::generate::Preset::Paper => 512,
            }) as f64;
            0.82 * (n / 128.0).powf(2.5)
        }
    }
}

pub fn generate(
    cfg: &GenConfig,
    out: &Path,
    shard: Option<(usize, usize)>,
    splits: &[Split],
    yes: bool,
    quiet: bool,
) -> enma::Result<()> {
    let total: usize = splits.iter().map(|&s| generate::shard_range(cfg.envs(s), shard).len() * PER_ENV).sum();
    let threads = rayon::current_num_threads();
    let estimate = total as f64 * seconds_per_trajectory(cfg) / threads as f64;
    if cfg.preset.name() != "tiny" {
        eprintln!(
            "estimate: {total} trajectories, about {:.1} h on {threads} threads{}",
            estimate / 3600.0,
            if shard.is_none() { " (use --shard i/n to split the work across machines)" } else { "" }
        );
        if estimate > 3600.0 && !yes {
            return Err(enma::Error::invalid(
                "generate",
                "this run takes over an hour; pass --yes to start it, or --shard i/n",
            ));
        }
    }
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(total as u64) };
    bar.set_style(
        ProgressStyle::with_template("{msg:>22} [{bar:40}] {pos}/{len} trajectories, {elapsed} elapsed, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let done = AtomicU64::new(0);
    let t0 = Instant::now();
    let mut written = Vec::new();
    for &split in splits {
        bar.set_message(format!("{} {}", cfg.dataset.name(), split.name()));
        let path = generate::write_split(cfg, split, out, shard, &|| {
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            bar.set_position(d);
        })?;
        written.push(path);
    }
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    let bytes: u64 = written.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    println!(
        "{} {} (seed {}): {total} trajectories in {secs:.2} s, {:.1} MB",
        cfg.dataset.name(),
        cfg.preset.name(),
        cfg.seed,
        bytes as f64 / 1e6
    );
    for p in &written {
        println!("  {}", p.display());
    }
    Ok(())
}

pub fn inspect(path: &Path) -> enma::Result<()> {
    let l = hdf5::read(path)?;
    println!("{}", path.display());
    for (k, v) in &l.attrs {
        let short: String = v.chars().take(100).collect();
        println!("  @{k} = {short}{}", if v.len() > 100 { " ..." } else { "" });
    }
    for (group, (layout, t)) in &l.splits {
        println!("  /{group}: {layout:?}, [N, T, C, space..] = {:?}", t.shape);
        let (mut lo, mut hi, mut sum, mut sq) = (f64::MAX, f64::MIN, 0.0, 0.0);
        for &v in &t.data {
            let v = v as f64;
            lo = lo.min(v);
            hi = hi.max(v);
            sum += v;
            sq += v * v;
        }
        let n = t.data.len().max(1) as f64;
        let mean = sum / n;
        println!(
            "    values: min {lo:.4e}, max {hi:.4e}, mean {mean:.4e}, std {:.4e}",
            (sq / n - mean * mean).max(0.0).sqrt()
        );
        let envs = t.env.iter().collect::<std::collections::BTreeSet<_>>().len();
        println!("    environments: {envs} ({} trajectories)", t.n());
        for (name, v) in &t.params {
            let (a, b) = v.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            println!("    {name}: [{a:.6}, {b:.6}]");
        }
    }
    Ok(())
}

/// The two stages of ENMA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Vae,
    Generator,
}

pub fn parse_stage(stage: &str) -> enma::Result<Stage> {
    match stage {
        "vae" => Ok(Stage::Vae),
        "generator" | "gen" => Ok(Stage::Generator),
        _ => Err(enma::Error::invalid("--stage", format!("unknown stage `{stage}`: `vae` or `generator`"))),
    }
}

/// (dataset, max width, default steps, default batch) of a `<dataset>-<size>` preset.
fn vae_preset(preset: &str) -> enma::Result<(enma::data::generate::PdeName, usize, u64, usize)> {
    let (name, size) = preset.rsplit_once('-').ok_or_else(|| {
        enma::Error::invalid("--preset", format!("`{preset}` is not <dataset>-<size> (e.g. advection-tiny)"))
    })?;
    let dataset = enma::data::generate::PdeName::parse(name)?;
    let size = enma::data::generate::Preset::parse(size)?;
    let batch = if dataset.is_2d() { 8 } else { 32 };
    Ok(match size {
        enma::data::generate::Preset::Tiny => (dataset, 64, 1200, batch),
        enma::data::generate::Preset::Small => (dataset, 128, 20_000, batch),
        enma::data::generate::Preset::Paper => (dataset, 256, 100_000, if dataset.is_2d() { 8 } else { 64 }),
    })
}

fn load_split(data: &Path, dataset: enma::data::generate::PdeName, split: Split) -> enma::Result<hdf5::Trajectories> {
    let path = data.join(format!("{}_{}.h5", dataset.name(), split.name()));
    let l = hdf5::read(&path)?;
    l.splits
        .into_values()
        .next()
        .map(|(_, t)| t)
        .ok_or_else(|| enma::Error::invalid("data", format!("{} holds no split", path.display())))
}

/// Progress bar and `metrics.jsonl` of a training run.
struct StepLogger {
    bar: ProgressBar,
    metrics: std::fs::File,
    t0: Instant,
    label: &'static str,
    last: f32,
}

impl StepLogger {
    fn new(out: &Path, label: &'static str, steps: u64, quiet: bool) -> enma::Result<StepLogger> {
        std::fs::create_dir_all(out).map_err(|e| enma::Error::Io { path: out.display().to_string(), source: e })?;
        let path = out.join("metrics.jsonl");
        let metrics = std::fs::File::create(&path)
            .map_err(|e| enma::Error::Io { path: path.display().to_string(), source: e })?;
        let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(steps) };
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{label} [{{bar:40}}] {{pos}}/{{len}} steps, {{per_sec}}, eta {{eta}}  {{msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Ok(StepLogger { bar, metrics, t0: Instant::now(), label, last: f32::NAN })
    }

    fn log(&mut self, log: enma::train::StepLog) {
        use std::io::Write;
        self.last = log.loss;
        self.bar.set_position(log.step + 1);
        self.bar.set_message(format!("{} loss {:.4e}", self.label, log.loss));
        let _ = writeln!(
            self.metrics,
            "{}",
            serde_json::json!({"step": log.step, "loss": log.loss, "lr": log.lr, "seconds": self.t0.elapsed().as_secs_f64()})
        );
    }
}

#[allow(clippy::too_many_arguments)]
pub fn train_vae(
    gpu: &enma::Gpu,
    preset: &str,
    data: &Path,
    out: &Path,
    steps: Option<u64>,
    batch: Option<usize>,
    seed: u64,
    interp: bool,
    quiet: bool,
) -> enma::Result<()> {
    use enma::data::dataset::Normalization;
    let (dataset, max_width, default_steps, default_batch) = vae_preset(preset)?;
    let mut train = load_split(data, dataset, Split::Train)?;
    let norm = Normalization::fit(&train);
    norm.apply(&mut train)?;
    let mut config = enma::model::VaeConfig::for_dataset(dataset, max_width);
    if interp {
        config.interp = Some(enma::model::InterpConfig::paper(config.spatial_axes));
    }
    let mut store = enma::ParamStore::new(gpu, seed);
    let vae = enma::model::Vae::new(&mut store, config.clone())?;
    let tcfg = enma::train::VaeTrainConfig {
        steps: steps.unwrap_or(default_steps),
        batch: batch.unwrap_or(default_batch),
        seed,
        ..Default::default()
    };
    let mut logger = StepLogger::new(out, "vae", tcfg.steps, quiet)?;
    let t0 = logger.t0;
    enma::train::train_vae(gpu, &vae, &store, &train, &tcfg, |log| logger.log(log))?;
    logger.bar.finish_and_clear();
    let last = logger.last;
    let meta = serde_json::json!({
        "stage": "vae", "preset": preset, "dataset": dataset.name(), "config": config,
        "normalization": norm, "train": tcfg, "seconds": t0.elapsed().as_secs_f64(), "final_loss": last,
    });
    enma::checkpoint::save(out, &store, &meta)?;
    println!(
        "trained {} steps in {:.1} s, final loss {last:.4e}; checkpoint in {}",
        tcfg.steps,
        t0.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

fn read_meta(run: &Path) -> enma::Result<serde_json::Value> {
    let meta_path = run.join("meta.json");
    serde_json::from_slice(
        &std::fs::read(&meta_path).map_err(|e| enma::Error::Io { path: meta_path.display().to_string(), source: e })?,
    )
    .map_err(|e| enma::Error::invalid("checkpoint", format!("{}: {e}", meta_path.display())))
}

fn meta_field<T: serde::de::DeserializeOwned>(run: &Path, meta: &serde_json::Value, key: &str) -> enma::Result<T> {
    serde_json::from_value(meta[key].clone()).map_err(|e| {
        enma::Error::invalid(
            "checkpoint",
            format!("{}: missing or invalid `{key}`: {e}", run.join("meta.json").display()),
        )
    })
}

/// A trained VAE run: the model, its weights, the data normalisation and the dataset.
struct VaeRun {
    vae: enma::model::Vae,
    store: enma::ParamStore,
    norm: enma::data::dataset::Normalization,
    dataset: enma::data::generate::PdeName,
}

fn load_vae(gpu: &enma::Gpu, run: &Path) -> enma::Result<VaeRun> {
    let meta = read_meta(run)?;
    if meta["stage"] != "vae" {
        return Err(enma::Error::invalid(
            "checkpoint",
            format!("{} is not a VAE run (stage {})", run.display(), meta["stage"]),
        ));
    }
    let config: enma::model::VaeConfig = meta_field(run, &meta, "config")?;
    let norm = meta_field(run, &meta, "normalization")?;
    let dataset = enma::data::generate::PdeName::parse(&meta_field::<String>(run, &meta, "dataset")?)?;
    let mut store = enma::ParamStore::new(gpu, 0);
    let vae = enma::model::Vae::new(&mut store, config)?;
    enma::checkpoint::load(run, &store)?;
    Ok(VaeRun { vae, store, norm, dataset })
}

pub fn eval_vae(gpu: &enma::Gpu, run: &Path, data: &Path, fine: Option<&Path>, json: bool) -> enma::Result<()> {
    let VaeRun { vae, store, norm, dataset } = load_vae(gpu, run)?;
    let mut results = serde_json::Map::new();
    let mut report = |key: String, text: String, v: f64| {
        if !json {
            println!("{text}: reconstruction relative L2 {v:.4e}");
        }
        results.insert(key, serde_json::json!(v));
    };
    let interp = vae.interp.is_some();
    for split in [Split::InD, Split::OutD] {
        let truth = load_split(data, dataset, split)?;
        let mut input = truth.clone();
        norm.apply(&mut input)?;
        let ratios: &[f32] = if interp { &[1.0, 0.5, 0.2, 0.1] } else { &[1.0] };
        for &ratio in ratios {
            let mut rec = input.clone();
            rec.data = if interp {
                enma::train::reconstruct_points(gpu, &vae, &store, &input, ratio, 0, 16, None)?
            } else {
                enma::train::reconstruct(gpu, &vae, &store, &input, 16)?
            };
            norm.invert(&mut rec)?;
            let rel = enma::metrics::relative_l2(&rec.data, &truth.data, truth.stride());
            let pct = (ratio * 100.0).round() as u32;
            report(
                format!("{}_rel_l2_{pct}", split.name()),
                format!("{:>5} ({} trajectories), π = {pct:>3} %", split.name(), truth.n()),
                rel,
            );
        }
        // super-resolution: the same trajectories on a finer grid (from `enma generate --full`)
        if let (true, Some(fine_dir)) = (interp, fine) {
            let fine_truth = load_split(fine_dir, dataset, split)?;
            let factor_t = fine_truth.frames() / truth.frames().max(1);
            let target: Vec<usize> = truth.spatial().iter().map(|s| 2 * s).collect();
            let factor_s = fine_truth.spatial()[0] / target[0].max(1);
            if factor_t == 0 || factor_s == 0 || fine_truth.n() != truth.n() {
                return Err(enma::Error::invalid(
                    "eval",
                    format!("{}: not a finer version of the test file", fine_dir.display()),
                ));
            }
            let fine2 = enma::data::dataset::subsample(&fine_truth, factor_t, factor_s)?;
            let mut rec = fine2.clone();
            rec.data = enma::train::reconstruct_points(gpu, &vae, &store, &input, 1.0, 0, 16, Some(&target))?;
            norm.invert(&mut rec)?;
            let rel = enma::metrics::relative_l2(&rec.data, &fine2.data, fine2.stride());
            report(
                format!("{}_rel_l2_superres", split.name()),
                format!("{:>5} 2× finer output grid", split.name()),
                rel,
            );
        }
    }
    if json {
        println!("{}", serde_json::Value::Object(results));
    }
    Ok(())
}

/// The generator of a preset size for tokens of `token_dim` channels on `grid`.
fn generator_config(
    preset: &str,
    token_dim: usize,
    grid: Vec<usize>,
) -> enma::Result<enma::model::enma::GeneratorConfig> {
    use enma::data::generate::Preset;
    let size = preset.rsplit_once('-').map(|(_, s)| s).unwrap_or(preset);
    let mut c = enma::model::enma::GeneratorConfig::tiny(token_dim, grid.clone());
    match Preset::parse(size)? {
        Preset::Tiny => {}
        Preset::Small => {
            (c.width, c.heads, c.causal_depth, c.spatial_depth, c.flow_width, c.flow_depth) = (256, 8, 4, 4, 256, 3);
        }
        Preset::Paper => {
            (c.width, c.heads, c.causal_depth, c.spatial_depth, c.flow_width, c.flow_depth) = (512, 8, 6, 6, 512, 3);
        }
    }
    if grid.len() == 2 {
        c.unmask_steps = 16;
    }
    Ok(c)
}

#[allow(clippy::too_many_arguments)]
pub fn train_generator(
    gpu: &enma::Gpu,
    preset: &str,
    data: &Path,
    vae_dir: &Path,
    out: &Path,
    steps: Option<u64>,
    batch: Option<usize>,
    seed: u64,
    quiet: bool,
) -> enma::Result<()> {
    use enma::data::generate::PdeName;
    let VaeRun { vae, store: vae_store, norm, dataset } = load_vae(gpu, vae_dir)?;
    let mut train = load_split(data, dataset, Split::Train)?;
    norm.apply(&mut train)?;
    let t0 = Instant::now();
    let (means, shape) = enma::train::encode_means(gpu, &vae, &vae_store, &train, 16)?;
    let scale = enma::train::latent_scale(&means);
    let patch = if matches!(dataset, PdeName::Wave | PdeName::Vorticity) { 4 } else { 1 };
    let mut tokens = enma::train::patchify(&means, &shape, patch, scale)?;
    tokens.env = train.env.clone();
    let grid: Vec<usize> = shape[2..shape.len() - 1].iter().map(|s| s / patch).collect();
    let config = generator_config(preset, tokens.shape[3], grid)?;
    let mut store = enma::ParamStore::new(gpu, seed);
    let generator = enma::model::enma::Generator::new(&mut store, config.clone())?;
    let defaults = enma::train::GeneratorTrainConfig::default();
    let tcfg = enma::train::GeneratorTrainConfig {
        steps: steps.unwrap_or(defaults.steps),
        batch: batch.unwrap_or(if dataset.is_2d() { 64 } else { 32 }),
        seed,
        ..defaults
    };
    let mut logger = StepLogger::new(out, "generator", tcfg.steps, quiet)?;
    enma::train::train_generator(gpu, &generator, &store, &tokens, &tcfg, |log| logger.log(log))?;
    logger.bar.finish_and_clear();
    let last = logger.last;
    let vae_path = vae_dir.canonicalize().unwrap_or_else(|_| vae_dir.to_path_buf());
    let meta = serde_json::json!({
        "stage": "generator", "preset": preset, "dataset": dataset.name(), "config": config,
        "vae": vae_path, "latent_scale": scale, "patch": patch, "train": tcfg,
        "seconds": t0.elapsed().as_secs_f64(), "final_loss": last,
    });
    enma::checkpoint::save(out, &store, &meta)?;
    println!(
        "trained the generator {} steps in {:.1} s, final flow loss {last:.4e}; checkpoint in {}",
        tcfg.steps,
        t0.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

pub fn eval_generator(
    gpu: &enma::Gpu,
    run: &Path,
    data: &Path,
    rollout: &enma::eval::RolloutConfig,
    json: bool,
) -> enma::Result<()> {
    let meta = read_meta(run)?;
    if meta["stage"] != "generator" {
        return Err(enma::Error::invalid(
            "eval",
            format!("{} is not a generator run (stage {})", run.display(), meta["stage"]),
        ));
    }
    let vae_dir: std::path::PathBuf = meta_field(run, &meta, "vae")?;
    let VaeRun { vae, store: vae_store, norm, dataset } = load_vae(gpu, &vae_dir)?;
    let config: enma::model::enma::GeneratorConfig = meta_field(run, &meta, "config")?;
    let mut store = enma::ParamStore::new(gpu, 0);
    let generator = enma::model::enma::Generator::new(&mut store, config)?;
    enma::checkpoint::load(run, &store)?;
    let pipeline = enma::eval::Pipeline {
        vae: &vae,
        vae_store: &vae_store,
        generator: &generator,
        gen_store: &store,
        scale: meta_field(run, &meta, "latent_scale")?,
        patch: meta_field(run, &meta, "patch")?,
    };
    let mut results = serde_json::Map::new();
    let ivp = enma::eval::RolloutConfig { context_frames: 1, context_trajectory: true, ..*rollout };
    for (name, cfg) in [("temporal", rollout), ("ivp", &ivp)] {
        if !json {
            if cfg.context_trajectory {
                println!("IVP with a context trajectory (first frame + another trajectory of the same environment):");
            } else {
                println!("temporal conditioning on the first {} frames:", cfg.context_frames);
            }
            println!(
                "  split  trajectories  rel L2 (samples)  rel L2 (mean)  repeat last  CRPS       RMSCE      seconds"
            );
        }
        let mut part = serde_json::Map::new();
        eval_splits(gpu, &pipeline, data, dataset, &norm, cfg, json, &mut part)?;
        results.insert(name.to_string(), serde_json::Value::Object(part));
    }
    if !json {
        println!(
            "({} samples per trajectory; lower is better, a calibrated ensemble has RMSCE near 0)",
            rollout.samples
        );
    }
    if json {
        println!("{}", serde_json::Value::Object(results));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn eval_splits(
    gpu: &enma::Gpu,
    pipeline: &enma::eval::Pipeline,
    data: &Path,
    dataset: enma::data::generate::PdeName,
    norm: &enma::data::dataset::Normalization,
    rollout: &enma::eval::RolloutConfig,
    json: bool,
    results: &mut serde_json::Map<String, serde_json::Value>,
) -> enma::Result<()> {
    for split in [Split::InD, Split::OutD] {
        let truth = load_split(data, dataset, split)?;
        let mut input = truth.clone();
        norm.apply(&mut input)?;
        let t0 = Instant::now();
        let pred = enma::eval::rollout(gpu, pipeline, &input, rollout)?;
        let s = enma::eval::score(&pred, &truth, norm, rollout)?;
        let secs = t0.elapsed().as_secs_f64();
        if !json {
            println!(
                "  {:<6} {:>12}  {:>16.4e}  {:>13.4e}  {:>11.4e}  {:.3e}  {:.3e}  {secs:.1}",
                split.name(),
                s.trajectories,
                s.rel_l2,
                s.rel_l2_mean,
                s.rel_l2_repeat_last,
                s.crps,
                s.rmsce
            );
        }
        let mut v = serde_json::to_value(s).map_err(|e| enma::Error::invalid("eval", e.to_string()))?;
        v["seconds"] = serde_json::json!(secs);
        results.insert(split.name().to_string(), v);
    }
    Ok(())
}
