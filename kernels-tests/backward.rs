//! Backward of the element-wise, reduction, layout and matmul ops against finite differences of
//! f64 CPU references, for two shapes each (one not a multiple of any tile).

use enma::ops::{BinaryOp, UnaryOp};

use crate::common::{WGSL_TRIG_ABS, broadcast_index, check_grads, check_grads_atol, gpu, rand_vec, unary_ref};

#[test]
fn unary_backward_matches_finite_differences() {
    let g = gpu();
    let ops = crate::common::all_unary_ops();
    for shape in [vec![4, 8], vec![3, 7, 5]] {
        let n: usize = shape.iter().product();
        for op in ops {
            let positive = matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Recip);
            let data = if positive { rand_vec(n, 3, 0.5, 3.0) } else { rand_vec(n, 4, -2.0, 2.0) };
            let trig = matches!(op, UnaryOp::Sin | UnaryOp::Cos);
            check_grads_atol(
                &format!("{op:?} {shape:?}"),
                &g,
                &[(data, shape.clone())],
                |v| v[0].unary(op),
                |x| x[0].iter().map(|&v| unary_ref(op, v)).collect(),
                2e-3,
                if trig { WGSL_TRIG_ABS as f64 } else { 0.0 },
            );
        }
    }
}

#[test]
fn binary_backward_with_broadcasting() {
    let g = gpu();
    let cases: [(Vec<usize>, Vec<usize>); 4] = [
        (vec![4, 8], vec![4, 8]),
        (vec![3, 1, 5], vec![4, 1]),
        (vec![2, 3, 7], vec![7]),
        (vec![2, 3, 4, 3], vec![2, 3, 1, 3]),
    ];
    for (sa, sb) in cases {
        let out = enma::ops::broadcast_shape("t", &sa, &sb).unwrap();
        for op in
            [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min, BinaryOp::Pow]
        {
            let na: usize = sa.iter().product();
            let nb: usize = sb.iter().product();
            let (da, db) = (rand_vec(na, 5, 0.5, 2.0), rand_vec(nb, 6, 0.5, 2.0));
            let (sa2, sb2, out2) = (sa.clone(), sb.clone(), out.clone());
            check_grads(
                &format!("{op:?} {sa:?} {sb:?}"),
                &g,
                &[(da, sa.clone()), (db, sb.clone())],
                |v| v[0].binary(&v[1], op),
                move |x| {
                    let n: usize = out2.iter().product();
                    (0..n)
                        .map(|lin| {
                            let coord = crate::common::coords_of(lin, &out2);
                            crate::common::binary_ref(
                                op,
                                x[0][broadcast_index(&sa2, &out2, &coord)],
                                x[1][broadcast_index(&sb2, &out2, &coord)],
                            )
                        })
                        .collect()
                },
                2e-3,
            );
        }
    }
}

#[test]
fn sum_and_mean_backward() {
    let g = gpu();
    for (shape, axis) in [(vec![4, 8], 1usize), (vec![3, 70, 5], 1), (vec![3, 5, 7], 0)] {
        let n: usize = shape.iter().product();
        for mean in [false, true] {
            let sh = shape.clone();
            check_grads(
                &format!("reduce mean={mean} {shape:?} axis {axis}"),
                &g,
                &[(rand_vec(n, 8, -1.0, 1.0), shape.clone())],
                |v| if mean { v[0].mean(axis as isize, false) } else { v[0].sum(axis as isize, false) },
                move |x| {
                    let outer: usize = sh[..axis].iter().product();
                    let len = sh[axis];
                    let inner: usize = sh[axis + 1..].iter().product();
                    let mut out = vec![0.0; outer * inner];
                    for o in 0..outer {
                        for k in 0..len {
                            for i in 0..inner {
                                out[o * inner + i] += x[0][(o * len + k) * inner + i];
                            }
                        }
                    }
                    if mean {
                        out.iter_mut().for_each(|v| *v /= len as f64);
                    }
                    out
                },
                2e-3,
            );
        }
    }
}

fn permute_ref(x: &[f64], shape: &[usize], perm: &[usize]) -> Vec<f64> {
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len() - 1).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let n: usize = shape.iter().product();
    (0..n)
        .map(|lin| {
            let mut r = lin;
            let mut src = 0;
            for d in (0..out_shape.len()).rev() {
                let c = r % out_shape[d];
                r /= out_shape[d];
                src += c * strides[perm[d]];
            }
            x[src]
        })
        .collect()
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

