use enma::Tensor;
use enma::ops::{self, ReduceOp};

use crate::common::{assert_close, gpu, gpu_pinned, rand_vec};

fn cpu_reduce(x: &[f32], shape: &[usize], axis: usize, op: ReduceOp) -> Vec<f32> {
    let outer: usize = shape[..axis].iter().product();
    let len = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let vals = (0..len).map(|k| x[(o * len + k) * inner + i] as f64);
            let v = match op {
                ReduceOp::Sum => vals.sum::<f64>(),
                ReduceOp::Mean => vals.sum::<f64>() / len as f64,
                ReduceOp::Max => vals.fold(f64::NEG_INFINITY, f64::max),
                ReduceOp::Min => vals.fold(f64::INFINITY, f64::min),
            };
            out.push(v as f32);
        }
    }
    out
}

#[test]
fn reductions_along_every_axis_match_the_cpu() {
    let g = gpu();
    // [3, 70, 5]: axis 1 strided; [4, 300]: few long rows (workgroup per row); [70, 100]: many
    // rows (one invocation per row on CPU adapters); [2, 3, 7]: short rows.
    let shapes: [&[usize]; 5] = [&[3, 70, 5], &[4, 300], &[70, 100], &[2, 3, 7], &[5000]];
    for shape in shapes {
        let n: usize = shape.iter().product();
        let data = rand_vec(n, 21, -2.0, 2.0);
        let x = Tensor::from_slice(&g, &data, shape).unwrap();
        for axis in 0..shape.len() {
            for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
                let y = ops::reduce(&x, axis as isize, op, false).unwrap();
                let mut want_shape = shape.to_vec();
                want_shape.remove(axis);
                assert_eq!(y.shape(), &want_shape[..]);
                let want = cpu_reduce(&data, shape, axis, op);
                // f32 accumulation of <= 5000 terms of size <= 2: 1e-4 absolute.
                assert_close(&format!("{op:?} axis {axis} of {shape:?}"), &y.to_vec().unwrap(), &want, 1e-4, 1e-5);
            }
        }
    }
}

#[test]
fn keepdim_and_negative_axis() {
    let g = gpu();
    let x = Tensor::from_slice(&g, &rand_vec(24, 5, 0.0, 1.0), &[2, 3, 4]).unwrap();
    assert_eq!(ops::sum(&x, -1, true).unwrap().shape(), &[2, 3, 1]);
    assert_eq!(ops::mean(&x, -3, false).unwrap().shape(), &[3, 4]);
    let e = ops::sum(&x, 3, false).unwrap_err().to_string();
    assert!(e.contains("axis 3") && e.contains("[2, 3, 4]"), "{e}");
}

#[test]
fn long_sums_stay_accurate() {
    let g = gpu();
    // 2^20 copies of 0.1f32 along a strided axis and along a row: the exact sum is
    // 104857.6016. A plain running f32 sum is off by about 4 (4e-5); blocked sums stay within
    // 2e-6 relative.
    let n = 1 << 20;
    let exact = 0.1f32 as f64 * n as f64;
    let x = Tensor::from_slice(&g, &vec![0.1; n], &[n, 1]).unwrap();
    let s = ops::sum(&x, 0, false).unwrap().to_vec().unwrap()[0] as f64;
    assert!((s - exact).abs() < 2e-6 * exact, "strided sum {s}, exact {exact}");
    let r = ops::sum(&x.reshape(&[1, n]).unwrap(), 1, false).unwrap().to_vec().unwrap()[0] as f64;
    assert!((r - exact).abs() < 2e-6 * exact, "row sum {r}, exact {exact}");
}

#[test]
fn same_input_gives_bitwise_same_output() {
    let g = gpu();
    let x = Tensor::from_slice(&g, &rand_vec(100_000, 9, -1.0, 1.0), &[100_000]).unwrap();
    let a = ops::sum(&x, 0, false).unwrap().to_vec().unwrap();
    let b = ops::sum(&x, 0, false).unwrap().to_vec().unwrap();
    assert_eq!(a[0].to_bits(), b[0].to_bits());
}

