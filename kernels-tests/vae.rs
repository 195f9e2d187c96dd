//! The causal VAE: latent shapes (the time rule), causality of encoder and decoder, and that a
//! small model learns to reconstruct a few advection trajectories.

use enma::data::generate::{GenConfig, PdeName, Preset, generate_split};
use enma::data::pde::Split;
use enma::model::{Block, Vae, VaeConfig};
use enma::train::{VaeTrainConfig, channels_last, reconstruct, train_vae};
use enma::{ParamStore, Tape, Tensor};

use crate::common::{gpu_rules, rand_vec};

fn small_config() -> VaeConfig {
    VaeConfig {
        channels: 1,
        spatial_axes: 1,
        width: 8,
        max_width: 16,
        latent_dim: 4,
        blocks: vec![Block::Res, Block::Space, Block::Res, Block::Time],
        kl_weight: 1e-4,
        interp: None,
    }
}

#[test]
fn latent_shapes_follow_the_time_rule_and_the_decoder_restores_the_input_shape() {
    let g = gpu_rules();
    let mut store = ParamStore::new(&g, 1);
    let cfg = VaeConfig::for_dataset(PdeName::Advection, 16);
    let vae = Vae::new(&mut store, cfg.clone()).unwrap();
    for (t, latent) in [(20, 11), (30, 16), (50, 26)] {
        assert_eq!(cfg.latent_frames(t), latent);
        let tape = Tape::no_grad(&g);
        let x = tape.constant(Tensor::from_slice(&g, &rand_vec(t * 128, 1, -1.0, 1.0), &[1, t, 128, 1]).unwrap());
        let out = vae.forward(&tape, &store, &x, None).unwrap();
        assert_eq!(out.mean.shape(), &[1, latent, 16, 4], "T = {t}");
        assert_eq!(out.recon.shape(), &[1, t, 128, 1]);
    }
}

#[test]
fn reconstructions_never_depend_on_later_frames() {
    let g = gpu_rules();
    let mut store = ParamStore::new(&g, 2);
    let vae = Vae::new(&mut store, small_config()).unwrap();
    let (t, x) = (8, 16);
    let data = rand_vec(t * x, 3, -1.0, 1.0);
    let run = |d: &[f32]| {
        let tape = Tape::no_grad(&g);
        vae.forward(&tape, &store, &tape.constant(Tensor::from_slice(&g, d, &[1, t, x, 1]).unwrap()), None)
            .unwrap()
            .recon
            .to_vec()
            .unwrap()
    };
    let base = run(&data);
    for frame in [3, 6] {
        let mut d = data.clone();
        for v in &mut d[frame * x..(frame + 1) * x] {
            *v += 1.0;
        }
        let out = run(&d);
        // latent k sees frames ≤ 2k and decodes frames 2k − 1 and 2k: frames < frame − 1 are safe
        let safe = frame.saturating_sub(1) / 2 * 2;
        assert_eq!(out[..safe.saturating_sub(1) * x], base[..safe.saturating_sub(1) * x], "frame {frame}");
        assert_ne!(out[frame * x..], base[frame * x..]);
    }
}

/// 8 advection trajectories of the tiny preset, every second frame and point (10 × 64),
/// normalised.
fn eight_trajectories() -> enma::data::hdf5::Trajectories {
    let full =
        generate_split(&GenConfig::new(PdeName::Advection, Preset::Tiny, 5), Split::Train, 0..1, &|| {}).unwrap();
    let mut tr = enma::data::dataset::subsample(&full, 2, 2).unwrap();
    tr.shape[0] = 8;
    tr.data.truncate(8 * tr.stride());
    tr.env.truncate(8);
    let norm = enma::data::dataset::Normalization::fit(&tr);
    norm.apply(&mut tr).unwrap();
    tr
}

