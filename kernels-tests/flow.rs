//! The flow-matching head: the unmasking schedule, a 2-D Gaussian mixture learned and sampled
//! back (mean and covariance), and seeded sampling.

use enma::model::flow::{FlowHead, FlowHeadConfig, reveal_order, unmask_counts};
use enma::ops::random::Philox;
use enma::optim::{AdamW, AdamWConfig};
use enma::{ParamStore, Tape, Tensor};

use crate::common::gpu_rules;

#[test]
fn the_schedule_reveals_every_token_exactly_once() {
    for m in 1..=40 {
        for steps in 1..=16 {
            let counts = unmask_counts(m, steps);
            assert_eq!(counts.iter().sum::<usize>(), m, "m {m}, {steps} steps: {counts:?}");
            assert!(counts[0] >= 1);
            let mut rng = Philox::new(1, (m * 100 + steps) as u64);
            let mut seen: Vec<usize> = reveal_order(m, steps, &mut rng).concat();
            seen.sort();
            assert_eq!(seen, (0..m).collect::<Vec<_>>());
        }
    }
    // MAR's cosine rule reveals few tokens first and many last: 16 tokens in 6 steps
    assert_eq!(unmask_counts(16, 6), vec![1, 2, 2, 3, 4, 4]);
}

/// Two Gaussians (weights ½) in 2-D: samples from Philox.
fn mixture(n: usize, rng: &mut Philox) -> Vec<f32> {
    let mut out = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let (mx, my, s) = if rng.uniform() < 0.5 { (-1.5, 0.5, 0.3) } else { (1.0, -1.0, 0.5) };
        out.push(mx + s * rng.normal());
        out.push(my + s * rng.normal());
    }
    out
}

fn moments(x: &[f32]) -> ([f64; 2], [f64; 3]) {
    let n = (x.len() / 2) as f64;
    let m = [0, 1].map(|a| x.iter().skip(a).step_by(2).map(|&v| v as f64).sum::<f64>() / n);
    let mut c = [0.0; 3];
    for p in x.chunks(2) {
        let (dx, dy) = (p[0] as f64 - m[0], p[1] as f64 - m[1]);
        c[0] += dx * dx / n;
        c[1] += dx * dy / n;
        c[2] += dy * dy / n;
    }
    (m, c)
}

#[test]
fn a_trained_head_reproduces_a_gaussian_mixture() {
    let g = gpu_rules();
    let mut store = ParamStore::new(&g, 7);
    let head = FlowHead::new(&mut store, "head", FlowHeadConfig { dim: 2, cond: 4, width: 64, depth: 2 }).unwrap();
    let mut opt = AdamW::new(&store, AdamWConfig::default()).unwrap();
    let mut rng = Philox::new(3, 0);
    let batch = 512;
    let cond = Tensor::from_slice(&g, &vec![0.5; batch * 4], &[batch, 4]).unwrap();
    let mut losses = Vec::new();
    for step in 0..500 {
        let tape = Tape::new(&g);
        let z = tape.constant(Tensor::from_slice(&g, &mixture(batch, &mut rng), &[batch, 2]).unwrap());
        let loss = head.loss(&tape, &store, &z, &tape.constant(cond.clone()), 11, step).unwrap();
        let grads = loss.backward().unwrap();
        let lr = if step < 350 { 3e-3 } else { 1e-3 };
        opt.step(&store, &grads, lr).unwrap();
        losses.push(loss.to_vec().unwrap()[0]);
    }
    let n = 4096;
    let c = Tensor::from_slice(&g, &vec![0.5; n * 4], &[n, 4]).unwrap();
    let samples = head.sample(&g, &store, &c, 10, 1.0, 5).unwrap().to_vec().unwrap();
    let (m, cov) = moments(&samples);
    let (tm, tcov) = moments(&mixture(200_000, &mut Philox::new(9, 9)));
    eprintln!(
        "flow head: loss {:.3} -> {:.3}; mean {m:.3?} (true {tm:.3?}); covariance {cov:.3?} (true {tcov:.3?})",
        losses[0],
        losses[losses.len() - 1]
    );
    for a in 0..2 {
        assert!((m[a] - tm[a]).abs() < 0.1, "mean {m:?} vs {tm:?}");
    }
    for e in 0..3 {
        assert!((cov[e] - tcov[e]).abs() < 0.15 * tcov[0].max(tcov[2]), "covariance {cov:?} vs {tcov:?}");
    }
    // two modes: most samples lie near one of the two means
    let near = samples
        .chunks(2)
        .filter(|p| {
            let d1 = (p[0] + 1.5).powi(2) + (p[1] - 0.5).powi(2);
            let d2 = (p[0] - 1.0).powi(2) + (p[1] + 1.0).powi(2);
            d1.min(d2) < 1.0
        })
        .count();
    assert!(near as f64 > 0.85 * n as f64, "{near} of {n} samples near a mode");
}

#[test]
fn sampling_is_seeded() {
    let g = gpu_rules();
    let mut store = ParamStore::new(&g, 8);
    let head = FlowHead::new(&mut store, "head", FlowHeadConfig { dim: 3, cond: 2, width: 16, depth: 1 }).unwrap();
    let c = Tensor::from_slice(&g, &crate::common::rand_vec(10 * 2, 1, -1.0, 1.0), &[10, 2]).unwrap();
    let s = |seed| head.sample(&g, &store, &c, 4, 1.0, seed).unwrap().to_vec().unwrap();
    assert_eq!(s(1), s(1));
    assert_ne!(s(1), s(2));
    assert!(head.sample(&g, &store, &c, 0, 1.0, 1).is_err());
    let tape = Tape::no_grad(&g);
    let z = tape.constant(Tensor::zeros(&g, &[10, 2], enma::DType::F32).unwrap());
    assert!(head.velocity(&tape, &store, &z, &[0.0; 10], &tape.constant(c.clone())).is_err());
}
