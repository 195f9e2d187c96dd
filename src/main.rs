//! The `enma` command line: thin, everything lives in the library.

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use enma::data::generate::{GenConfig, PdeName, Preset};
use enma::data::pde::Split;
use enma::{Gpu, GpuOptions};

mod cli;

#[derive(Parser)]
#[command(name = "enma", version, about = "ENMA generative neural PDE operator on wgpu")]
struct Cli {
    /// Backends to consider (vulkan, metal, dx12, gl; comma-separated). WGPU_BACKEND overrides.
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Use only an adapter whose name contains this. WGPU_ADAPTER_NAME overrides.
    #[arg(long, global = true)]
    adapter: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// How generator rollouts run (defaults from the run's `[eval]`).
#[derive(clap::Args)]
struct RolloutArgs {
    /// Observed physical frames L (odd; default from the run's [eval]).
    #[arg(long)]
    context: Option<usize>,
    /// Samples per trajectory (default from the run's [eval]).
    #[arg(long)]
    samples: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl RolloutArgs {
    /// The run's rollout settings with these changes.
    fn config(&self, run: &std::path::Path) -> enma::Result<enma::eval::RolloutConfig> {
        let mut cfg = enma::run::read_config(run)?.rollout();
        cfg.context_frames = self.context.unwrap_or(cfg.context_frames);
        cfg.samples = self.samples.unwrap_or(cfg.samples);
        cfg.seed = self.seed;
        Ok(cfg)
    }
}

/// `--data`, or the folder the run was trained from.
fn run_data(run: &std::path::Path, data: Option<PathBuf>) -> enma::Result<PathBuf> {
    match data {
        Some(d) => Ok(d),
        None => enma::run::meta_field(run, &enma::run::read_meta(run)?, "data"),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Generate a benchmark dataset (train, In-D test and Out-D test files) with our solvers.
    Generate {
        /// advection, combined, wave, gray-scott or vorticity.
        #[arg(long)]
        dataset: String,
        /// tiny, small or paper.
        #[arg(long, default_value = "tiny")]
        preset: String,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Only the environments of shard I of N (`I/N`, 0-based); join shards with `enma merge`.
        #[arg(long)]
        shard: Option<String>,
        /// Only these splits (train, test, ood; comma-separated).
        #[arg(long)]
        splits: Option<String>,
        /// Keep the full solver resolution of the 1D sets.
        #[arg(long)]
        full: bool,
        /// Gray–Scott diffusion as printed in the paper (D_u, D_v) = (0.102, 0.204).
        #[arg(long)]
        gs_as_printed: bool,
        /// Start a `paper` run that is estimated to take over an hour.
        #[arg(long)]
        yes: bool,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Train a stage of ENMA: `--stage vae`, then `--stage generator --vae <the VAE run>`;
    /// or continue an interrupted run with `--resume <run folder>`.
    Train {
        /// A preset (advection-tiny, vorticity-small, …; `enma config --list`) or a .toml file.
        #[arg(long, default_value = "advection-tiny")]
        preset: String,
        /// Change a configuration field: `--set gen.width=128` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        #[arg(long, default_value = "vae")]
        stage: String,
        /// Folder with `<dataset>_train.h5` (from `enma generate`; default data/<dataset>-<size>).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Run folder for the checkpoint and metrics (default runs/<preset>-<stage>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Shortcut for `--set <stage>.train.steps=N`.
        #[arg(long)]
        steps: Option<u64>,
        /// Shortcut for `--set <stage>.train.batch=N`.
        #[arg(long)]
        batch: Option<usize>,
        /// Shortcut for `--set seed=N`.
        #[arg(long)]
        seed: Option<u64>,
        /// Shortcut for `--set vae.interp.enabled=true` (irregular inputs: 20–100 % of the points).
        #[arg(long)]
        interp: bool,
        /// The trained VAE run whose latents the generator models (`--stage generator`).
        #[arg(long)]
        vae: Option<PathBuf>,
        /// Continue the run in this folder from its last checkpoint (same numbers as an
        /// uninterrupted run on the same adapter); every other option comes from the folder.
        #[arg(long, conflicts_with_all = ["sets", "steps", "batch", "seed", "interp", "vae", "data", "out"])]
        resume: Option<PathBuf>,
        /// Stop after this many steps of the schedule, with a checkpoint (continue with
        /// `--resume`).
        #[arg(long)]
        until: Option<u64>,
        #[arg(long)]
        quiet: bool,
        /// Print a JSON summary at the end.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate a trained run on the In-D and Out-D test files (the stage is read from the run).
    Eval {
        /// The run folder written by `enma train`.
        #[arg(long)]
        run: PathBuf,
        /// Folder with the test files (default: the folder the run was trained from).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Folder with the same test files on a finer grid (`enma generate --full`), for the
        /// super-resolution score of interpolating models.
        #[arg(long)]
        fine: Option<PathBuf>,
        /// Generator rollouts.
        #[command(flatten)]
        rollout: RolloutArgs,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The main job: generate the data, train both stages, evaluate both protocols with
    /// uncertainty, write plots and `report.md` into the run folder, print the results.
    Quickstart {
        /// A preset or a .toml file (`quickstart`: advection-tiny with a short schedule).
        #[arg(long, default_value = "quickstart")]
        preset: String,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Data folder (generated when missing; default data/<dataset>-<size>).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Run folder (default runs/<preset>).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        quiet: bool,
    },
    /// Plots of a trained generator run (evaluated with its [eval] settings): training losses,
    /// truth / ensemble mean / error images, ±2σ bands, error over the rollout horizon.
    Plot {
        /// The generator run folder.
        #[arg(long)]
        run: PathBuf,
        /// Folder with the test files (default: the folder the run was trained from).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Where to write the PNG files (default <run>/plots).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Roll out test trajectories with a generator run and write the K samples of each, in
    /// physical units, to an HDF5 file laid out like the data files.
    Rollout {
        /// The generator run folder.
        #[arg(long)]
        run: PathBuf,
        /// Folder with the test files (default: the folder the run was trained from).
        #[arg(long)]
        data: Option<PathBuf>,
        /// test (In-D) or ood (Out-D).
        #[arg(long, default_value = "test")]
        split: String,
        /// Only the first N trajectories (0 = all).
        #[arg(long, default_value_t = 0)]
        trajectories: usize,
        #[command(flatten)]
        rollout: RolloutArgs,
        /// The HDF5 file to write.
        #[arg(long)]
        out: PathBuf,
        /// Print the scores as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print a resolved configuration (a preset or a .toml file, with `--set` changes), or the
    /// list of presets.
    Config {
        #[arg(long, default_value = "advection-tiny")]
        preset: String,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// List the built-in presets.
        #[arg(long)]
        list: bool,
    },
    /// Print the layout, shapes, parameter ranges and value statistics of an HDF5 file.
    Inspect { file: PathBuf },
    /// Join shard files of one split (from `enma generate --shard`) into one file.
    Merge {
        /// The merged file to write.
        #[arg(long)]
        out: PathBuf,
        shards: Vec<PathBuf>,
    },
    /// Fill the autotuner's cache for a preset (a few training steps of both stages and a
    /// rollout on its data, measuring every kernel variant on its shapes), or show the cache.
    Tune {
        #[arg(long, default_value = "advection-tiny")]
        preset: String,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Data folder (default data/<dataset>-<size>; `enma generate` makes it).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Only list the cached choices of this adapter, with the time of each candidate.
        #[arg(long)]
        show: bool,
        /// Print the choices as one JSON object.
        #[arg(long)]
        json: bool,
        #[arg(long)]
        quiet: bool,
    },
    /// Print the adapter, backend, driver, features and limits enma will use.
    Info {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// List every adapter seen, and why enma cannot use the ones it skips.
        #[arg(long)]
        all: bool,
    },
}

fn run(cli: Cli) -> enma::Result<()> {
    let options = GpuOptions { backends: cli.backend, adapter_name: cli.adapter, tune: None };
    match cli.command {
        Command::Generate { dataset, preset, out, seed, shard, splits, full, gs_as_printed, yes, quiet } => {
            let mut cfg = GenConfig::new(PdeName::parse(&dataset)?, Preset::parse(&preset)?, seed);
            cfg.full = full;
            cfg.gs_as_printed = gs_as_printed;
            let shard = shard.map(|s| parse_shard(&s)).transpose()?;
            let splits = match splits {
                None => Split::all().to_vec(),
                Some(s) => s.split(',').map(parse_split).collect::<enma::Result<Vec<_>>>()?,
            };
            cli::generate(&cfg, &out, shard, &splits, yes, quiet)?;
        }
        Command::Inspect { file } => cli::inspect(&file)?,
        Command::Train {
            preset,
            mut sets,
            stage,
            data,
            out,
            steps,
            batch,
            seed,
            interp,
            vae,
            resume,
            until,
            quiet,
            json,
        } => {
            let opts = enma::run::TrainOptions { quiet, until };
            let summary = if let Some(dir) = resume {
                let gpu = Gpu::new(options)?;
                enma::run::resume(&gpu, &dir, &opts)?
            } else {
                let stage = enma::run::Stage::parse(&stage)?;
                let section = if stage == enma::run::Stage::Vae { "vae" } else { "gen" };
                sets.extend(steps.map(|n| format!("{section}.train.steps={n}")));
                sets.extend(batch.map(|n| format!("{section}.train.batch={n}")));
                sets.extend(seed.map(|n| format!("seed={n}")));
                if interp {
                    sets.push("vae.interp.enabled=true".into());
                }
                let cfg = enma::config::RunConfig::load(&preset, &sets)?;
                let data =
                    data.unwrap_or_else(|| PathBuf::from(format!("data/{}-{}", cfg.data.dataset, cfg.data.size)));
                let out = out.unwrap_or_else(|| PathBuf::from(format!("runs/{}-{}", cfg.name, stage.name())));
                let gpu = Gpu::new(options)?;
                enma::run::train(&gpu, &cfg, stage, &data, &out, vae.as_deref(), &opts)?
            };
            if json {
                let v = serde_json::to_string(&summary).map_err(|e| enma::Error::invalid("train", e.to_string()))?;
                println!("{v}");
            } else {
                println!(
                    "trained the {} {} steps ({} in this call) in {:.1} s, final loss {:.4e}; run folder {}",
                    summary.stage.name(),
                    summary.steps,
                    summary.new_steps,
                    summary.seconds,
                    summary.final_loss,
                    summary.dir.display()
                );
            }
        }
        Command::Eval { run, data, fine, rollout, json } => {
            let meta = enma::run::read_meta(&run)?;
            let data = run_data(&run, data)?;
            let gpu = Gpu::new(options)?;
            match enma::run::Stage::parse(meta["stage"].as_str().unwrap_or(""))? {
                enma::run::Stage::Vae => {
                    cli::print_vae_eval(&enma::run::eval_vae(&gpu, &run, &data, fine.as_deref())?, json)
                }
                enma::run::Stage::Generator => {
                    let cfg = rollout.config(&run)?;
                    let (bar, progress) = cli::eval_progress(json, cfg.samples, |protocol, e| {
                        if !json {
                            cli::print_split(protocol, e, cfg.context_frames)
                        }
                    });
                    let e = enma::run::eval_generator(&gpu, &run, &data, &cfg, progress)?;
                    bar.finish_and_clear();
                    if json {
                        println!("{}", cli::eval_json(&e));
                    } else {
                        println!(
                            "({} samples per trajectory; relative L2 and CRPS: lower is better; a calibrated ensemble has RMSCE near 0)",
                            cfg.samples
                        );
                    }
                }
            }
        }
        Command::Quickstart { preset, sets, data, out, quiet } => {
            let cfg = enma::config::RunConfig::load(&preset, &sets)?;
            let data = data.unwrap_or_else(|| PathBuf::from(format!("data/{}-{}", cfg.data.dataset, cfg.data.size)));
            let out = out.unwrap_or_else(|| PathBuf::from(format!("runs/{}", cfg.name)));
            let gpu = Gpu::new(options)?;
            cli::quickstart(&gpu, &cfg, &data, &out, quiet)?;
        }
        Command::Plot { run, data, out } => {
            let data = run_data(&run, data)?;
            let vae: PathBuf = enma::run::meta_field(&run, &enma::run::read_meta(&run)?, "vae")?;
            let gpu = Gpu::new(options)?;
            let cfg = enma::run::read_config(&run)?.rollout();
            let (bar, progress) = cli::eval_progress(false, cfg.samples, |_, _| {});
            let e = enma::run::eval_generator(&gpu, &run, &data, &cfg, progress)?;
            bar.finish_and_clear();
            let out = out.unwrap_or_else(|| run.join("plots"));
            for p in enma::report::write_plots(&e, &vae, &run, &out)? {
                println!("{}", p.display());
            }
        }
        Command::Rollout { run, data, split, trajectories, rollout, out, json } => {
            let data = run_data(&run, data)?;
            let cfg = rollout.config(&run)?;
            let split = parse_split(&split)?;
            let gpu = Gpu::new(options)?;
            let t0 = std::time::Instant::now();
            let (bar, progress) = cli::eval_progress(json, cfg.samples, |_, _| {});
            let s = enma::run::rollout_to_file(&gpu, &run, &data, split, trajectories, &cfg, &out, progress)?;
            bar.finish_and_clear();
            let secs = t0.elapsed().as_secs_f64();
            if json {
                let mut v = serde_json::to_value(&s).map_err(|e| enma::Error::invalid("rollout", e.to_string()))?;
                v["seconds"] = serde_json::json!(secs);
                println!("{v}");
            } else {
                println!(
                    "{} trajectories × {} samples in {secs:.1} s ({:.2} samples/s) → {}",
                    s.trajectories,
                    s.samples,
                    (s.trajectories * s.samples) as f64 / secs.max(1e-9),
                    out.display()
                );
                println!(
                    "relative L2 {:.4e} (samples), {:.4e} (ensemble mean), {:.4e} (repeat last); CRPS {:.3e}, RMSCE {:.3e}",
                    s.rel_l2, s.rel_l2_mean, s.rel_l2_repeat_last, s.crps, s.rmsce
                );
            }
        }
        Command::Config { preset, sets, list } => {
            if list {
                for (name, text) in enma::config::PRESETS {
                    let about = text.lines().next().unwrap_or("").trim_start_matches('#').trim();
                    println!("{name:<18} {about}");
                }
            } else {
                print!("{}", enma::config::RunConfig::load(&preset, &sets)?.to_toml()?);
            }
        }
        Command::Merge { out, shards } => {
            enma::data::generate::merge(&shards, &out)?;
            println!("merged {} shards into {}", shards.len(), out.display());
        }
        Command::Tune { preset, sets, data, show, json, quiet } => {
            let gpu = Gpu::new(options)?;
            if !show {
                if !gpu.tuning_enabled() {
                    return Err(enma::Error::invalid("enma tune", "ENMA_TUNE=off: unset it to measure the kernels"));
                }
                let cfg = enma::config::RunConfig::load(&preset, &sets)?;
                let data =
                    data.unwrap_or_else(|| PathBuf::from(format!("data/{}-{}", cfg.data.dataset, cfg.data.size)));
                enma::run::tune_preset(&gpu, &preset, &sets, &data, quiet || json)?;
            }
            cli::print_tune(&gpu, json)?;
        }
        Command::Info { json, all: true } => {
            let list = Gpu::adapters(&options)?;
            if json {
                let v = serde_json::to_string(&list).map_err(|e| enma::Error::invalid("info", e.to_string()))?;
                println!("{v}");
            } else {
                if list.is_empty() {
                    println!("no adapters found (install a GPU driver, or mesa-vulkan-drivers for software Vulkan)");
                }
                for a in &list {
                    let mark = if a.chosen {
                        "*"
                    } else if a.usable {
                        " "
                    } else {
                        "-"
                    };
                    let why = a.reason.as_deref().map(|r| format!("  ({r})")).unwrap_or_default();
                    println!("{mark} {} [{}, {}, {}]{why}", a.name, a.backend, a.device_type, a.driver);
                }
                println!("* = chosen, - = not usable");
            }
        }
        Command::Info { json, all: false } => {
            let gpu = Gpu::new(options)?;
            let a = gpu.adapter();
            if json {
                let v = serde_json::to_string(a).map_err(|e| enma::Error::invalid("info", e.to_string()))?;
                println!("{v}");
            } else {
                let l = &a.limits;
                println!("adapter      {}", a.name);
                println!("backend      {}", a.backend);
                println!("device type  {}", a.device_type);
                println!("driver       {} ({})", a.driver, a.driver_info);
                println!("vendor/dev   {:#06x}/{:#06x}", a.vendor, a.device);
                println!("subgroups    {}..{}", a.subgroup_min_size, a.subgroup_max_size);
                println!("features     {}", a.features.join(", "));
                println!("limits");
                println!("  max_buffer_size                       {}", l.max_buffer_size);
                println!("  max_storage_buffer_binding_size       {}", l.max_storage_buffer_binding_size);
                println!("  max_storage_buffers_per_shader_stage  {}", l.max_storage_buffers_per_shader_stage);
                println!("  max_compute_workgroup_storage_size    {}", l.max_compute_workgroup_storage_size);
                println!("  max_compute_invocations_per_workgroup {}", l.max_compute_invocations_per_workgroup);
                println!("  max_compute_workgroup_size_x          {}", l.max_compute_workgroup_size_x);
                println!("  max_compute_workgroups_per_dimension  {}", l.max_compute_workgroups_per_dimension);
                println!("  max_immediate_size                    {}", l.max_immediate_size);
                println!("  min_storage_buffer_offset_alignment   {}", l.min_storage_buffer_offset_alignment);
            }
        }
    }
    Ok(())
}

fn parse_shard(s: &str) -> enma::Result<(usize, usize)> {
    let bad = || enma::Error::invalid("--shard", format!("`{s}` is not I/N with 0 <= I < N"));
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n) = (i.trim().parse::<usize>().map_err(|_| bad())?, n.trim().parse::<usize>().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

fn parse_split(s: &str) -> enma::Result<Split> {
    match s.trim() {
        "train" => Ok(Split::Train),
        "test" | "ind" | "in-d" => Ok(Split::InD),
        "ood" | "outd" | "out-d" => Ok(Split::OutD),
        other => Err(enma::Error::invalid("--splits", format!("unknown split `{other}`; use train, test or ood"))),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
