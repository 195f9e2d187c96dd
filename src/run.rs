//! Run folders: training a stage into a folder (the resolved `config.toml`, resumable
//! checkpoints, `metrics.jsonl`), resuming it, loading trained runs and evaluating them.
//!
//! A run folder holds `config.toml` (the resolved [`RunConfig`]), `meta.json` (stage, dataset,
//! model configuration, normalisation, latent scale, steps done), `model.safetensors`,
//! `optimizer.safetensors` (AdamW moments, for `--resume`) and `metrics.jsonl` (one JSON object
//! per step: step, loss, lr, seconds).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::autodiff::ParamStore;
use crate::config::RunConfig;
use crate::data::dataset::Normalization;
use crate::data::generate::PdeName;
use crate::data::hdf5::{self, Trajectories};
use crate::data::pde::Split;
use crate::error::{Error, Result};
use crate::eval::{Pipeline, RolloutConfig, RolloutScores};
use crate::gpu::Gpu;
use crate::model::Vae;
use crate::model::enma::{Generator, GeneratorConfig};
use crate::optim::AdamW;
use crate::train::{Monitor, Start, StepLog};

/// The two stages of ENMA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Stage {
    Vae,
    Generator,
}

impl Stage {
    pub fn parse(stage: &str) -> Result<Stage> {
        match stage {
            "vae" => Ok(Stage::Vae),
            "generator" | "gen" => Ok(Stage::Generator),
            _ => Err(Error::invalid("--stage", format!("unknown stage `{stage}`: `vae` or `generator`"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stage::Vae => "vae",
            Stage::Generator => "generator",
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

/// The `split` file of `dataset` in folder `data` (from `enma generate`); of a file holding several
/// splits, the group named for `split` (`train`, or `test` for In-D and Out-D).
pub fn load_split(data: &Path, dataset: PdeName, split: Split) -> Result<Trajectories> {
    let path = data.join(format!("{}_{}.h5", dataset.name(), split.name()));
    if !path.is_file() {
        return Err(Error::invalid(
            "data",
            format!(
                "{} not found: generate it with `enma generate --dataset {} --out {}`, or link a file in the authors' layout there",
                path.display(),
                dataset.name(),
                data.display()
            ),
        ));
    }
    let mut l = hdf5::read(&path)?;
    if l.splits.len() > 1 {
        // a file of several splits (e.g. GEPS's train/val/test): the group named for this split
        let group = dataset.group(split);
        return l.splits.remove(group).map(|(_, t)| t).ok_or_else(|| {
            Error::invalid(
                "data",
                format!(
                    "{} holds the groups {} but no `{group}` for the {} split: link a file with one group, or \
                     one named `{group}`",
                    path.display(),
                    l.splits.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
                    split.name()
                ),
            )
        });
    }
    l.splits
        .into_values()
        .next()
        .map(|(_, t)| t)
        .ok_or_else(|| Error::invalid("data", format!("{} holds no split", path.display())))
}

/// The `split` file of `dataset` in `data` as a configuration uses it: subsampled by
/// `data.time_step` / `data.space_step`, cut to `data.max_train` (training split) or
/// `data.max_test` trajectories.
pub fn load_data(
    data: &Path,
    cfg: &crate::config::DataSection,
    dataset: PdeName,
    split: Split,
) -> Result<Trajectories> {
    let mut t = load_split(data, dataset, split)?;
    if cfg.time_step > 1 || cfg.space_step > 1 {
        t = crate::data::dataset::subsample(&t, cfg.time_step, cfg.space_step)?;
    }
    t.truncate(if split == Split::Train { cfg.max_train } else { cfg.max_test });
    Ok(t)
}

/// A run's `meta.json`.
pub fn read_meta(run: &Path) -> Result<serde_json::Value> {
    let path = run.join("meta.json");
    if !path.is_file() {
        return Err(Error::invalid("run", format!("{} is not a run folder (no meta.json)", run.display())));
    }
    serde_json::from_slice(&std::fs::read(&path).map_err(io(&path))?)
        .map_err(|e| Error::invalid("checkpoint", format!("{}: {e}", path.display())))
}

/// A field of a run's `meta.json`.
pub fn meta_field<T: serde::de::DeserializeOwned>(run: &Path, meta: &serde_json::Value, key: &str) -> Result<T> {
    serde_json::from_value(meta[key].clone()).map_err(|e| {
        Error::invalid("checkpoint", format!("{}: missing or invalid `{key}`: {e}", run.join("meta.json").display()))
    })
}

/// A run's resolved configuration (`config.toml`).
pub fn read_config(run: &Path) -> Result<RunConfig> {
    let path = run.join("config.toml");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    RunConfig::from_toml(&text, &path.display().to_string())
}

/// Progress bar, `metrics.jsonl` and checkpoints of a training run.
struct Logger<'a> {
    bar: ProgressBar,
    metrics: std::fs::File,
    t0: Instant,
    seconds_before: f64,
    label: &'static str,
    last: f32,
    dir: &'a Path,
    store: &'a ParamStore,
    meta: serde_json::Value,
    total: u64,
}

impl<'a> Logger<'a> {
    /// Starts logging a run of `total` steps at `first` (truncating `metrics.jsonl` to the
    /// steps before `first` when resuming).
    #[allow(clippy::too_many_arguments)]
    fn new(
        dir: &'a Path,
        store: &'a ParamStore,
        meta: serde_json::Value,
        label: &'static str,
        first: u64,
        total: u64,
        seconds_before: f64,
        quiet: bool,
    ) -> Result<Logger<'a>> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join("metrics.jsonl");
        let kept: String = if first > 0 {
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v["step"].as_u64())
                        .is_some_and(|s| s < first)
                })
                .map(|l| format!("{l}\n"))
                .collect()
        } else {
            String::new()
        };
        crate::checkpoint::write_atomic(&path, kept.as_bytes())?;
        let metrics = std::fs::OpenOptions::new().append(true).open(&path).map_err(io(&path))?;
        let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(total) };
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{label:>9} [{{bar:30}}] {{pos}}/{{len}} steps, {{per_sec}}, eta {{eta}}  {{msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_position(first);
        bar.reset_eta();
        Ok(Logger { bar, metrics, t0: Instant::now(), seconds_before, label, last: f32::NAN, dir, store, meta, total })
    }

    fn seconds(&self) -> f64 {
        self.seconds_before + self.t0.elapsed().as_secs_f64()
    }
}

impl Monitor for Logger<'_> {
    fn step(&mut self, log: StepLog) {
        self.last = log.loss;
        self.bar.set_position(log.step + 1);
        self.bar.set_message(format!("{} loss {:.4e}", self.label, log.loss));
        let line = serde_json::json!({"step": log.step, "loss": log.loss, "lr": log.lr, "seconds": self.seconds()});
        let _ = writeln!(self.metrics, "{line}");
    }

    fn checkpoint(&mut self, steps_done: u64, opt: &AdamW) -> Result<()> {
        let mut meta = self.meta.clone();
        meta["seconds"] = serde_json::json!(self.seconds());
        meta["final_loss"] = serde_json::json!(self.last);
        meta["complete"] = serde_json::json!(steps_done == self.total);
        // the kernels the run used, so that `--resume` computes with the same ones
        save_tune_choices(self.dir, self.store.gpu())?;
        crate::checkpoint::save_training(self.dir, self.store, &opt.state()?, &meta)
    }
}

/// What a finished training run reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainSummary {
    pub stage: Stage,
    pub dir: PathBuf,
    pub steps: u64,
    /// Steps taken in this call (fewer than `steps` after a resume).
    pub new_steps: u64,
    pub seconds: f64,
    pub final_loss: f32,
}

