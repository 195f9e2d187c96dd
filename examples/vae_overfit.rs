//! Scratch: how fast does a small VAE overfit 8 advection trajectories?
use enma::data::generate::{GenConfig, PdeName, Preset, generate_split};
use enma::data::pde::Split;
use enma::model::{Block, InterpConfig, Vae, VaeConfig};
use enma::train::{VaeTrainConfig, reconstruct, reconstruct_points, train_vae};
use enma::{Gpu, ParamStore};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: f64| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (width, maxw, steps, lr, ts, xs, interp) = (
        arg(1, 8.0) as usize,
        arg(2, 16.0) as usize,
        arg(3, 300.0) as u64,
        arg(4, 3e-3) as f32,
        arg(5, 1.0) as usize,
        arg(6, 1.0) as usize,
        arg(7, 0.0) as usize,
    );
    let nblocks = arg(8, 0.0) as usize;
    let g = Gpu::new(Default::default()).unwrap();
    let full =
        generate_split(&GenConfig::new(PdeName::Advection, Preset::Tiny, 5), Split::Train, 0..1, &|| {}).unwrap();
    let mut tr = enma::data::dataset::subsample(&full, ts, xs).unwrap();
    tr.shape[0] = 8;
    tr.data.truncate(8 * tr.stride());
    tr.env.truncate(8);
    let norm = enma::data::dataset::Normalization::fit(&tr);
    norm.apply(&mut tr).unwrap();
    let blocks = match nblocks {
        0 => vec![Block::Res, Block::Space, Block::Res, Block::Time],
        1 => vec![Block::Res, Block::Space, Block::Res, Block::Space, Block::Res, Block::Time, Block::Res],
        _ => vec![
            Block::Res,
            Block::Space,
            Block::Res,
            Block::Space,
            Block::Res,
            Block::Space,
            Block::Res,
            Block::Time,
            Block::Res,
        ],
    };
    let mut cfg = VaeConfig {
        channels: 1,
        spatial_axes: 1,
        width,
        max_width: maxw,
        latent_dim: 4,
        blocks,
        kl_weight: 1e-4,
        interp: None,
    };
    if interp > 0 {
        cfg.interp =
            Some(InterpConfig { grid: vec![tr.spatial()[0]], features: interp, layers: 1, slices: 4, periodic: true });
    }
    let mut store = ParamStore::new(&g, 3);
    let vae = Vae::new(&mut store, cfg).unwrap();
    eprintln!("shape {:?} params {}", tr.shape, store.len());
    let t0 = std::time::Instant::now();
    let tcfg = VaeTrainConfig { steps, batch: 8, lr, lr_floor: 1e-5, seed: 1 };
    train_vae(&g, &vae, &store, &tr, &tcfg, |l| {
        if l.step % 50 == 0 || l.step + 1 == steps {
            eprintln!("step {} loss {:.4} t {:.1}s", l.step, l.loss, t0.elapsed().as_secs_f32());
        }
    })
    .unwrap();
    if std::env::var("PROF").is_ok() {
        g.set_profiling(true).unwrap();
        let one = VaeTrainConfig { steps: 1, ..tcfg };
        let t1 = std::time::Instant::now();
        train_vae(&g, &vae, &store, &tr, &one, |_| {}).unwrap();
        let rows = g.profile().unwrap();
        let total: f64 = rows.iter().map(|r| r.total_ms).sum();
        let n: usize = rows.iter().map(|r| r.dispatches as usize).sum();
        eprintln!("profiled step wall {:?}, gpu {total:.1} ms, {n} dispatches", t1.elapsed());
        for r in rows.iter().take(15) {
            eprintln!("{:>9.2} ms {:>6} {}", r.total_ms, r.dispatches, r.kernel);
        }
        g.set_profiling(false).unwrap();
    }
    if interp > 0 {
        for r in [1.0, 0.5] {
            let rec = reconstruct_points(&g, &vae, &store, &tr, r, 1, 8, None).unwrap();
            eprintln!("rel L2 at {r}: {}", enma::metrics::relative_l2(&rec, &tr.data, tr.stride()));
        }
    } else {
        let rec = reconstruct(&g, &vae, &store, &tr, 8).unwrap();
        eprintln!("rel L2 {}", enma::metrics::relative_l2(&rec, &tr.data, tr.stride()));
    }
}