#[test]
fn axes_longer_than_a_loop_may_run_are_summed_whole() {
    // lavapipe stops a loop after 65,535 iterations: an axis longer than that, reduced by one
    // invocation, lost its tail (a [70000, 2] sum over axis 0 gave 65535). Strided and
    // contiguous axes, ragged and whole chunks, every op, both keepdims.
    let g = gpu();
    for (outer, len, inner) in [(1, 70_001, 2), (3, 65_536 * 2, 1), (2, 100_000, 1), (70, 66_000, 1)] {
        let v: Vec<f32> = (0..outer * len * inner).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
        let x = Tensor::from_slice(&g, &v, &[outer, len, inner]).unwrap();
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
            for keepdim in [false, true] {
                let y = ops::reduce(&x, 1, op, keepdim).unwrap();
                let want_shape = if keepdim { vec![outer, 1, inner] } else { vec![outer, inner] };
                assert_eq!(y.shape(), want_shape.as_slice());
                let got = y.to_vec().unwrap();
                for o in 0..outer {
                    for i in 0..inner {
                        let col = (0..len).map(|l| v[(o * len + l) * inner + i] as f64);
                        let want = match op {
                            ReduceOp::Sum => col.sum::<f64>(),
                            ReduceOp::Mean => col.sum::<f64>() / len as f64,
                            ReduceOp::Max => col.fold(f64::MIN, f64::max),
                            ReduceOp::Min => col.fold(f64::MAX, f64::min),
                        };
                        let e = (got[o * inner + i] as f64 - want).abs();
                        assert!(
                            e <= 2e-6 * want.abs().max(1.0),
                            "{op:?} {outer}x{len}x{inner}: got {}, want {want}",
                            got[o * inner + i]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn both_row_reduction_kernels_match_the_cpu() {
    // contiguous rows: an invocation per row or a workgroup per row, forced through the pins
    let shapes = [(3usize, 100usize), (70, 257), (1, 5000)];
    let keys: Vec<String> =
        shapes.iter().map(|(r, l)| format!("reduce {}x{}", r.next_power_of_two(), l.next_power_of_two())).collect();
    for kernel in ["thread", "group"] {
        let g = gpu_pinned(&keys, kernel);
        for &(rows, len) in &shapes {
            let x = rand_vec(rows * len, 5, -1.0, 1.0);
            let t = Tensor::from_slice(&g, &x, &[rows, len]).unwrap();
            for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
                let got = ops::reduce(&t, 1, op, false).unwrap().to_vec().unwrap();
                let want = cpu_reduce(&x, &[rows, len], 1, op);
                assert_close(&format!("{kernel} {op:?} {rows}x{len}"), &got, &want, 1e-5, 1e-5);
            }
        }
        let used = g.tune_used();
        assert!(keys.iter().all(|k| used.get(k).map(String::as_str) == Some(kernel)), "{used:?}");
    }
}

#[test]
fn column_reductions_with_few_outputs_match_the_cpu_and_the_one_pass_bits() {
    let g = gpu();
    // [1000, 4096] has enough columns for the one-pass kernel; its first 64 columns alone go
    // through chunks of 64 rows first (four columns per vector load): same bits. Ragged last
    // chunks (1000 = 15·64 + 40), an outer axis, and every op against the CPU.
    let (rows, cols) = (1000, 4096);
    let data = rand_vec(rows * cols, 33, -2.0, 2.0);
    let wide = Tensor::from_slice(&g, &data, &[rows, cols]).unwrap();
    let narrow_data: Vec<f32> = data.chunks(cols).flat_map(|r| r[..64].to_vec()).collect();
    let narrow = Tensor::from_slice(&g, &narrow_data, &[rows, 64]).unwrap();
    for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
        let all = ops::reduce(&wide, 0, op, false).unwrap().to_vec().unwrap();
        let few = ops::reduce(&narrow, 0, op, false).unwrap().to_vec().unwrap();
        assert_eq!(few, all[..64].to_vec(), "{op:?}: the chunked pass changed the bits");
        assert_close(&format!("{op:?} [1000, 64]"), &few, &cpu_reduce(&narrow_data, &[rows, 64], 0, op), 1e-4, 1e-5);
    }
    // columns one by one (5) and four at a time (8), with an outer axis
    for shape in [[3, 777, 5], [3, 777, 8]] {
        let data = rand_vec(shape.iter().product(), 34, -2.0, 2.0);
        let x = Tensor::from_slice(&g, &data, &shape).unwrap();
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
            let y = ops::reduce(&x, 1, op, false).unwrap().to_vec().unwrap();
            assert_close(&format!("{op:?} axis 1 of {shape:?}"), &y, &cpu_reduce(&data, &shape, 1, op), 1e-4, 1e-5);
        }
    }
}
