//! Philox random numbers: GPU against the CPU twin, statistics, determinism.

use enma::ops::random::{Philox, normal, philox_block, uniform};

use crate::common::{WGSL_TRIG_ABS, gpu};

#[test]
fn philox_known_answer() {
    // Random123's published known-answer test for philox4x32-10 with counter = key = 0.
    assert_eq!(philox_block([0, 0, 0, 0], [0, 0]), [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]);
    assert_eq!(philox_block([0xffff_ffff; 4], [0xffff_ffff; 2]), [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]);
}

#[test]
fn gpu_uniform_is_bitwise_the_cpu_stream() {
    let g = gpu();
    let n = 1001;
    let got = uniform(&g, &[n], 0x1234_5678_9abc, 7).unwrap().to_vec().unwrap();
    let mut cpu = Philox::new(0x1234_5678_9abc, 7);
    let want: Vec<f32> = (0..n).map(|_| cpu.uniform()).collect();
    assert_eq!(got, want);
}

#[test]
fn normal_has_the_right_moments_and_is_reproducible() {
    let g = gpu();
    let n = 200_000;
    let a = normal(&g, &[n], 42, 0).unwrap().to_vec().unwrap();
    let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    // standard errors: 1/sqrt(n) = 0.0022 for the mean, sqrt(2/n) = 0.0032 for the variance
    assert!(mean.abs() < 0.01, "mean {mean}");
    assert!((var - 1.0).abs() < 0.015, "variance {var}");
    let tail = a.iter().filter(|v| v.abs() > 1.96).count() as f64 / n as f64;
    assert!((tail - 0.05).abs() < 0.004, "two-sided 5% tail holds {tail}");
    assert_eq!(normal(&g, &[n], 42, 0).unwrap().to_vec().unwrap(), a, "same seed and counter, same numbers");
    assert_ne!(normal(&g, &[n], 43, 0).unwrap().to_vec().unwrap(), a, "another seed, other numbers");
    assert_ne!(normal(&g, &[n], 42, 1).unwrap().to_vec().unwrap(), a, "another counter, other numbers");
    // the CPU twin agrees up to transcendental rounding (Box–Muller: r·cos θ, θ ∈ [0, 2π), cos
    // to the WGSL bound)
    let mut cpu = Philox::new(42, 0);
    for (i, &v) in a.iter().take(1000).enumerate() {
        let w = cpu.normal();
        assert!((v - w).abs() < (1e-4 + WGSL_TRIG_ABS) * (1.0 + w.abs()), "element {i}: {v} vs {w}");
    }
    let u = uniform(&g, &[n], 9, 0).unwrap().to_vec().unwrap();
    assert!(u.iter().all(|&v| (0.0..1.0).contains(&v)));
}
