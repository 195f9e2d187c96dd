//! The generator: the causal transformer's KV-cache decode equals its teacher-forced forward
//! and never looks ahead; the generator overfits one batch of advection-tiny latents; seeded
//! generation keeps the context.

use enma::model::causal::CausalTransformer;
use enma::model::enma::{GenerateOptions, Generator, GeneratorConfig};
use enma::optim::{AdamW, AdamWConfig};
use enma::{ParamStore, Tape, Tensor};

use crate::common::{assert_close, gpu_rules, rand_vec};

#[test]
fn kv_cache_decoding_equals_the_teacher_forced_forward() {
    let g = gpu_rules();
    let mut store = ParamStore::new(&g, 1);
    let (b, f, m, d, w) = (2, 4, 5, 3, 16);
    let ct = CausalTransformer::new(&mut store, "c", d, m, w, 2, 2, 2).unwrap();
    let z = rand_vec(b * f * m * d, 2, -1.0, 1.0);
    let tape = Tape::no_grad(&g);
    let pos = tape.constant(enma::ops::posenc::sinusoidal_1d(&g, m, w).unwrap());
    let full = ct
        .forward(&tape, &store, &tape.constant(Tensor::from_slice(&g, &z, &[b, f, m, d]).unwrap()), &pos)
        .unwrap()
        .to_vec()
        .unwrap();
    let mut caches = ct.caches(&g, b, f).unwrap();
    let mut zdyn = ct.step(&tape, &store, None, &pos, &mut caches).unwrap();
    for fr in 0..f {
        let got = zdyn.to_vec().unwrap();
        for bi in 0..b {
            let want = &full[(bi * f + fr) * m * w..][..m * w];
            assert_close(&format!("frame {fr} batch {bi}"), &got[bi * m * w..][..m * w], want, 1e-5, 1e-4);
        }
        if fr + 1 < f {
            let frame: Vec<f32> = (0..b).flat_map(|bi| z[(bi * f + fr) * m * d..][..m * d].iter().copied()).collect();
            let zf = tape.constant(Tensor::from_slice(&g, &frame, &[b, m, d]).unwrap());
            zdyn = ct.step(&tape, &store, Some(&zf), &pos, &mut caches).unwrap();
        }
    }
    // a later frame never changes Z_dyn of earlier frames (frame f sees frames < f)
    let mut z2 = z.clone();
    for v in &mut z2[2 * m * d..3 * m * d] {
        *v += 1.0; // batch 0, frame 2
    }
    let other = ct
        .forward(&tape, &store, &tape.constant(Tensor::from_slice(&g, &z2, &[b, f, m, d]).unwrap()), &pos)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(other[..3 * m * w], full[..3 * m * w], "frames 0..=2 of batch 0 must not change");
    assert_ne!(other[3 * m * w..4 * m * w], full[3 * m * w..4 * m * w], "frame 3 must see frame 2");
    assert_eq!(other[f * m * w..], full[f * m * w..], "batch 1 is independent");
}

#[test]
fn in_context_sequences_decode_like_their_teacher_forced_forward() {
    let g = gpu_rules();
    let mut store = ParamStore::new(&g, 5);
    let (b, f, m, d, w) = (2, 3, 4, 2, 16);
    let ct = CausalTransformer::new(&mut store, "c", d, m, w, 2, 2, 2).unwrap();
    // [context (3 frames) ; target (3 frames)] as 6 frames
    let z = rand_vec(b * 2 * f * m * d, 7, -1.0, 1.0);
    let tape = Tape::no_grad(&g);
    let pos = tape.constant(enma::ops::posenc::sinusoidal_1d(&g, m, w).unwrap());
    let blocks = [None, Some(0), Some(1), Some(2), None, Some(3), Some(4)];
    let zt = tape.constant(Tensor::from_slice(&g, &z, &[b, 2 * f, m, d]).unwrap());
    let full = ct.forward_blocks(&tape, &store, &zt, &blocks, &pos).unwrap();
    assert_eq!(full.shape(), &[b, 7, m, w]);
    let full = full.to_vec().unwrap();
    let mut caches = ct.caches(&g, b, 7).unwrap();
    for (i, blk) in blocks.iter().enumerate() {
        let frame = blk.map(|fr| {
            let v: Vec<f32> = (0..b).flat_map(|bi| z[(bi * 2 * f + fr) * m * d..][..m * d].iter().copied()).collect();
            tape.constant(Tensor::from_slice(&g, &v, &[b, m, d]).unwrap())
        });
        let got = ct.step(&tape, &store, frame.as_ref(), &pos, &mut caches).unwrap().to_vec().unwrap();
        for bi in 0..b {
            let want = &full[(bi * 7 + i) * m * w..][..m * w];
            assert_close(&format!("block {i}"), &got[bi * m * w..][..m * w], want, 1e-5, 1e-4);
        }
    }
    assert!(ct.forward_blocks(&tape, &store, &zt, &[None, Some(6)], &pos).is_err());
}