#[test]
fn the_vae_overfits_eight_trajectories() {
    let g = gpu_rules();
    let tr = eight_trajectories();
    let mut store = ParamStore::new(&g, 3);
    let vae = Vae::new(&mut store, small_config()).unwrap();
    let mut losses = Vec::new();
    let cfg = VaeTrainConfig { steps: 1500, batch: 8, lr: 1e-2, lr_floor: 1e-5, seed: 1 };
    let t0 = std::time::Instant::now();
    train_vae(&g, &vae, &store, &tr, &cfg, &Default::default(), &mut |l: enma::train::StepLog| losses.push(l.loss))
        .unwrap();
    let rec = reconstruct(&g, &vae, &store, &tr, 8).unwrap();
    let rel = enma::metrics::relative_l2(&rec, &tr.data, tr.stride());
    eprintln!(
        "VAE overfit (8 trajectories, 10 x 64): loss {} -> {}, relative L2 {rel:.2e} after {} steps in {:.0?}",
        losses[0],
        losses.last().unwrap(),
        cfg.steps,
        t0.elapsed()
    );
    assert!(rel < 1e-2, "relative L2 {rel}");
    let (x, shape) = channels_last(&tr, &[0, 1]).unwrap();
    assert_eq!(shape, vec![2, 10, 64, 1]);
    assert_eq!(x.len(), 2 * 10 * 64);
}

/// The second overfit threshold: with the interpolation module (cross-attention onto a
/// learned 64-point grid, one Physics Attention layer), trained on a random 20–100 % of the
/// points of every sample, the VAE reconstructs all 64 points from half of them to relative
/// L2 < 3e-2 (lavapipe: 9.6e-3 from all points, 2.6e-2 from half, 1,500 steps in ≈ 6.5 min).
#[test]
fn with_the_interpolation_module_it_overfits_from_half_of_the_points() {
    use enma::model::InterpConfig;
    use enma::train::reconstruct_points;
    let g = gpu_rules();
    let tr = eight_trajectories();
    let mut cfg = small_config();
    cfg.interp = Some(InterpConfig { grid: vec![64], features: 16, layers: 1, slices: 4, periodic: true });
    let mut store = ParamStore::new(&g, 4);
    let vae = Vae::new(&mut store, cfg).unwrap();
    let mut losses = Vec::new();
    let tcfg = VaeTrainConfig { steps: 1500, batch: 8, lr: 1e-2, lr_floor: 1e-5, seed: 2 };
    let t0 = std::time::Instant::now();
    train_vae(&g, &vae, &store, &tr, &tcfg, &Default::default(), &mut |l: enma::train::StepLog| losses.push(l.loss))
        .unwrap();
    let elapsed = t0.elapsed();
    let full = reconstruct_points(&g, &vae, &store, &tr, 1.0, 1, 8, None).unwrap();
    let half = reconstruct_points(&g, &vae, &store, &tr, 0.5, 1, 8, None).unwrap();
    let (r100, r50) = (
        enma::metrics::relative_l2(&full, &tr.data, tr.stride()),
        enma::metrics::relative_l2(&half, &tr.data, tr.stride()),
    );
    eprintln!(
        "interpolating VAE overfit (8 trajectories, 10 x 64): loss {} -> {}; relative L2 {r100:.2e} (100 %), \
         {r50:.2e} (50 %) after {} steps in {elapsed:.0?}",
        losses[0],
        losses.last().unwrap(),
        tcfg.steps
    );
    assert!(r50 < 3e-2, "relative L2 from half of the points {r50}");
    assert!(r100 < r50, "all points should reconstruct better than half of them: {r100} / {r50}");
    // decoding on a twice finer grid (super-resolution): every second fine point is a point of
    // the data's grid, where the output cross-attention must give the same values
    let fine = reconstruct_points(&g, &vae, &store, &tr, 1.0, 1, 8, Some(&[128])).unwrap();
    assert_eq!(fine.len(), 8 * 10 * 128);
    assert!(fine.iter().all(|v| v.is_finite()));
    for (row, (f, c)) in fine.chunks(128).zip(full.chunks(64)).enumerate() {
        for i in 0..64 {
            assert!((f[2 * i] - c[i]).abs() < 1e-4, "row {row}, point {i}: fine {} vs {}", f[2 * i], c[i]);
        }
    }
}
