//! Rollout throughput (`cargo bench --bench rollout`): the advection-tiny pipeline (VAE max
//! width 64, generator width 64, depth 2 + 2, flow head 2 × 128, S = 6, N = 5) continues
//! trajectories of 20 frames × 128 points from their first 5 frames, K = 16 samples each,
//! all as one batch, decoded back to physical frames. Weights are untrained: the cost does not
//! depend on them. `-- --trajectories N` sets the count (default 8); `-- --json` prints one
//! JSON object.

use enma::data::generate::{GenConfig, PdeName, Preset, generate_split};
use enma::eval::{Pipeline, RolloutConfig, rollout};
use enma::model::enma::{Generator, GeneratorConfig};
use enma::model::{Vae, VaeConfig};
use enma::{Gpu, GpuOptions, ParamStore};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> enma::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let n: usize = args
        .iter()
        .position(|a| a == "--trajectories")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let gpu = Gpu::new(GpuOptions::default())?;
    let mut data = generate_split(
        &GenConfig::new(PdeName::Advection, Preset::Tiny, 1),
        enma::data::pde::Split::InD,
        0..n.div_ceil(10),
        &|| {},
    )?;
    data.shape[0] = n.min(data.n());
    data.data.truncate(data.n() * data.stride());
    data.env.truncate(data.n());
    let mut vs = ParamStore::new(&gpu, 1);
    let vae = Vae::new(&mut vs, VaeConfig::for_dataset(PdeName::Advection, 64))?;
    let mut gs = ParamStore::new(&gpu, 2);
    let generator = Generator::new(&mut gs, GeneratorConfig::tiny(4, vec![16]))?;
    let p = Pipeline { vae: &vae, vae_store: &vs, generator: &generator, gen_store: &gs, scale: 1.0, patch: 1 };
    let cfg = RolloutConfig {
        context_frames: 5,
        context_trajectory: false,
        samples: 16,
        batch: 16 * data.n(),
        temperature: 1.0,
        seed: 1,
    };
    // one warm-up run compiles every pipeline
    let mut small = enma::data::hdf5::Trajectories {
        data: data.data[..data.stride()].to_vec(),
        env: vec![data.env[0]],
        ..data.clone()
    };
    small.shape[0] = 1;
    rollout(&gpu, &p, &small, &cfg)?;
    let t0 = std::time::Instant::now();
    rollout(&gpu, &p, &data, &cfg)?;
    let secs = t0.elapsed().as_secs_f64();
    let samples = data.n() * cfg.samples;
    if json {
        println!(
            "{}",
            serde_json::json!({"bench": "rollout advection-tiny", "adapter": gpu.adapter().name, "trajectories": data.n(),
                "samples": samples, "seconds": secs, "trajectories_per_s": data.n() as f64 / secs,
                "samples_per_s": samples as f64 / secs})
        );
    } else {
        println!("adapter: {}", gpu.adapter().name);
        println!(
            "rollout advection-tiny: {} trajectories × {} samples (15 new frames each) in {secs:.2} s: {:.2} trajectories/s, {:.1} samples/s",
            data.n(),
            cfg.samples,
            data.n() as f64 / secs,
            samples as f64 / secs
        );
    }
    Ok(())
}