/// Posterior means of the untrained advection-tiny VAE for 8 trajectories, scaled to unit
/// variance: `[8, 11, 16, 4]` tokens.
fn tiny_latents(g: &enma::Gpu) -> Vec<f32> {
    use enma::data::generate::{GenConfig, PdeName, Preset, generate_split};
    use enma::model::{Vae, VaeConfig};
    let tr = generate_split(
        &GenConfig::new(PdeName::Advection, Preset::Tiny, 5),
        enma::data::pde::Split::Train,
        0..1,
        &|| {},
    )
    .unwrap();
    let mut store = ParamStore::new(g, 2);
    let vae = Vae::new(&mut store, VaeConfig::for_dataset(PdeName::Advection, 64)).unwrap();
    let (x, shape) = enma::train::channels_last(&tr, &(0..8).collect::<Vec<_>>()).unwrap();
    let tape = Tape::no_grad(g);
    let out = vae.forward(&tape, &store, &tape.constant(Tensor::from_slice(g, &x, &shape).unwrap()), None).unwrap();
    assert_eq!(out.mean.shape(), &[8, 11, 16, 4]);
    let mut z = out.mean.to_vec().unwrap();
    let n = z.len() as f32;
    let mean = z.iter().sum::<f32>() / n;
    let std = (z.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
    z.iter_mut().for_each(|v| *v /= std);
    z
}

#[test]
fn the_generator_overfits_one_batch_of_advection_tiny_latents() {
    let g = gpu_rules();
    let z = tiny_latents(&g);
    let mut store = ParamStore::new(&g, 3);
    let gen_ = Generator::new(&mut store, GeneratorConfig::tiny(4, vec![16])).unwrap();
    let cfg = AdamWConfig { beta2: 0.95, weight_decay: 1e-4, clip_norm: Some(1.0), ..AdamWConfig::default() };
    let mut opt = AdamW::new(&store, cfg).unwrap();
    let zt = Tensor::from_slice(&g, &z[..4 * 11 * 16 * 4], &[4, 11, 16, 4]).unwrap();
    let mut losses = Vec::new();
    let t0 = std::time::Instant::now();
    for step in 0..200 {
        let tape = Tape::new(&g);
        // the same masks and noise every step: one batch to memorise
        let loss = gen_.loss(&tape, &store, &tape.constant(zt.clone()), 1, step % 4).unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&store, &grads, 3e-3).unwrap();
        losses.push(loss.to_vec().unwrap()[0]);
    }
    let first = losses[..4].iter().sum::<f32>() / 4.0;
    let last = losses[losses.len() - 4..].iter().sum::<f32>() / 4.0;
    eprintln!("generator overfit: flow loss {first:.3} -> {last:.4} in 200 steps ({:.0?})", t0.elapsed());
    assert!(last < first / 10.0, "flow loss {first} -> {last}");
}

/// Gives the zero-initialised output and modulation maps of the flow head random weights, so
/// that (as after training) its samples depend on their conditions.
fn wake_head(store: &ParamStore) {
    for (k, p) in store.params().into_iter().enumerate() {
        let name = store.name(&p).unwrap().to_string();
        if name.starts_with("head.") && store.tensor(&p).unwrap().to_vec().unwrap().iter().all(|v| *v == 0.0) {
            let shape = store.shape(&p).unwrap().to_vec();
            let n = shape.iter().product();
            store.set(&p, &shape, &rand_vec(n, 100 + k as u64, -0.3, 0.3)).unwrap();
        }
    }
}