/// Options of a training call.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// No progress bar.
    pub quiet: bool,
    /// Stop (checkpointed) after this many steps of the schedule; `--resume` continues.
    pub until: Option<u64>,
}

/// The file of a run folder that holds the autotuner's choices the run used (key → kernel).
pub const TUNE_FILE: &str = "tune.json";

/// Writes the choices `gpu` has used to the run folder's [`TUNE_FILE`], merged with those already
/// there (a resumed run keeps the earlier ones).
pub fn save_tune_choices(dir: &Path, gpu: &Gpu) -> Result<()> {
    let path = dir.join(TUNE_FILE);
    let mut all = crate::gpu::tune::read_choices(&path)?.unwrap_or_default();
    all.extend(gpu.tune_used());
    let bytes = serde_json::to_vec_pretty(&all).map_err(|e| Error::invalid("tune.json", e.to_string()))?;
    crate::checkpoint::write_atomic(&path, &bytes)
}

/// How to start: fresh (writing `config.toml`) or from the folder's last checkpoint.
fn start_point(
    dir: &Path,
    cfg: &RunConfig,
    store: &ParamStore,
    resume: bool,
    every: u64,
    until: Option<u64>,
) -> Result<(Start, f64)> {
    if !resume {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        crate::checkpoint::write_atomic(&dir.join("config.toml"), cfg.to_toml()?.as_bytes())?;
        // a fresh run in an old folder: the old run's kernel choices are not this one's
        match std::fs::remove_file(dir.join(TUNE_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(dir)(e)),
            _ => {}
        }
        return Ok((Start { resume: None, checkpoint_every: every, stop_at: until }, 0.0));
    }
    if let Some(choices) = crate::gpu::tune::read_choices(&dir.join(TUNE_FILE))? {
        store.gpu().pin_tune_choices(&choices);
    }
    let meta = crate::checkpoint::load(dir, store)?;
    let step: u64 = meta_field(dir, &meta, "step")?;
    let state = crate::checkpoint::load_optimizer(dir, step)?;
    let seconds = meta["seconds"].as_f64().unwrap_or(0.0);
    Ok((Start { resume: Some(state), checkpoint_every: every, stop_at: until }, seconds))
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// Trains `stage` of `cfg` on the files in `data` into run folder `out` (`vae`: the VAE run the
/// generator models; required for the generator stage).
pub fn train(
    gpu: &Gpu,
    cfg: &RunConfig,
    stage: Stage,
    data: &Path,
    out: &Path,
    vae: Option<&Path>,
    opts: &TrainOptions,
) -> Result<TrainSummary> {
    match (stage, vae) {
        (Stage::Vae, _) => train_vae(gpu, cfg, data, out, false, opts),
        (Stage::Generator, Some(vae)) => train_generator(gpu, cfg, data, vae, out, false, opts),
        (Stage::Generator, None) => {
            Err(Error::invalid("--vae", "the generator needs the trained VAE run: --vae runs/<name>-vae"))
        }
    }
}

/// Continues the training run in `dir` from its last checkpoint, with the numbers an
/// uninterrupted run gives (same adapter).
pub fn resume(gpu: &Gpu, dir: &Path, opts: &TrainOptions) -> Result<TrainSummary> {
    let cfg = read_config(dir)?;
    let meta = read_meta(dir)?;
    let stage = Stage::parse(meta["stage"].as_str().unwrap_or(""))?;
    let data: PathBuf = meta_field(dir, &meta, "data")?;
    match stage {
        Stage::Vae => train_vae(gpu, &cfg, &data, dir, true, opts),
        Stage::Generator => {
            let vae: PathBuf = meta_field(dir, &meta, "vae")?;
            train_generator(gpu, &cfg, &data, &vae, dir, true, opts)
        }
    }
}

fn train_vae(
    gpu: &Gpu,
    cfg: &RunConfig,
    data: &Path,
    out: &Path,
    resume: bool,
    opts: &TrainOptions,
) -> Result<TrainSummary> {
    let dataset = cfg.dataset()?;
    let mut train = load_data(data, &cfg.data, dataset, Split::Train)?;
    let norm = Normalization::fit(&train);
    norm.apply(&mut train)?;
    let config = cfg.vae_config()?;
    let mut store = ParamStore::new(gpu, cfg.seed);
    let vae = Vae::new(&mut store, config.clone())?;
    let tcfg = cfg.vae_train();
    let (start, seconds) = start_point(out, cfg, &store, resume, cfg.vae.train.checkpoint_every, opts.until)?;
    let first = start.resume.as_ref().map(|s| s.step).unwrap_or(0);
    let meta = serde_json::json!({
        "stage": "vae", "preset": cfg.name, "dataset": dataset.name(), "config": config,
        "normalization": norm, "train": tcfg, "data": canonical(data), "steps": tcfg.steps,
    });
    let mut logger = Logger::new(out, &store, meta, "vae", first, tcfg.steps, seconds, opts.quiet)?;
    crate::train::train_vae(gpu, &vae, &store, &train, &tcfg, &start, &mut logger)?;
    logger.bar.finish_and_clear();
    Ok(TrainSummary {
        stage: Stage::Vae,
        dir: out.to_path_buf(),
        steps: tcfg.steps,
        new_steps: opts.until.unwrap_or(tcfg.steps).min(tcfg.steps).saturating_sub(first),
        seconds: logger.seconds(),
        final_loss: logger.last,
    })
}

/// A trained VAE run: the model, its weights, the data normalisation and the dataset.
pub struct VaeRun {
    pub vae: Vae,
    pub store: ParamStore,
    pub norm: Normalization,
    pub dataset: PdeName,
}

/// Loads the VAE run in `run`.
pub fn load_vae(gpu: &Gpu, run: &Path) -> Result<VaeRun> {
    let meta = read_meta(run)?;
    if meta["stage"] != "vae" {
        return Err(Error::invalid("run", format!("{} is not a VAE run (stage {})", run.display(), meta["stage"])));
    }
    let config: crate::model::VaeConfig = meta_field(run, &meta, "config")?;
    let norm = meta_field(run, &meta, "normalization")?;
    let dataset = PdeName::parse(&meta_field::<String>(run, &meta, "dataset")?)?;
    let mut store = ParamStore::new(gpu, 0);
    let vae = Vae::new(&mut store, config)?;
    crate::checkpoint::load(run, &store)?;
    Ok(VaeRun { vae, store, norm, dataset })
}

fn train_generator(
    gpu: &Gpu,
    cfg: &RunConfig,
    data: &Path,
    vae_dir: &Path,
    out: &Path,
    resume: bool,
    opts: &TrainOptions,
) -> Result<TrainSummary> {
    let VaeRun { vae, store: vae_store, norm, dataset } = load_vae(gpu, vae_dir)?;
    if dataset != cfg.dataset()? {
        return Err(Error::invalid(
            "--vae",
            format!("the VAE run models {}, the configuration {}", dataset.name(), cfg.data.dataset),
        ));
    }
    let mut train = load_data(data, &cfg.data, dataset, Split::Train)?;
    norm.apply(&mut train)?;
    let (means, shape) = crate::train::encode_means(gpu, &vae, &vae_store, &train, 16)?;
    let scale = crate::train::latent_scale(&means);
    let patch = cfg.generator.patch;
    let mut tokens = crate::train::patchify(&means, &shape, patch, scale)?;
    tokens.env = train.env.clone();
    let grid: Vec<usize> = shape[2..shape.len() - 1].iter().map(|s| s / patch).collect();
    let config = cfg.generator_config(tokens.shape[3], grid);
    let mut store = ParamStore::new(gpu, cfg.seed);
    let generator = Generator::new(&mut store, config.clone())?;
    let tcfg = cfg.gen_train();
    let (start, seconds) = start_point(out, cfg, &store, resume, cfg.generator.train.checkpoint_every, opts.until)?;
    let first = start.resume.as_ref().map(|s| s.step).unwrap_or(0);
    let meta = serde_json::json!({
        "stage": "generator", "preset": cfg.name, "dataset": dataset.name(), "config": config,
        "vae": canonical(vae_dir), "latent_scale": scale, "patch": patch, "train": tcfg,
        "data": canonical(data), "steps": tcfg.steps,
    });
    let mut logger = Logger::new(out, &store, meta, "generator", first, tcfg.steps, seconds, opts.quiet)?;
    crate::train::train_generator(gpu, &generator, &store, &tokens, &tcfg, &start, &mut logger)?;
    logger.bar.finish_and_clear();
    Ok(TrainSummary {
        stage: Stage::Generator,
        dir: out.to_path_buf(),
        steps: tcfg.steps,
        new_steps: opts.until.unwrap_or(tcfg.steps).min(tcfg.steps).saturating_sub(first),
        seconds: logger.seconds(),
        final_loss: logger.last,
    })
}

/// A trained generator run with its VAE: everything a rollout needs.
pub struct GeneratorRun {
    pub vae: VaeRun,
    pub generator: Generator,
    pub store: ParamStore,
    pub scale: f32,
    pub patch: usize,
    /// The run's resolved configuration (its `[eval]` section: context, samples).
    pub config: RunConfig,
}

impl GeneratorRun {
    pub fn pipeline(&self) -> Pipeline<'_> {
        Pipeline {
            vae: &self.vae.vae,
            vae_store: &self.vae.store,
            generator: &self.generator,
            gen_store: &self.store,
            scale: self.scale,
            patch: self.patch,
        }
    }
}