#[test]
fn layout_ops_backward() {
    let g = gpu();
    // a small regular shape, a ragged rank-4 one, and one whose copies have rows longer than
    // the kernel's chunk of 16 with a ragged tail
    for shape in [vec![2usize, 3, 4], vec![3, 5, 2, 7], vec![2, 3, 2, 37]] {
        let n: usize = shape.iter().product();
        let rank = shape.len();
        let perm: Vec<usize> = (0..rank).rev().collect();
        let (sh, p2) = (shape.clone(), perm.clone());
        check_grads(
            &format!("permute {shape:?}"),
            &g,
            &[(rand_vec(n, 9, -1.0, 1.0), shape.clone())],
            |v| v[0].permute(&perm),
            move |x| permute_ref(&x[0], &sh, &p2),
            2e-3,
        );
        let mut swap: Vec<usize> = (0..rank).collect();
        swap.swap(0, rank - 1);
        let sh = shape.clone();
        check_grads(
            &format!("transpose {shape:?}"),
            &g,
            &[(rand_vec(n, 10, -1.0, 1.0), shape.clone())],
            |v| v[0].transpose(0, rank - 1),
            move |x| permute_ref(&x[0], &sh, &swap),
            2e-3,
        );
        // swapping the two leading axes keeps the trailing ones contiguous (they merge)
        let mut lead: Vec<usize> = (0..rank).collect();
        lead.swap(0, 1);
        let (sh, l2) = (shape.clone(), lead.clone());
        check_grads(
            &format!("permute {shape:?} {lead:?}"),
            &g,
            &[(rand_vec(n, 12, -1.0, 1.0), shape.clone())],
            |v| v[0].permute(&lead),
            move |x| permute_ref(&x[0], &sh, &l2),
            2e-3,
        );
        // slice 1..3 along axis 1
        let sh = shape.clone();
        let mut out_shape = shape.clone();
        out_shape[1] = 2;
        check_grads(
            &format!("slice {shape:?}"),
            &g,
            &[(rand_vec(n, 11, -1.0, 1.0), shape.clone())],
            |v| v[0].slice(1, 1, 3),
            move |x| {
                let st = strides(&sh);
                (0..out_shape.iter().product::<usize>())
                    .map(|lin| {
                        let mut c = crate::common::coords_of(lin, &out_shape);
                        c[1] += 1;
                        x[0][c.iter().zip(&st).map(|(a, b)| a * b).sum::<usize>()]
                    })
                    .collect()
            },
            2e-3,
        );
        // concat along the last axis with a part of width 3
        let mut other = shape.clone();
        *other.last_mut().unwrap() = 3;
        let m: usize = other.iter().product();
        let (sa, sb) = (shape.clone(), other.clone());
        check_grads(
            &format!("concat {shape:?}"),
            &g,
            &[(rand_vec(n, 12, -1.0, 1.0), shape.clone()), (rand_vec(m, 13, -1.0, 1.0), other.clone())],
            move |v| enma::Var::concat(&[&v[0], &v[1]], rank - 1),
            move |x| {
                let (wa, wb) = (*sa.last().unwrap(), *sb.last().unwrap());
                (0..n / wa)
                    .flat_map(|r| {
                        x[0][r * wa..(r + 1) * wa]
                            .iter()
                            .chain(&x[1][r * wb..(r + 1) * wb])
                            .cloned()
                            .collect::<Vec<_>>()
                    })
                    .collect()
            },
            2e-3,
        );
        // expand a size-1 middle axis and add a leading axis
        let mut small = shape.clone();
        small[1] = 1;
        let k: usize = small.iter().product();
        let mut big = vec![2];
        big.extend(shape.iter().cloned());
        let (ss, bb) = (small.clone(), big.clone());
        check_grads(
            &format!("expand {small:?} to {big:?}"),
            &g,
            &[(rand_vec(k, 14, -1.0, 1.0), small.clone())],
            move |v| v[0].expand(&bb),
            move |x| {
                let st = strides(&ss);
                (0..big.iter().product::<usize>())
                    .map(|lin| {
                        let c = crate::common::coords_of(lin, &big);
                        x[0][(0..ss.len()).map(|d| if ss[d] == 1 { 0 } else { c[d + 1] * st[d] }).sum::<usize>()]
                    })
                    .collect()
            },
            2e-3,
        );
        check_grads(
            &format!("reshape {shape:?}"),
            &g,
            &[(rand_vec(n, 15, -1.0, 1.0), shape.clone())],
            |v| v[0].reshape(&[n])?.square(),
            |x| x[0].iter().map(|v| v * v).collect(),
            2e-3,
        );
    }
}

#[test]
fn matmul_backward_all_transposes_and_bias() {
    let g = gpu();
    for (batch, m, n, k) in [(1usize, 8usize, 8usize, 8usize), (2, 5, 7, 3)] {
        for ta in [false, true] {
            for tb in [false, true] {
                let sa = if ta { vec![batch, k, m] } else { vec![batch, m, k] };
                let sb = if tb { vec![batch, n, k] } else { vec![batch, k, n] };
                check_grads(
                    &format!("matmul b{batch} {m}x{n}x{k} ta={ta} tb={tb}"),
                    &g,
                    &[
                        (rand_vec(batch * m * k, 16, -1.0, 1.0), sa),
                        (rand_vec(batch * k * n, 17, -1.0, 1.0), sb),
                        (rand_vec(n, 18, -1.0, 1.0), vec![n]),
                    ],
                    |v| v[0].matmul(&v[1], Some(&v[2]), ta, tb),
                    move |x| {
                        let mut c = vec![0.0; batch * m * n];
                        for bi in 0..batch {
                            for i in 0..m {
                                for j in 0..n {
                                    let mut s = x[2][j];
                                    for kk in 0..k {
                                        let a = if ta {
                                            x[0][bi * m * k + kk * m + i]
                                        } else {
                                            x[0][bi * m * k + i * k + kk]
                                        };
                                        let b = if tb {
                                            x[1][bi * k * n + j * k + kk]
                                        } else {
                                            x[1][bi * k * n + kk * n + j]
                                        };
                                        s += a * b;
                                    }
                                    c[bi * m * n + i * n + j] = s;
                                }
                            }
                        }
                        c
                    },
                    2e-3,
                );
            }
        }
    }
    // a shared weight: x [3, 4, 6] · w [6, 5]
    check_grads(
        "matmul shared b",
        &g,
        &[(rand_vec(72, 19, -1.0, 1.0), vec![3, 4, 6]), (rand_vec(30, 20, -1.0, 1.0), vec![6, 5])],
        |v| v[0].matmul(&v[1], None, false, false),
        |x| {
            let mut c = vec![0.0; 60];
            for r in 0..12 {
                for j in 0..5 {
                    c[r * 5 + j] = (0..6).map(|kk| x[0][r * 6 + kk] * x[1][kk * 5 + j]).sum();
                }
            }
            c
        },
        2e-3,
    );
}
