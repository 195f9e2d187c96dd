use enma::Tensor;
use enma::ops::{self, MatmulKernel, MatmulTiles};

use crate::common::{assert_close, gpu, rand_vec};

/// f64 reference: C[b] = op(A[b]) op(B[b]) + bias, batch strides 0 when a side is shared.
#[allow(clippy::too_many_arguments)]
fn cpu_matmul(
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    batch: usize,
    a_shared: bool,
    b_shared: bool,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
) -> Vec<f32> {
    let mut c = vec![0f32; batch * m * n];
    for bi in 0..batch {
        let ao = if a_shared { 0 } else { bi * m * k };
        let bo = if b_shared { 0 } else { bi * k * n };
        for i in 0..m {
            for j in 0..n {
                let mut s = bias.map(|v| v[j] as f64).unwrap_or(0.0);
                for kk in 0..k {
                    let av = if ta { a[ao + kk * m + i] } else { a[ao + i * k + kk] };
                    let bv = if tb { b[bo + j * k + kk] } else { b[bo + kk * n + j] };
                    s += av as f64 * bv as f64;
                }
                c[bi * m * n + i * n + j] = s as f32;
            }
        }
    }
    c
}

#[allow(clippy::too_many_arguments)]
fn check(
    g: &enma::Gpu,
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    bias: bool,
    tiles: Option<MatmulKernel>,
) {
    let seed = (m * 131 + n * 17 + k) as u64;
    let da = rand_vec(batch * m * k, seed, -1.0, 1.0);
    let db = rand_vec(batch * k * n, seed + 1, -1.0, 1.0);
    let dbias = rand_vec(n, seed + 2, -1.0, 1.0);
    let sa = if ta { vec![batch, k, m] } else { vec![batch, m, k] };
    let sb = if tb { vec![batch, n, k] } else { vec![batch, k, n] };
    let a = Tensor::from_slice(g, &da, &sa).unwrap();
    let b = Tensor::from_slice(g, &db, &sb).unwrap();
    let bt = Tensor::from_slice(g, &dbias, &[n]).unwrap();
    let bias_t = if bias { Some(&bt) } else { None };
    let c = ops::matmul_with(&a, &b, bias_t, ta, tb, tiles).unwrap();
    assert_eq!(c.shape(), &[batch, m, n]);
    let want = cpu_matmul(&da, &db, bias.then_some(&dbias[..]), batch, false, false, m, n, k, ta, tb);
    // Inputs in [-1, 1]: |C| <= K + 1 and the f32 rounding error grows like K·eps.
    let atol = 4e-7 * k as f32 + 1e-6;
    assert_close(
        &format!("matmul b{batch} {m}x{n}x{k} ta={ta} tb={tb} bias={bias} {tiles:?}"),
        &c.to_vec().unwrap(),
        &want,
        atol,
        1e-5,
    );
}

#[test]
fn all_transposes_with_ragged_shapes() {
    let g = gpu();
    // Multiples of every tile, and shapes that are not (1, 3, 5, 17, 33, 67, ...).
    let shapes =
        [(64, 64, 64), (1, 1, 1), (3, 5, 7), (17, 33, 9), (67, 20, 36), (8, 12, 16), (100, 4, 3), (5, 129, 64)];
    for (m, n, k) in shapes {
        for ta in [false, true] {
            for tb in [false, true] {
                check(&g, 1, m, n, k, ta, tb, (m + n) % 2 == 0, None);
            }
        }
    }
}

#[test]
fn every_tile_variant_is_correct() {
    let g = gpu();
    for tm in [4, 8] {
        for tn in [4, 8] {
            for (wg_x, wg_y) in [(8, 8), (16, 4), (4, 16), (16, 16)] {
                let t = Some(MatmulKernel::Tiled(MatmulTiles { tm, tn, wg_x, wg_y }));
                check(&g, 2, 70, 36, 20, false, false, true, t);
                check(&g, 1, 36, 70, 13, true, true, false, t);
                check(&g, 1, 44, 28, 24, true, false, false, t);
                check(&g, 1, 28, 44, 24, false, true, true, t);
            }
        }
    }
}

