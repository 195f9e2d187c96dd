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
    print!("{}", l.summary());
    Ok(())
}

/// A spinner with elapsed time for long steps without a step count (hidden when `hidden`).
pub fn spinner(hidden: bool, message: &str) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// A progress bar over the rollouts of [`enma::run::eval_generator`] (trajectories of K samples,
/// rate and ETA; hidden when `hidden`) and the callback that drives it; `on_split` sees each
/// scored split (printed above the bar).
pub fn eval_progress<'a>(
    hidden: bool,
    samples: usize,
    mut on_split: impl FnMut(&str, &enma::run::SplitEval) + 'a,
) -> (ProgressBar, impl FnMut(enma::run::EvalEvent) + 'a) {
    let bar = if hidden { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(
        ProgressStyle::with_template(
            "rolling out [{bar:30}] {pos}/{len} trajectories × {msg} samples, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(samples.to_string());
    let b = bar.clone();
    let handler = move |event: enma::run::EvalEvent| match event {
        enma::run::EvalEvent::Start { trajectories } => {
            b.set_length(trajectories as u64);
            b.reset_eta();
        }
        enma::run::EvalEvent::Progress(n) => b.inc(n as u64),
        enma::run::EvalEvent::Split(protocol, e) => b.suspend(|| on_split(protocol, e)),
    };
    (bar, handler)
}

/// Prints a VAE evaluation (rows of [`enma::run::eval_vae`]) as text or one JSON object.
pub fn print_vae_eval(rows: &[(String, String, f64)], json: bool) {
    if json {
        let map: serde_json::Map<String, serde_json::Value> =
            rows.iter().map(|(k, _, v)| (k.clone(), serde_json::json!(v))).collect();
        println!("{}", serde_json::Value::Object(map));
    } else {
        for (_, label, v) in rows {
            println!("{label}: reconstruction relative L2 {v:.4e}");
        }
    }
}

/// Prints one line of the generator evaluation table (with the header before a protocol's
/// first split).
pub fn print_split(protocol: &str, e: &enma::run::SplitEval, context: usize) {
    if e.split == Split::InD.name() {
        if protocol == "ivp" {
            println!("IVP with a context trajectory (first frame + another trajectory of the same environment):");
        } else {
            println!("temporal conditioning on the first {context} frames:");
        }
        println!("  split  trajectories  rel L2 (samples)  rel L2 (mean)  repeat last  CRPS       RMSCE      seconds");
    }
    let s = &e.scores;
    println!(
        "  {:<6} {:>12}  {:>16.4e}  {:>13.4e}  {:>11.4e}  {:.3e}  {:.3e}  {:.1}",
        e.split, s.trajectories, s.rel_l2, s.rel_l2_mean, s.rel_l2_repeat_last, s.crps, s.rmsce, e.seconds
    );
}

/// The generator evaluation as one JSON object: `{temporal: {test: .., ood: ..}, ivp: {..}}`.
pub fn eval_json(e: &enma::run::GeneratorEval) -> serde_json::Value {
    let part = |v: &[enma::run::SplitEval]| {
        let map: serde_json::Map<String, serde_json::Value> = v
            .iter()
            .map(|s| {
                let mut j = serde_json::to_value(&s.scores).unwrap_or_default();
                j["seconds"] = serde_json::json!(s.seconds);
                (s.split.clone(), j)
            })
            .collect();
        serde_json::Value::Object(map)
    };
    serde_json::json!({"context_frames": e.context_frames, "samples": e.samples, "temporal": part(&e.temporal), "ivp": part(&e.ivp)})
}

/// Trains a stage into `dir` unless a finished run with the same configuration is there;
/// continues an interrupted one.
fn train_or_reuse(
    gpu: &enma::Gpu,
    cfg: &enma::config::RunConfig,
    stage: enma::run::Stage,
    data: &Path,
    dir: &Path,
    vae: Option<&Path>,
    opts: &enma::run::TrainOptions,
) -> enma::Result<f64> {
    if let (Ok(meta), Ok(saved)) = (enma::run::read_meta(dir), enma::run::read_config(dir)) {
        if saved == *cfg && meta["complete"] == true {
            println!("{}: already trained in {} (delete the folder to train again)", stage.name(), dir.display());
            return Ok(meta["seconds"].as_f64().unwrap_or(0.0));
        }
        if saved == *cfg && meta["step"].is_u64() {
            println!("{}: continuing the interrupted run in {}", stage.name(), dir.display());
            return Ok(enma::run::resume(gpu, dir, opts)?.seconds);
        }
    }
    let s = enma::run::train(gpu, cfg, stage, data, dir, vae, opts)?;
    println!("{}: {} steps in {:.0} s, final loss {:.4e}", stage.name(), s.steps, s.seconds, s.final_loss);
    Ok(s.seconds)
}

/// `enma quickstart`: data, both stages, evaluation with uncertainty, plots and `report.md`
/// in `out`, and the results table.
pub fn quickstart(
    gpu: &enma::Gpu,
    cfg: &enma::config::RunConfig,
    data: &Path,
    out: &Path,
    quiet: bool,
) -> enma::Result<()> {
    use enma::run::Stage;
    let t0 = Instant::now();
    let dataset = cfg.dataset()?;
    println!(
        "enma quickstart `{}`: {} data ({}), VAE {} steps, generator {} steps, on {}",
        cfg.name,
        dataset.name(),
        cfg.data.size,
        cfg.vae.train.steps,
        cfg.generator.train.steps,
        gpu.adapter().name
    );
    let have: Vec<Split> = Split::all()
        .into_iter()
        .filter(|s| !data.join(format!("{}_{}.h5", dataset.name(), s.name())).is_file())
        .collect();
    if !have.is_empty() {
        let gen_cfg = GenConfig::new(dataset, cfg.data_size()?, cfg.seed);
        generate(&gen_cfg, data, None, &have, false, quiet)?;
    }
    let opts = enma::run::TrainOptions { quiet, until: None };
    let (vae_dir, gen_dir) = (out.join("vae"), out.join("generator"));
    let vae_seconds = train_or_reuse(gpu, cfg, Stage::Vae, data, &vae_dir, None, &opts)?;
    let gen_seconds = train_or_reuse(gpu, cfg, Stage::Generator, data, &gen_dir, Some(&vae_dir), &opts)?;
    let t_eval = Instant::now();
    let bar = spinner(quiet, "evaluating the VAE on the In-D and Out-D test sets");
    let vae_rows = enma::run::eval_vae(gpu, &vae_dir, data, None)?;
    bar.finish_and_clear();
    let (bar, progress) = eval_progress(quiet, cfg.rollout().samples, |_, _| {});
    let eval = enma::run::eval_generator(gpu, &gen_dir, data, &cfg.rollout(), progress)?;
    bar.finish_and_clear();
    let eval_seconds = t_eval.elapsed().as_secs_f64();
    let plots = enma::report::write_plots(&eval, &vae_dir, &gen_dir, &out.join("plots"))?;
    let report = enma::report::ReportInputs {
        config: cfg,
        adapter: gpu.adapter().name.clone(),
        vae_seconds,
        gen_seconds,
        eval_seconds,
        vae_rows: &vae_rows,
        eval: &eval,
        plots: plots.iter().filter_map(|p| p.strip_prefix(out).ok()).map(|p| p.display().to_string()).collect(),
    };
    let md = enma::report::markdown_report(&report)?;
    enma::checkpoint::write_atomic(&out.join("report.md"), md.as_bytes())?;
    // the headline numbers of temporal conditioning In-D: the ensemble mean against repeating
    // the last frame, and the error of the first generated frame
    let in_d = eval.temporal.iter().find(|e| e.split == Split::InD.name()).map(|e| {
        let s = &e.scores;
        serde_json::json!({
            "mean_over_repeat_last": s.rel_l2_mean / s.rel_l2_repeat_last,
            "first_frame": s.horizon.first(),
        })
    });
    let json = serde_json::json!({
        "seconds": {"total": t0.elapsed().as_secs_f64(), "vae": vae_seconds, "generator": gen_seconds, "eval": eval_seconds},
        "temporal_in_d": in_d,
        "vae": vae_rows.iter().map(|(k, _, v)| (k.clone(), *v)).collect::<std::collections::BTreeMap<_, _>>(),
        "generator": eval_json(&eval),
    });
    enma::checkpoint::write_atomic(&out.join("results.json"), json.to_string().as_bytes())?;
    println!();
    print_vae_eval(&vae_rows, false);
    for (protocol, list) in [("temporal", &eval.temporal), ("ivp", &eval.ivp)] {
        for e in list.iter() {
            print_split(protocol, e, eval.context_frames);
        }
    }
    let (paper_in, paper_out) = enma::report::paper_reference(dataset);
    println!(
        "paper (ENMA, full size, 8 A100-hours): In-D {paper_in:.2e}, Out-D {paper_out:.2e} (temporal conditioning)"
    );
    if cfg.data.size == "tiny" {
        println!(
            "\nThis tiny budget shows the pipeline, not the paper's accuracy. For more, train a larger preset:\n  enma quickstart --preset advection-tiny     (the full tiny schedule)\n  enma quickstart --preset advection-small    (a model worth a GPU)"
        );
    }
    println!(
        "\nreport: {}  plots: {}  ({:.0} s in all)",
        out.join("report.md").display(),
        out.join("plots").display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Prints the autotuner's choices for this adapter (`enma tune`): per op and shape class, the
/// kernel picked and the median time of each candidate.
pub fn print_tune(gpu: &enma::Gpu, json: bool) -> enma::Result<()> {
    let table = gpu.tune_table();
    let file = gpu.tune_cache_file();
    if json {
        let v = serde_json::json!({
            "adapter": gpu.adapter().name, "driver": gpu.adapter().driver_info,
            "cache": file, "tuning": gpu.tuning_enabled(), "choices": table,
        });
        println!("{v}");
        return Ok(());
    }
    println!("adapter {} ({})", gpu.adapter().name, gpu.adapter().driver_info);
    match &file {
        Some(f) => println!("cache   {}", f.display()),
        None => println!("cache   none (no cache folder: set ENMA_CACHE_DIR)"),
    }
    if table.is_empty() {
        println!("no choices yet: `enma tune --preset P` measures them (or any run does, on first use)");
    }
    for (key, c) in &table {
        let times: Vec<String> = c.times_ms.iter().map(|(k, ms)| format!("{k} {ms:.3}")).collect();
        println!("{key:<56} -> {:<18} [{} ms]", c.pick, times.join(", "));
    }
    Ok(())
}
