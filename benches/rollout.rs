//! Rollout throughput (`cargo bench --bench rollout`): the models of a preset (default
//! `advection-tiny`: VAE max width 64, generator width 64, depth 2 + 2, flow head 2 × 128) continue
//! test trajectories of the preset's dataset from their first `eval.context` frames (5), K = 16
//! samples each, all as one batch, decoded back to physical frames. Weights are untrained: the
//! cost does not depend on them. `-- --preset combined-small` picks another preset (the issue's
//! GPU figure), `-- --trajectories N` sets the count (default 8), `-- --samples K` the samples
//! per trajectory, `-- --json` prints one JSON object, `-- --profile` the GPU time per kernel of
//! one rollout instead.

use enma::config::RunConfig;
use enma::data::generate::{GenConfig, generate_split};
use enma::eval::{Pipeline, RolloutConfig, rollout};
use enma::model::Vae;
use enma::model::enma::Generator;
use enma::{Gpu, GpuOptions, ParamStore};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn count(args: &[String], name: &str, default: usize) -> enma::Result<usize> {
    match arg(args, name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| enma::Error::invalid(name, format!("`{v}` is not a positive whole number"))),
    }
}

fn run() -> enma::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let preset = arg(&args, "--preset").unwrap_or_else(|| "advection-tiny".into());
    let n = count(&args, "--trajectories", 8)?;
    let samples = count(&args, "--samples", 16)?;
    let cfg = RunConfig::load(&preset, &[])?;
    let gpu = Gpu::new(GpuOptions::default())?;
    // test trajectories of the preset's dataset: as many environments as `n` needs
    let solver = GenConfig::new(cfg.dataset()?, cfg.data_size()?, 1);
    let split = enma::data::pde::Split::InD;
    let mut data = generate_split(&solver, split, 0..1, &|| {})?;
    if data.n() < n {
        data = generate_split(&solver, split, 0..n.div_ceil(data.n().max(1)), &|| {})?;
    }
    if cfg.data.time_step > 1 || cfg.data.space_step > 1 {
        data = enma::data::dataset::subsample(&data, cfg.data.time_step, cfg.data.space_step)?;
    }
    data.truncate(n);
    let mut vs = ParamStore::new(&gpu, 1);
    let vae = Vae::new(&mut vs, cfg.vae_config()?)?;
    // the token grid and width follow from the latents of one trajectory
    let mut one = data.clone();
    one.truncate(1);
    let (_, shape) = enma::train::encode_means(&gpu, &vae, &vs, &one, 1)?;
    let patch = cfg.generator.patch;
    let grid: Vec<usize> = shape[2..shape.len() - 1].iter().map(|s| s / patch).collect();
    let token_dim = shape[shape.len() - 1] * patch.pow(grid.len() as u32);
    let mut gs = ParamStore::new(&gpu, 2);
    let generator = Generator::new(&mut gs, cfg.generator_config(token_dim, grid))?;
    let p = Pipeline { vae: &vae, vae_store: &vs, generator: &generator, gen_store: &gs, scale: 1.0, patch };
    let cfg = RolloutConfig { samples, batch: samples * data.n(), temperature: 1.0, seed: 1, ..cfg.rollout() };
    // one warm-up run of the same batch compiles every pipeline and makes every tuning choice
    rollout(&gpu, &p, &data, &cfg)?;
    if args.iter().any(|a| a == "--profile") {
        // GPU time per kernel of one rollout (every dispatch timed: slower than the bench)
        gpu.set_profiling(true)?;
        rollout(&gpu, &p, &data, &cfg)?;
        let rows = gpu.profile()?;
        gpu.set_profiling(false)?;
        let title = format!("rollout {preset} ({} × {})", data.n(), cfg.samples);
        print!("{}", enma::gpu::ProfileEntry::table(&rows, &title, 20));
        return Ok(());
    }
    let t0 = std::time::Instant::now();
    rollout(&gpu, &p, &data, &cfg)?;
    let secs = t0.elapsed().as_secs_f64();
    let samples = data.n() * cfg.samples;
    if json {
        println!(
            "{}",
            serde_json::json!({"bench": format!("rollout {preset}"), "adapter": gpu.adapter().name, "trajectories": data.n(),
                "samples": samples, "seconds": secs, "trajectories_per_s": data.n() as f64 / secs,
                "samples_per_s": samples as f64 / secs})
        );
    } else {
        println!("adapter: {}", gpu.adapter().name);
        println!(
            "rollout {preset}: {} trajectories × {} samples ({} new frames each) in {secs:.2} s: {:.2} trajectories/s, {:.1} samples/s",
            data.n(),
            cfg.samples,
            data.frames().saturating_sub(cfg.context_frames),
            data.n() as f64 / secs,
            samples as f64 / secs
        );
    }
    Ok(())
}
