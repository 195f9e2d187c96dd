use enma::Tensor;
use enma::ops::{self, UnaryOp};

use crate::common::{WGSL_TRIG_ABS, assert_close, gpu, rand_vec, unary_ref};

fn cpu(op: UnaryOp, x: f32) -> f32 {
    unary_ref(op, x as f64) as f32
}

#[test]
fn every_unary_op_matches_the_cpu() {
    let g = gpu();
    let ops_list = crate::common::all_unary_ops();
    // 1000 (vec4 path) and 999 (scalar path).
    for n in [1000usize, 999] {
        let mixed = rand_vec(n, 7, -6.0, 6.0);
        let positive = rand_vec(n, 8, 0.05, 20.0);
        for op in ops_list {
            let domain_positive = matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Recip);
            let data = if domain_positive { &positive } else { &mixed };
            let x = Tensor::from_slice(&g, data, &[n]).unwrap();
            let y = ops::unary(&x, op).unwrap().to_vec().unwrap();
            let want: Vec<f32> = data.iter().map(|&v| cpu(op, v)).collect();
            // Transcendentals on GPUs are approximate: 2e-5 relative, 1e-5 absolute, and for
            // sin and cos the WGSL bound (2⁻¹¹ absolute).
            let atol = if matches!(op, UnaryOp::Sin | UnaryOp::Cos) { WGSL_TRIG_ABS } else { 1e-5 };
            assert_close(&format!("{op:?} n={n}"), &y, &want, atol, 2e-5);
        }
    }
}

#[test]
fn saturating_functions_stay_finite() {
    let g = gpu();
    let data = vec![-1000.0, -90.0, 90.0, 1000.0];
    let x = Tensor::from_slice(&g, &data, &[4]).unwrap();
    for op in [UnaryOp::Sigmoid, UnaryOp::Tanh, UnaryOp::Gelu, UnaryOp::Silu] {
        let y = ops::unary(&x, op).unwrap().to_vec().unwrap();
        let want: Vec<f32> = data.iter().map(|&v| cpu(op, v)).collect();
        assert_close(&format!("{op:?} extremes"), &y, &want, 1e-6, 1e-6);
    }
}