#[test]
fn the_shared_memory_kernel_is_correct() {
    let g = gpu();
    let kern = Some(MatmulKernel::Shared);
    // One block, ragged blocks in every dimension (K not a multiple of the 8-deep slice), batches;
    // vec4 loads of both operands (K, M, N multiples of 4) over several slices and blocks, and of
    // one operand only (K a multiple of 4, M and N not)
    for (m, n, k) in
        [(128, 128, 64), (1, 1, 1), (130, 129, 13), (37, 200, 21), (256, 12, 8), (132, 260, 44), (130, 129, 24)]
    {
        for ta in [false, true] {
            for tb in [false, true] {
                check(&g, 1, m, n, k, ta, tb, (m + n + k) % 2 == 1, kern);
            }
        }
    }
    check(&g, 3, 33, 20, 17, false, true, true, kern);
    check(&g, 2, 36, 20, 16, true, false, false, kern);
}

#[test]
fn the_subgroup_kernel_is_correct_where_it_applies() {
    let g = gpu();
    if ops::matmul::subgroup_lanes(&g).is_none() {
        eprintln!("adapter has no fixed-size subgroups: Subgroup kernel not tested");
        let a = Tensor::zeros(&g, &[8, 8], enma::DType::F32).unwrap();
        let e = ops::matmul_with(&a, &a, None, false, false, Some(MatmulKernel::Subgroup { cn: 2 })).unwrap_err();
        assert!(e.to_string().contains("subgroups of one size"), "{e}");
        return;
    }
    // M ragged (not a multiple of 16 rows), N and K multiples of 4 but not of the 32/64 column block.
    let shapes = [(64, 64, 64), (1, 4, 4), (19, 36, 12), (70, 100, 44), (33, 8, 128)];
    for cn in [1, 2] {
        let kern = Some(MatmulKernel::Subgroup { cn });
        for (m, n, k) in shapes {
            for ta in [false, true] {
                for tb in [false, true] {
                    check(&g, 1, m, n, k, ta, tb, (m + k) % 2 == 0, kern);
                }
            }
        }
        check(&g, 3, 21, 20, 16, false, false, true, kern);
        check(&g, 2, 17, 12, 8, true, true, false, kern);
    }
    // Where it does not apply it says why.
    let a = Tensor::zeros(&g, &[8, 6], enma::DType::F32).unwrap();
    let b = Tensor::zeros(&g, &[6, 8], enma::DType::F32).unwrap();
    let e = ops::matmul_with(&a, &b, None, false, false, Some(MatmulKernel::Subgroup { cn: 2 })).unwrap_err();
    assert!(e.to_string().contains("K = 6"), "{e}");
}

#[test]
fn batched_and_broadcast_batches() {
    let g = gpu();
    check(&g, 5, 19, 23, 12, false, false, true, None);
    check(&g, 3, 16, 16, 16, true, true, false, None);
    // b has no batch: shared by every batch of a (a linear layer on [B, T, C]).
    let (bt, m, k, n) = (4, 9, 12, 10);
    let da = rand_vec(bt * m * k, 1, -1.0, 1.0);
    let db = rand_vec(k * n, 2, -1.0, 1.0);
    let a = Tensor::from_slice(&g, &da, &[bt, m, k]).unwrap();
    let b = Tensor::from_slice(&g, &db, &[k, n]).unwrap();
    let c = ops::matmul(&a, &b, None, false, false).unwrap();
    assert_eq!(c.shape(), &[bt, m, n]);
    let want = cpu_matmul(&da, &db, None, bt, false, true, m, n, k, false, false);
    assert_close("shared b", &c.to_vec().unwrap(), &want, 1e-5, 1e-5);
    // a shared, b batched.
    let a2 = Tensor::from_slice(&g, &da[..m * k], &[1, m, k]).unwrap();
    let b2 = Tensor::from_slice(&g, &rand_vec(bt * k * n, 3, -1.0, 1.0), &[bt, k, n]).unwrap();
    let c2 = ops::matmul(&a2, &b2, None, false, false).unwrap();
    assert_eq!(c2.shape(), &[bt, m, n]);
    let want2 = cpu_matmul(&da[..m * k], &b2.to_vec().unwrap(), None, bt, true, false, m, n, k, false, false);
    assert_close("shared a", &c2.to_vec().unwrap(), &want2, 1e-5, 1e-5);
}

