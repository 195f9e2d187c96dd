//! The recorder batches dispatches into few submissions; timing works both ways.

use enma::{Tensor, TimingMethod, ops};

use crate::common::{gpu, rand_vec};

#[test]
fn many_dispatches_share_one_submission() {
    let g = gpu();
    let x = Tensor::from_slice(&g, &rand_vec(4096, 1, -1.0, 1.0), &[64, 64]).unwrap();
    g.sync().unwrap();
    let before = g.runtime_stats();
    let mut y = x.clone();
    for _ in 0..20 {
        y = ops::unary(&y, ops::UnaryOp::Tanh).unwrap();
    }
    let mid = g.runtime_stats();
    assert_eq!(mid.dispatches - before.dispatches, 20);
    assert_eq!(mid.submissions, before.submissions, "nothing is submitted before it is needed");
    let v = y.to_vec().unwrap();
    let after = g.runtime_stats();
    assert_eq!(after.submissions - before.submissions, 1, "one submission for 20 kernels and the readback");
    // tanh applied 20 times to the input, on the CPU
    let want: Vec<f32> = rand_vec(4096, 1, -1.0, 1.0)
        .into_iter()
        .map(|mut t| {
            for _ in 0..20 {
                t = t.tanh();
            }
            t
        })
        .collect();
    crate::common::assert_close("tanh^20", &v, &want, 1e-5, 1e-4);
}

#[test]
fn timing_with_timestamps_and_wall_clock() {
    let g = gpu();
    let a = Tensor::from_slice(&g, &rand_vec(128 * 128, 2, -1.0, 1.0), &[128, 128]).unwrap();
    let work = || ops::matmul(&a, &a, None, false, false).map(drop);
    work().unwrap();
    let (_, wall, m) = g.time(true, work).unwrap();
    assert_eq!(m, TimingMethod::WallClock);
    assert!(wall.as_nanos() > 0);
    let (_, gpu_t, m) = g.time(false, work).unwrap();
    if g.has_timestamps() {
        assert_eq!(m, TimingMethod::GpuTimestamps);
        assert!(gpu_t.as_nanos() > 0, "a 128³ matmul takes measurable time");
        assert!(gpu_t < wall * 50 + std::time::Duration::from_millis(50), "timestamps {gpu_t:?} vs wall {wall:?}");
    } else {
        assert_eq!(m, TimingMethod::WallClock);
    }
}

#[test]
fn the_listed_choice_is_the_adapter_gpu_new_picks() {
    let opts = enma::GpuOptions::default();
    let list = enma::Gpu::adapters(&opts).unwrap();
    let chosen: Vec<_> = list.iter().filter(|a| a.chosen).collect();
    assert_eq!(chosen.len(), 1, "{list:?}");
    let g = gpu();
    assert_eq!(
        (chosen[0].name.as_str(), chosen[0].backend.as_str()),
        (g.adapter().name.as_str(), g.adapter().backend.as_str())
    );
    // usable adapters come first
    let first_unusable = list.iter().position(|a| !a.usable).unwrap_or(list.len());
    assert!(list[first_unusable..].iter().all(|a| !a.usable && a.reason.is_some()));
}

#[test]
fn handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<enma::Gpu>();
    assert_send_sync::<enma::Tensor>();
    // and work from another thread
    let g = gpu();
    let t = Tensor::from_slice(&g, &[1.0, 2.0], &[2]).unwrap();
    let v = std::thread::spawn(move || ops::scale(&t, 3.0).unwrap().to_vec().unwrap()).join().unwrap();
    assert_eq!(v, [3.0, 6.0]);
}

#[test]
fn profiling_times_every_kernel_without_changing_results() {
    let g = gpu();
    let a = Tensor::from_slice(&g, &rand_vec(64 * 64, 5, -1.0, 1.0), &[64, 64]).unwrap();
    let plain =
        ops::unary(&ops::matmul(&a, &a, None, false, false).unwrap(), ops::UnaryOp::Tanh).unwrap().to_vec().unwrap();
    if !g.has_timestamps() {
        assert!(g.set_profiling(true).is_err());
        return;
    }
    g.set_profiling(true).unwrap();
    let profiled =
        ops::unary(&ops::matmul(&a, &a, None, false, false).unwrap(), ops::UnaryOp::Tanh).unwrap().to_vec().unwrap();
    assert_eq!(plain, profiled);
    let rows = g.profile().unwrap();
    assert!(rows.iter().any(|r| r.kernel.starts_with("matmul") && r.dispatches == 1), "{rows:?}");
    assert!(rows.iter().any(|r| r.kernel == "unary.wgsl::unary_vec4" && r.dispatches == 1), "{rows:?}");
    assert!(rows.iter().all(|r| r.total_ms >= 0.0));
    assert!(rows.windows(2).all(|w| w[0].total_ms >= w[1].total_ms), "largest first");
    g.set_profiling(false).unwrap();
    assert!(g.profile().unwrap().is_empty());
}