/// Loads the generator run in `run` and the VAE run it names.
pub fn load_generator(gpu: &Gpu, run: &Path) -> Result<GeneratorRun> {
    let meta = read_meta(run)?;
    if meta["stage"] != "generator" {
        return Err(Error::invalid(
            "run",
            format!("{} is not a generator run (stage {})", run.display(), meta["stage"]),
        ));
    }
    let vae_dir: PathBuf = meta_field(run, &meta, "vae")?;
    let vae = load_vae(gpu, &vae_dir)?;
    let config: GeneratorConfig = meta_field(run, &meta, "config")?;
    let mut store = ParamStore::new(gpu, 0);
    let generator = Generator::new(&mut store, config)?;
    crate::checkpoint::load(run, &store)?;
    Ok(GeneratorRun {
        vae,
        generator,
        store,
        scale: meta_field(run, &meta, "latent_scale")?,
        patch: meta_field(run, &meta, "patch")?,
        config: read_config(run)?,
    })
}

/// Reconstruction scores of a VAE run: (key, label, relative L2) rows.
pub fn eval_vae(gpu: &Gpu, run: &Path, data: &Path, fine: Option<&Path>) -> Result<Vec<(String, String, f64)>> {
    let VaeRun { vae, store, norm, dataset } = load_vae(gpu, run)?;
    let data_cfg = read_config(run)?.data;
    let max_test = data_cfg.max_test;
    let mut rows = Vec::new();
    let interp = vae.interp.is_some();
    for split in [Split::InD, Split::OutD] {
        let truth = load_data(data, &data_cfg, dataset, split)?;
        let mut input = truth.clone();
        norm.apply(&mut input)?;
        let ratios: &[f32] = if interp { &[1.0, 0.5, 0.2, 0.1] } else { &[1.0] };
        for &ratio in ratios {
            let mut rec = input.clone();
            rec.data = if interp {
                crate::train::reconstruct_points(gpu, &vae, &store, &input, ratio, 0, 16, None)?
            } else {
                crate::train::reconstruct(gpu, &vae, &store, &input, 16)?
            };
            norm.invert(&mut rec)?;
            let rel = crate::metrics::relative_l2(&rec.data, &truth.data, truth.stride());
            let pct = (ratio * 100.0).round() as u32;
            rows.push((
                format!("{}_rel_l2_{pct}", split.name()),
                format!("{:>5} ({} trajectories), π = {pct:>3} %", split.name(), truth.n()),
                rel,
            ));
        }
        // super-resolution: the same trajectories on a finer grid (from `enma generate --full`)
        if let (true, Some(fine_dir)) = (interp, fine) {
            let mut fine_truth = load_split(fine_dir, dataset, split)?;
            fine_truth.truncate(max_test);
            let factor_t = fine_truth.frames() / truth.frames().max(1);
            let target: Vec<usize> = truth.spatial().iter().map(|s| 2 * s).collect();
            let factor_s = fine_truth.spatial()[0] / target[0].max(1);
            if factor_t == 0 || factor_s == 0 || fine_truth.n() != truth.n() {
                return Err(Error::invalid(
                    "eval",
                    format!("{}: not a finer version of the test file", fine_dir.display()),
                ));
            }
            let fine2 = crate::data::dataset::subsample(&fine_truth, factor_t, factor_s)?;
            let mut rec = fine2.clone();
            rec.data = crate::train::reconstruct_points(gpu, &vae, &store, &input, 1.0, 0, 16, Some(&target))?;
            norm.invert(&mut rec)?;
            let rel = crate::metrics::relative_l2(&rec.data, &fine2.data, fine2.stride());
            rows.push((
                format!("{}_rel_l2_superres", split.name()),
                format!("{:>5} 2× finer output grid", split.name()),
                rel,
            ));
        }
    }
    Ok(rows)
}

