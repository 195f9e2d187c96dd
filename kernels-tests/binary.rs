use enma::Tensor;
use enma::ops::{self, BinaryOp};

use crate::common::{assert_close, broadcast_index, gpu, rand_vec};

fn cpu_op(op: BinaryOp, a: f32, b: f32) -> f32 {
    crate::common::binary_ref(op, a as f64, b as f64) as f32
}

/// CPU broadcasting reference: walk the output multi-index.
fn cpu_binary(op: BinaryOp, a: &[f32], sa: &[usize], b: &[f32], sb: &[usize], out: &[usize]) -> Vec<f32> {
    let n: usize = out.iter().product();
    (0..n)
        .map(|lin| {
            let coord = crate::common::coords_of(lin, out);
            cpu_op(op, a[broadcast_index(sa, out, &coord)], b[broadcast_index(sb, out, &coord)])
        })
        .collect()
}

#[test]
fn broadcasting_matches_the_cpu() {
    let g = gpu();
    let cases: [(&[usize], &[usize], &[usize]); 20] = [
        // a row per batch (a gate [B, 1, 1, C] on [B, T, X, C]) and columns within batches
        (&[2, 3, 5, 8], &[2, 1, 1, 8], &[2, 3, 5, 8]),
        (&[2, 1, 8], &[2, 6, 8], &[2, 6, 8]),
        (&[2, 6, 1], &[2, 1, 8], &[2, 6, 8]),
        // columns (one value per row) and rows of a 2-D result (the 2-D kernel)
        (&[3, 4, 8], &[3, 4, 1], &[3, 4, 8]),
        (&[3, 4, 1], &[3, 4, 8], &[3, 4, 8]),
        (&[5, 1], &[8], &[5, 8]),
        (&[12], &[5, 1], &[5, 12]),
        (&[5, 1], &[5, 1, 1], &[5, 5, 1]),
        // a vector repeated along rows, on either side (the row-vector kernel)
        (&[3, 8], &[8], &[3, 8]),
        (&[8], &[3, 8], &[3, 8]),
        (&[6, 4, 4], &[4, 4], &[6, 4, 4]),
        (&[4, 5], &[4, 5], &[4, 5]), // same shape, vec4 path
        (&[3, 7], &[3, 7], &[3, 7]), // same shape, odd count
        // dimensions that merge for both operands, and ones that must not
        (&[2, 3, 4, 5], &[2, 3, 1, 5], &[2, 3, 4, 5]),
        (&[3, 1, 4, 5], &[1, 1, 1, 5], &[3, 1, 4, 5]),
        (&[4, 1, 1, 6], &[4, 3, 2, 1], &[4, 3, 2, 6]),
        (&[2, 3, 5], &[5], &[2, 3, 5]),       // bias-like
        (&[2, 1, 5], &[1, 4, 1], &[2, 4, 5]), // both sides broadcast
        (&[6, 1], &[1], &[6, 1]),             // scalar
        (&[2, 1, 3, 1, 2, 1, 1, 3], &[3, 2, 1, 5, 1], &[2, 1, 3, 3, 2, 1, 5, 3]), // rank 8
    ];
    for (sa, sb, want_shape) in cases {
        let na: usize = sa.iter().product();
        let nb: usize = sb.iter().product();
        let da = rand_vec(na, 11, -3.0, 3.0);
        let db = rand_vec(nb, 12, 0.5, 3.0);
        let a = Tensor::from_slice(&g, &da, sa).unwrap();
        let b = Tensor::from_slice(&g, &db, sb).unwrap();
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min] {
            let y = ops::binary(&a, &b, op).unwrap();
            assert_eq!(y.shape(), want_shape);
            let want = cpu_binary(op, &da, sa, &db, sb, want_shape);
            assert_close(&format!("{op:?} {sa:?} {sb:?}"), &y.to_vec().unwrap(), &want, 0.0, 1e-6);
        }
    }
    // pow on a positive base
    let da = rand_vec(10, 13, 0.1, 4.0);
    let db = rand_vec(10, 14, -2.0, 2.0);
    let y =
        ops::pow(&Tensor::from_slice(&g, &da, &[10]).unwrap(), &Tensor::from_slice(&g, &db, &[10]).unwrap()).unwrap();
    let want: Vec<f32> = da.iter().zip(&db).map(|(&a, &b)| cpu_op(BinaryOp::Pow, a, b)).collect();
    assert_close("pow", &y.to_vec().unwrap(), &want, 1e-6, 1e-5);
}

#[test]
fn incompatible_shapes_name_the_op_and_both_shapes() {
    let g = gpu();
    let a = Tensor::from_slice(&g, &[0.0; 6], &[2, 3]).unwrap();
    let b = Tensor::from_slice(&g, &[0.0; 4], &[4]).unwrap();
    let e = ops::add(&a, &b).unwrap_err().to_string();
    assert!(e.contains("add") && e.contains("[2, 3]") && e.contains("[4]"), "{e}");
}

#[test]
fn modulation_matches_the_cpu_and_finite_differences() {
    // a·(1 + b) + c: the one-pass kernels (sizes a multiple of 4) and the composed fallback
    let g = gpu();
    for (i, shape) in [vec![6, 8], vec![3, 5], vec![2, 3, 4]].into_iter().enumerate() {
        let n: usize = shape.iter().product();
        let inputs: Vec<(Vec<f32>, Vec<usize>)> =
            (0..3).map(|k| (rand_vec(n, 40 + 3 * i as u64 + k, -1.5, 1.5), shape.clone())).collect();
        crate::common::check_grads(
            &format!("modulate {shape:?}"),
            &g,
            &inputs,
            |v| v[0].modulate(&v[1], &v[2]),
            |x| (0..x[0].len()).map(|e| x[0][e] * (1.0 + x[1][e]) + x[2][e]).collect(),
            1e-3,
        );
        // the tensor op agrees with the differentiable one
        let t = |k: usize| Tensor::from_slice(&g, &inputs[k].0, &shape).unwrap();
        let want: Vec<f32> = (0..n).map(|e| inputs[0].0[e] * (1.0 + inputs[1].0[e]) + inputs[2].0[e]).collect();
        let got = ops::binary::modulate(&t(0), &t(1), &t(2)).unwrap().to_vec().unwrap();
        assert_close(&format!("modulate {shape:?}"), &got, &want, 1e-6, 1e-6);
    }
    let t = |s: &[usize]| Tensor::zeros(&g, s, enma::DType::F32).unwrap();
    let e = ops::binary::modulate(&t(&[4, 4]), &t(&[4, 4]), &t(&[4])).unwrap_err();
    assert!(e.to_string().contains("modulate"), "{e}");
}