#[test]
fn empty_inner_dimension_gives_the_bias() {
    let g = gpu();
    let a = Tensor::zeros(&g, &[3, 0], enma::DType::F32).unwrap();
    let b = Tensor::zeros(&g, &[0, 5], enma::DType::F32).unwrap();
    let bias = Tensor::from_slice(&g, &[1.0, 2.0, 3.0, 4.0, 5.0], &[5]).unwrap();
    let c = ops::matmul(&a, &b, Some(&bias), false, false).unwrap();
    assert_eq!(c.to_vec().unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0].repeat(3));
}

#[test]
fn shape_errors_name_both_shapes() {
    let g = gpu();
    let a = Tensor::zeros(&g, &[4, 5], enma::DType::F32).unwrap();
    let b = Tensor::zeros(&g, &[6, 7], enma::DType::F32).unwrap();
    let e = ops::matmul(&a, &b, None, false, false).unwrap_err().to_string();
    assert!(e.contains("matmul") && e.contains("[4, 5]") && e.contains("[6, 7]"), "{e}");
    let v = Tensor::zeros(&g, &[5], enma::DType::F32).unwrap();
    assert!(ops::matmul(&a, &v, None, false, false).is_err());
    let bad_bias = Tensor::zeros(&g, &[3], enma::DType::F32).unwrap();
    let b2 = Tensor::zeros(&g, &[5, 7], enma::DType::F32).unwrap();
    let e = ops::matmul(&a, &b2, Some(&bad_bias), false, false).unwrap_err().to_string();
    assert!(e.contains("bias"), "{e}");
}

#[test]
fn ragged_inner_dimensions_take_the_padded_path_correctly() {
    // K % 4 != 0 with a large operand: padded along K on 8-lane-subgroup adapters
    let g = gpu();
    for ta in [false, true] {
        for tb in [false, true] {
            check(&g, 1, 1100, 16, 49, ta, tb, true, None);
        }
    }
}

#[test]
fn narrow_products_take_the_transposed_path_correctly() {
    // N < 32 with M ≥ 128: computed as a transposed wide product on 8-lane-subgroup adapters
    let g = gpu();
    for ta in [false, true] {
        for tb in [false, true] {
            check(&g, 1, 132, 12, 20, ta, tb, true, None);
            check(&g, 2, 256, 4, 8, ta, tb, false, None);
        }
    }
    // a shared weight on a batched input, as in a linear layer with few outputs
    let (bt, m, k, n) = (3, 128, 16, 6);
    let da = rand_vec(bt * m * k, 5, -1.0, 1.0);
    let db = rand_vec(k * n, 6, -1.0, 1.0);
    let a = Tensor::from_slice(&g, &da, &[bt, m, k]).unwrap();
    let b = Tensor::from_slice(&g, &db, &[k, n]).unwrap();
    let c = ops::matmul(&a, &b, None, false, false).unwrap();
    assert_eq!(c.shape(), &[bt, m, n]);
    let want = cpu_matmul(&da, &db, None, bt, false, true, m, n, k, false, false);
    assert_close("narrow shared b", &c.to_vec().unwrap(), &want, 1e-5, 1e-5);
}

#[test]
fn long_inner_dimensions_split_into_a_batch_correctly() {
    // Aᵀ·B with K = 16384 rows and a 12 × 3 result (a weight gradient): split into partial products
    let g = gpu();
    check(&g, 1, 12, 3, 16384, true, false, false, None);
    let (k, m, n) = (16384, 20, 8);
    let da = rand_vec(k * m, 7, -1.0, 1.0);
    let db = rand_vec(k * n, 8, -1.0, 1.0);
    let a = Tensor::from_slice(&g, &da, &[k, m]).unwrap();
    let b = Tensor::from_slice(&g, &db, &[k, n]).unwrap();
    let c = ops::matmul(&a, &b, None, true, false).unwrap();
    let want = cpu_matmul(&da, &db, None, 1, false, false, m, n, k, true, false);
    // 16384-term sums of products in [-1, 1]
    assert_close("split K", &c.to_vec().unwrap(), &want, 2e-3, 1e-4);
    // a K that does not split evenly: the last rows make one more product
    for k in [19_703, 16_390] {
        check(&g, 1, 16, 12, k, true, false, false, None);
    }
}