#[test]
fn generation_is_seeded_and_keeps_the_context() {
    let g = gpu_rules();
    let mut store = ParamStore::new(&g, 4);
    let mut cfg = GeneratorConfig::tiny(2, vec![4]);
    cfg.width = 16;
    cfg.flow_width = 16;
    let gen_ = Generator::new(&mut store, cfg).unwrap();
    wake_head(&store);
    let (b, l, f, per) = (3, 2, 5, 4 * 2);
    let ctx = rand_vec(b * l * per, 5, -1.0, 1.0);
    let opts = |frames, seed| GenerateOptions { prefix: None, frames, temperature: 1.0, seed };
    let run = |seed| gen_.generate(&g, &store, &ctx, b, &opts(f, seed)).unwrap();
    let (a, a2, c) = (run(1), run(1), run(2));
    assert_eq!(a.len(), b * f * per);
    assert_eq!(a, a2);
    assert_ne!(a, c);
    for bi in 0..b {
        assert_eq!(a[bi * f * per..][..l * per], ctx[bi * l * per..][..l * per]);
        assert!(a[(bi * f + l) * per..(bi + 1) * f * per].iter().all(|v| v.is_finite() && *v != 0.0));
    }
    assert!(gen_.generate(&g, &store, &ctx[..5], b, &opts(f, 1)).is_err());
    // with an in-context prefix (one whole trajectory per sequence) the samples change, the
    // context is still kept, and a ragged prefix is an error
    let prefix = rand_vec(b * f * per, 6, -1.0, 1.0);
    let with = GenerateOptions { prefix: Some(&prefix), ..opts(f, 1) };
    let p = gen_.generate(&g, &store, &ctx, b, &with).unwrap();
    assert_ne!(p, a);
    assert_eq!(p[..l * per], ctx[..l * per]);
    assert!(gen_.generate(&g, &store, &ctx, b, &GenerateOptions { prefix: Some(&prefix[1..]), ..with }).is_err());
    // the in-context loss covers both trajectories and reaches every parameter
    let tape = Tape::new(&g);
    let t =
        |seed| tape.constant(Tensor::from_slice(&g, &rand_vec(b * f * per, seed, -1.0, 1.0), &[b, f, 4, 2]).unwrap());
    let (z, c) = (t(8), t(9));
    let plain = gen_.loss(&tape, &store, &z, 1, 0).unwrap().to_vec().unwrap()[0];
    let with_ctx = gen_.loss_with_context(&tape, &store, &z, Some(&c), 1, 0).unwrap();
    let grads = with_ctx.backward().unwrap();
    let v = with_ctx.to_vec().unwrap()[0];
    assert!(plain.is_finite() && v.is_finite() && v != plain, "{plain} {v}");
    for p in store.params() {
        let gr = grads.param(&p).unwrap().to_vec().unwrap();
        assert!(gr.iter().all(|x| x.is_finite()) && gr.iter().any(|x| *x != 0.0), "{}", store.name(&p).unwrap());
    }
    assert!(gen_.loss_with_context(&tape, &store, &z, Some(&t(10).slice(1, 0, 2).unwrap()), 1, 0).is_err());
    assert!(gen_.generate(&g, &store, &ctx, b, &opts(1, 1)).is_err());
}