/// The scores of one protocol on one split, and the first trajectory's rollout for plots.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SplitEval {
    pub split: String,
    pub scores: RolloutScores,
    pub seconds: f64,
    /// The first trajectory `[T, C, S..]` and its K samples `[K, T, C, S..]` (physical units).
    #[serde(skip)]
    pub example: (Vec<f32>, Vec<f32>),
}

/// Both protocols on both test splits.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GeneratorEval {
    pub context_frames: usize,
    pub samples: usize,
    /// Shape `[T, C, S..]` of one trajectory.
    pub frame_shape: Vec<usize>,
    pub temporal: Vec<SplitEval>,
    pub ivp: Vec<SplitEval>,
}

/// What [`eval_generator`] reports while it runs.
#[derive(Debug)]
pub enum EvalEvent<'a> {
    /// Before the first rollout: how many trajectories (of K samples each) will be rolled out
    /// in all, over both protocols and both splits.
    Start { trajectories: usize },
    /// `n` more trajectories rolled out.
    Progress(usize),
    /// One protocol (`temporal` or `ivp`) on one split is scored.
    Split(&'a str, &'a SplitEval),
}

/// Evaluates a generator run: temporal conditioning on `rollout.context_frames` frames and IVP
/// with a context trajectory, on the In-D and Out-D files in `data`; `on_event` hears how far
/// it is and sees each result as it is ready.
pub fn eval_generator(
    gpu: &Gpu,
    run: &Path,
    data: &Path,
    rollout: &RolloutConfig,
    mut on_event: impl FnMut(EvalEvent),
) -> Result<GeneratorEval> {
    let g = load_generator(gpu, run)?;
    let pipeline = g.pipeline();
    let ivp = RolloutConfig { context_frames: 1, context_trajectory: true, ..*rollout };
    let mut out = GeneratorEval {
        context_frames: rollout.context_frames,
        samples: rollout.samples,
        frame_shape: Vec::new(),
        temporal: Vec::new(),
        ivp: Vec::new(),
    };
    let mut splits = Vec::new();
    for split in [Split::InD, Split::OutD] {
        let truth = load_data(data, &g.config.data, g.vae.dataset, split)?;
        splits.push((split, truth));
    }
    on_event(EvalEvent::Start { trajectories: 2 * splits.iter().map(|(_, t)| t.n()).sum::<usize>() });
    for (protocol, cfg) in [("temporal", rollout), ("ivp", &ivp)] {
        for (split, truth) in &splits {
            out.frame_shape = truth.shape[1..].to_vec();
            let mut input = truth.clone();
            g.vae.norm.apply(&mut input)?;
            let t0 = Instant::now();
            let pred = crate::eval::rollout_with_progress(gpu, &pipeline, &input, cfg, &mut |n| {
                on_event(EvalEvent::Progress(n))
            })?;
            let scores = crate::eval::score(&pred, truth, &g.vae.norm, cfg)?;
            let seconds = t0.elapsed().as_secs_f64();
            let stride = truth.stride();
            let k = cfg.samples;
            let mut one = truth.clone();
            one.truncate(1);
            let samples = crate::eval::physical(&pred[..k * stride], &one, &g.vae.norm, k)?;
            let e = SplitEval {
                split: split.name().to_string(),
                scores,
                seconds,
                example: (truth.data[..stride].to_vec(), samples),
            };
            on_event(EvalEvent::Split(protocol, &e));
            if protocol == "temporal" { out.temporal.push(e) } else { out.ivp.push(e) }
        }
    }
    Ok(out)
}

