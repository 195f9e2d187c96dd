use enma::ops;
use enma::{DType, Tensor};

use crate::common::{gpu, rand_vec};

/// One "step": uploads, a chain of kernels, a readback. Everything is dropped at the end.
fn step(g: &enma::Gpu, i: usize) -> f32 {
    let x = Tensor::from_slice(g, &rand_vec(48 * 32, i as u64, -1.0, 1.0), &[48, 32]).unwrap();
    let w = Tensor::from_slice(g, &rand_vec(32 * 24, 100 + i as u64, -1.0, 1.0), &[32, 24]).unwrap();
    let bias = Tensor::zeros(g, &[24], DType::F32).unwrap();
    let h = ops::matmul(&x, &w, Some(&bias), false, false).unwrap();
    let h = ops::unary(&h, ops::UnaryOp::Silu).unwrap();
    let h2 = ops::mul(&h, &h).unwrap();
    let s = ops::sum(&h2, 1, false).unwrap();
    let total = ops::mean(&s, 0, false).unwrap();
    total.to_vec().unwrap()[0]
}

#[test]
fn a_repeated_step_creates_no_buffers_after_the_first() {
    let g = gpu();
    let first = step(&g, 0);
    assert!(first.is_finite() && first > 0.0);
    let after_first = g.pool_stats();
    assert!(after_first.buffers_created > 0);
    for i in 1..6 {
        step(&g, i);
        let s = g.pool_stats();
        assert_eq!(s.buffers_created, after_first.buffers_created, "iteration {i} created buffers: {s:?}");
        assert_eq!(s.staging_created, after_first.staging_created, "iteration {i} created staging buffers");
    }
    let s = g.pool_stats();
    assert!(s.reuse_hits >= 5 * 8, "every allocation of later steps is a reuse: {s:?}");
    assert_eq!(s.bytes_live, 0, "all tensors were dropped");
    assert!(s.bytes_high_water > 0);
}

#[test]
fn a_buffer_is_not_reused_before_its_submission_finished() {
    let g = gpu();
    let x = Tensor::from_slice(&g, &[1.0; 64], &[64]).unwrap();
    g.sync().unwrap();
    let y = ops::scale(&x, 2.0).unwrap(); // recorded, not submitted
    let created = g.pool_stats().buffers_created;
    drop(x); // its last use is the pending submission
    let z = Tensor::from_slice(&g, &[5.0; 64], &[64]).unwrap();
    assert_eq!(g.pool_stats().buffers_created, created + 1, "x's buffer must not be handed out yet");
    assert_eq!(y.to_vec().unwrap(), vec![2.0; 64]);
    assert_eq!(z.to_vec().unwrap(), vec![5.0; 64]);
    drop(z);
    let hits = g.pool_stats().reuse_hits;
    let _w = Tensor::empty(&g, &[64], DType::F32).unwrap();
    assert_eq!(g.pool_stats().reuse_hits, hits + 1, "after sync the buffer is reused");
    assert_eq!(g.pool_stats().buffers_created, created + 1);
}

#[test]
fn counters_track_live_bytes() {
    let g = gpu();
    let before = g.pool_stats();
    let t = Tensor::empty(&g, &[1000], DType::F32).unwrap();
    let live = g.pool_stats().bytes_live - before.bytes_live;
    assert!((4000..=5120).contains(&live), "4000 bytes round up to a class within 25 %: {live}");
    drop(t);
    assert_eq!(g.pool_stats().bytes_live, before.bytes_live);
    assert!(g.trim_pool() >= 4000);
}
