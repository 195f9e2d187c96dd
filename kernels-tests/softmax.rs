use crate::common::{check_grads, gpu, gpu_pinned, rand_vec};

fn softmax_ref(x: &[f64], len: usize) -> Vec<f64> {
    x.chunks(len)
        .flat_map(|row| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
            row.iter().map(move |v| (v - m).exp() / s).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn softmax_forward_and_backward() {
    let g = gpu();
    // [3, 100]: few long rows (a workgroup per row on CPU adapters); [70, 9]: many short rows.
    for shape in [vec![3usize, 100usize], vec![70, 9], vec![2, 4, 33]] {
        let n: usize = shape.iter().product();
        let len = *shape.last().unwrap();
        check_grads(
            &format!("softmax {shape:?}"),
            &g,
            &[(rand_vec(n, 31, -4.0, 4.0), shape.clone())],
            |v| v[0].softmax(),
            move |x| softmax_ref(&x[0], len),
            2e-3,
        );
    }
}

#[test]
fn softmax_is_stable_for_large_logits() {
    let g = gpu();
    let x = enma::Tensor::from_slice(&g, &[1000.0, 1001.0, -1000.0, 0.0], &[1, 4]).unwrap();
    let y = enma::ops::softmax(&x).unwrap().to_vec().unwrap();
    let want = softmax_ref(&[1000.0, 1001.0, -1000.0, 0.0], 4);
    for (a, b) in y.iter().zip(&want) {
        assert!((*a as f64 - b).abs() < 1e-6, "{y:?} vs {want:?}");
    }
}

#[test]
fn both_softmax_kernels_match_the_cpu() {
    // an invocation per row and a workgroup per row, each forced through the tuner's pins
    let shapes = [vec![3usize, 100usize], vec![70, 9], vec![5, 300]];
    let keys: Vec<String> =
        shapes.iter().map(|s| format!("softmax {}x{}", s[0].next_power_of_two(), s[1].next_power_of_two())).collect();
    for kernel in ["thread", "group"] {
        let g = gpu_pinned(&keys, kernel);
        for shape in &shapes {
            let (n, len) = (shape[0] * shape[1], shape[1]);
            check_grads(
                &format!("softmax {kernel} {shape:?}"),
                &g,
                &[(rand_vec(n, 32, -4.0, 4.0), shape.clone())],
                |v| v[0].softmax(),
                move |x| softmax_ref(&x[0], len),
                2e-3,
            );
        }
        let used = g.tune_used();
        assert!(keys.iter().all(|k| used.get(k).map(String::as_str) == Some(kernel)), "{used:?}");
    }
}
