//! Integration: small models fit synthetic regression tasks (loss falls ≥ 100×), a second run
//! with the same seed gives identical losses, and a training step allocates no buffer after
//! the first.

use enma::nn::{Linear, TransformerBlock};
use enma::optim::{AdamW, AdamWConfig, LrSchedule, check_finite};
use enma::{Gpu, ParamStore, Tape, Tensor, ops::loss::mse};

use crate::common::{gpu_rules, rand_vec};

/// Trains `steps` steps; returns the loss of every step and the pool's buffer count after each.
fn train_mlp(g: &Gpu, seed: u64, steps: usize) -> (Vec<f32>, Vec<u64>) {
    let (n, din, hidden, dout) = (64, 4, 32, 2);
    let x = rand_vec(n * din, 1, -1.0, 1.0);
    // a smooth target: y0 = sin(2 x0) + x1·x2, y1 = cos(x3) − x0
    let y: Vec<f32> = x.chunks(din).flat_map(|r| [(2.0 * r[0]).sin() + r[1] * r[2], r[3].cos() - r[0]]).collect();
    let mut store = ParamStore::new(g, seed);
    let l1 = Linear::new(&mut store, "l1", din, hidden, true).unwrap();
    let l2 = Linear::new(&mut store, "l2", hidden, dout, true).unwrap();
    let mut opt = AdamW::new(&store, AdamWConfig::default()).unwrap();
    let sched = LrSchedule { base: 1e-2, warmup: 20, total: steps as u64, floor: 1e-4 };
    let xt = Tensor::from_slice(g, &x, &[n, din]).unwrap();
    let yt = Tensor::from_slice(g, &y, &[n, dout]).unwrap();
    let mut losses = Vec::new();
    let mut created = Vec::new();
    for step in 0..steps {
        let tape = Tape::new(g);
        let h = l1.forward(&tape, &store, &tape.constant(xt.clone())).unwrap().silu().unwrap();
        let out = l2.forward(&tape, &store, &h).unwrap();
        let loss = mse(&out, &tape.constant(yt.clone())).unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&store, &grads, sched.at(step as u64)).unwrap();
        let l = loss.to_vec().unwrap()[0];
        check_finite("loss", l, step as u64).unwrap();
        losses.push(l);
        created.push(g.pool_stats().buffers_created);
    }
    (losses, created)
}

#[test]
fn a_two_layer_mlp_fits_and_is_deterministic() {
    let g = gpu_rules();
    let (losses, created) = train_mlp(&g, 11, 400);
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last * 100.0 <= first, "loss fell only from {first} to {last}");
    assert!(created[1..].iter().all(|&c| c == created[1]), "buffers created after step 1: {created:?}");
    let (again, _) = train_mlp(&g, 11, 400);
    assert_eq!(losses, again, "same seed, same adapter → identical losses");
    let (other, _) = train_mlp(&g, 12, 5);
    assert_ne!(&losses[..5], &other[..], "another seed starts elsewhere");
}

fn train_transformer(g: &Gpu, seed: u64, steps: usize) -> (Vec<f32>, Vec<u64>) {
    let (b, t, d) = (8, 8, 16);
    let x = rand_vec(b * t * d, 2, -1.0, 1.0);
    // target: each token minus the mean of its sequence, scaled: needs attention across tokens
    let mut y = vec![0.0f32; b * t * d];
    for bi in 0..b {
        for c in 0..d {
            let mean: f32 = (0..t).map(|ti| x[(bi * t + ti) * d + c]).sum::<f32>() / t as f32;
            for ti in 0..t {
                y[(bi * t + ti) * d + c] = 0.5 * (x[(bi * t + ti) * d + c] - mean);
            }
        }
    }
    let mut store = ParamStore::new(g, seed);
    let block = TransformerBlock::new(&mut store, "blk", d, 4, 2).unwrap();
    let mut opt =
        AdamW::new(&store, AdamWConfig { beta2: 0.95, weight_decay: 1e-4, clip_norm: Some(1.0), ..Default::default() })
            .unwrap();
    let sched = LrSchedule { base: 3e-3, warmup: 20, total: steps as u64, floor: 1e-4 };
    let xt = Tensor::from_slice(g, &x, &[b, t, d]).unwrap();
    let yt = Tensor::from_slice(g, &y, &[b, t, d]).unwrap();
    let mut losses = Vec::new();
    let mut created = Vec::new();
    for step in 0..steps {
        let tape = Tape::new(g);
        let xin = tape.constant(xt.clone());
        let out = block.forward(&tape, &store, &xin, None).unwrap().sub(&xin).unwrap();
        let loss = mse(&out, &tape.constant(yt.clone())).unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&store, &grads, sched.at(step as u64)).unwrap();
        losses.push(loss.to_vec().unwrap()[0]);
        created.push(g.pool_stats().buffers_created);
    }
    (losses, created)
}

#[test]
fn a_one_block_transformer_fits_and_is_deterministic() {
    let g = gpu_rules();
    let (losses, created) = train_transformer(&g, 21, 400);
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last * 100.0 <= first, "loss fell only from {first} to {last}");
    assert!(created[1..].iter().all(|&c| c == created[1]), "buffers created after step 1: {created:?}");
    let (again, _) = train_transformer(&g, 21, 400);
    assert_eq!(losses, again, "same seed, same adapter → identical losses");
}

#[test]
fn a_nan_loss_is_reported_with_its_step() {
    let e = check_finite("loss", f32::NAN, 17).unwrap_err().to_string();
    assert!(e.contains("loss is NaN at step 17"), "{e}");
}