#[test]
fn patches_round_trip_and_group_neighbours() {
    use enma::train::{patchify, unpatchify};
    // 2D latents [1, 2, 4, 4, 3] in patches of 2 × 2: 4 tokens of 12 channels
    let shape = [1, 2, 4, 4, 3];
    let lat: Vec<f32> = (0..2 * 4 * 4 * 3).map(|i| i as f32).collect();
    let t = patchify(&lat, &shape, 2, 0.5).unwrap();
    assert_eq!(t.shape, [1, 2, 4, 12]);
    // token 1 of frame 0 = rows 0..2, columns 2..4; its sub-position (1, 0) = row 1, column 2
    assert_eq!(t.data[12 + 2 * 3], 0.5 * lat[(4 + 2) * 3]);
    assert_eq!(unpatchify(&t.data, &shape, 2, 0.5).unwrap(), lat);
    // 1D with p = 1 is a scaled copy
    let t1 = patchify(&lat, &[2, 2, 8, 3], 1, 2.0).unwrap();
    assert_eq!(t1.shape, [2, 2, 8, 3]);
    assert!(t1.data.iter().zip(&lat).all(|(a, b)| *a == 2.0 * b));
    assert!(patchify(&lat, &shape, 3, 1.0).is_err());
}

#[test]
fn rollouts_are_seeded_keep_their_shape_and_score_finitely() {
    use enma::data::generate::{GenConfig, PdeName, Preset, generate_split};
    use enma::eval::{Pipeline, RolloutConfig, rollout, score};
    use enma::model::{Block, Vae, VaeConfig};
    let g = gpu_rules();
    let full = generate_split(
        &GenConfig::new(PdeName::Advection, Preset::Tiny, 9),
        enma::data::pde::Split::Train,
        0..1,
        &|| {},
    )
    .unwrap();
    let mut truth = enma::data::dataset::subsample(&full, 2, 4).unwrap(); // 10 frames × 32 points
    truth.shape[0] = 3;
    truth.data.truncate(3 * truth.stride());
    truth.env.truncate(3);
    let norm = enma::data::dataset::Normalization::fit(&truth);
    let mut input = truth.clone();
    norm.apply(&mut input).unwrap();
    let mut vs = ParamStore::new(&g, 1);
    let vcfg = VaeConfig {
        channels: 1,
        spatial_axes: 1,
        width: 8,
        max_width: 16,
        latent_dim: 4,
        blocks: vec![Block::Res, Block::Space, Block::Time],
        kl_weight: 1e-4,
        interp: None,
    };
    let vae = Vae::new(&mut vs, vcfg).unwrap();
    let mut gs = ParamStore::new(&g, 2);
    let mut gcfg = GeneratorConfig::tiny(4, vec![16]);
    (gcfg.width, gcfg.flow_width, gcfg.causal_depth, gcfg.spatial_depth) = (16, 16, 1, 1);
    let generator = Generator::new(&mut gs, gcfg).unwrap();
    wake_head(&gs);
    let p = Pipeline { vae: &vae, vae_store: &vs, generator: &generator, gen_store: &gs, scale: 2.0, patch: 1 };
    let cfg =
        RolloutConfig { context_frames: 3, context_trajectory: false, samples: 2, batch: 4, temperature: 1.0, seed: 7 };
    let a = rollout(&g, &p, &input, &cfg).unwrap();
    assert_eq!(a.len(), 3 * 2 * truth.stride());
    assert!(a.iter().all(|v| v.is_finite()));
    assert_eq!(a, rollout(&g, &p, &input, &cfg).unwrap());
    // the two samples of a trajectory differ after the observed frames
    let s = truth.stride();
    assert_ne!(a[..s], a[s..2 * s]);
    let sc = score(&a, &truth, &norm, &cfg).unwrap();
    assert!(sc.rel_l2.is_finite() && sc.crps.is_finite() && sc.rmsce.is_finite() && sc.rel_l2_repeat_last > 0.0);
    assert_eq!((sc.trajectories, sc.samples), (3, 2));
    assert!(rollout(&g, &p, &input, &RolloutConfig { context_frames: 4, ..cfg }).is_err());
    // IVP with a context trajectory of the same environment
    let ivp = RolloutConfig { context_frames: 1, context_trajectory: true, ..cfg };
    let b = rollout(&g, &p, &input, &ivp).unwrap();
    assert_eq!(b.len(), a.len());
    assert_ne!(b, a);
    assert!(score(&b, &truth, &norm, &ivp).unwrap().rel_l2.is_finite());
    assert!(score(&a[1..], &truth, &norm, &cfg).is_err());
}