/// Rolls out the first `trajectories` (0: all) of a test split `K` times with a generator run
/// and writes the samples, in physical units, as an HDF5 file laid out like the data files
/// (`[N·K, T, C, S..]`, trajectory-major; each sample keeps its trajectory's parameters and
/// environment; attributes `samples`, `context_frames`, `source`). `on_event` hears the
/// [`EvalEvent::Start`] and [`EvalEvent::Progress`] of the rollout. Returns its scores.
#[allow(clippy::too_many_arguments)]
pub fn rollout_to_file(
    gpu: &Gpu,
    run: &Path,
    data: &Path,
    split: Split,
    trajectories: usize,
    cfg: &RolloutConfig,
    out: &Path,
    mut on_event: impl FnMut(EvalEvent),
) -> Result<RolloutScores> {
    let g = load_generator(gpu, run)?;
    let mut truth = load_data(data, &g.config.data, g.vae.dataset, split)?;
    truth.truncate(trajectories);
    let mut input = truth.clone();
    g.vae.norm.apply(&mut input)?;
    on_event(EvalEvent::Start { trajectories: truth.n() });
    let pred =
        crate::eval::rollout_with_progress(gpu, &g.pipeline(), &input, cfg, &mut |n| on_event(EvalEvent::Progress(n)))?;
    let scores = crate::eval::score(&pred, &truth, &g.vae.norm, cfg)?;
    let k = cfg.samples;
    let repeat = |v: &[f64]| v.iter().flat_map(|&x| std::iter::repeat_n(x, k)).collect::<Vec<f64>>();
    let mut samples = Trajectories {
        data: crate::eval::physical(&pred, &truth, &g.vae.norm, k)?,
        params: truth.params.iter().map(|(name, v)| (name.clone(), repeat(v))).collect(),
        env: truth.env.iter().flat_map(|&e| std::iter::repeat_n(e, k)).collect(),
        seed: None,
        ..truth.clone()
    };
    samples.shape[0] = truth.n() * k;
    let attrs = hdf5::FileAttrs {
        strings: vec![
            ("source".into(), format!("enma rollout of {}", canonical(run).display())),
            ("dataset".into(), g.vae.dataset.name().into()),
        ],
        numbers: vec![("samples".into(), k as f64), ("context_frames".into(), cfg.context_frames as f64)],
        arrays: Vec::new(),
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    hdf5::write(out, g.vae.dataset.group(split), &samples, &attrs)?;
    Ok(scores)
}

/// Fills the autotuner's cache for `spec` (a preset or .toml file, with `sets`) on `gpu`: a few
/// steps of each training stage on the data in `data`, then a rollout of one In-D trajectory,
/// in a temporary run folder (removed afterwards); the kernels then run on the preset's own
/// shapes, so a later run measures nothing.
pub fn tune_preset(gpu: &Gpu, spec: &str, sets: &[String], data: &Path, quiet: bool) -> Result<()> {
    let mut sets = sets.to_vec();
    // 6 steps: the generator's in-context steps (probability ½ each) are almost surely among them
    sets.extend(
        ["vae.train.steps=2", "gen.train.steps=6", "vae.train.checkpoint_every=0", "gen.train.checkpoint_every=0"]
            .map(String::from),
    );
    let cfg = RunConfig::load(spec, &sets)?;
    let tmp = std::env::temp_dir().join(format!("enma-tune-{}-{}", std::process::id(), cfg.name));
    let result = (|| {
        let opts = TrainOptions { quiet, until: None };
        let (vae, gen_dir) = (tmp.join("vae"), tmp.join("generator"));
        train(gpu, &cfg, Stage::Vae, data, &vae, None, &opts)?;
        train(gpu, &cfg, Stage::Generator, data, &gen_dir, Some(&vae), &opts)?;
        let rollout = cfg.rollout();
        let out = tmp.join("rollout.h5");
        rollout_to_file(gpu, &gen_dir, data, Split::InD, 1, &rollout, &out, |_| {}).map(drop)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}
