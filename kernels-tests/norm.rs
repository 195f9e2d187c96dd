use crate::common::{check_grads, gpu, rand_vec};

/// f64 reference: rows of `c`, optional γ (and β for LayerNorm).
fn norm_ref(x: &[f64], c: usize, layer: bool, gamma: Option<&[f64]>, beta: Option<&[f64]>, eps: f64) -> Vec<f64> {
    x.chunks(c)
        .flat_map(|row| {
            let mu = if layer { row.iter().sum::<f64>() / c as f64 } else { 0.0 };
            let var = row.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / c as f64;
            let r = 1.0 / (var + eps).sqrt();
            (0..c)
                .map(|k| (row[k] - mu) * r * gamma.map_or(1.0, |g| g[k]) + beta.map_or(0.0, |b| b[k]))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn rms_norm_forward_and_backward() {
    let g = gpu();
    for (rows, c) in [(4usize, 16usize), (70, 13), (260, 8)] {
        let x = rand_vec(rows * c, 41, -2.0, 2.0);
        check_grads(
            &format!("rms_norm {rows}x{c}"),
            &g,
            &[(x.clone(), vec![rows, c])],
            |v| v[0].rms_norm(None, 1e-5),
            move |x| norm_ref(&x[0], c, false, None, None, 1e-5),
            2e-3,
        );
        check_grads(
            &format!("rms_norm affine {rows}x{c}"),
            &g,
            &[(x, vec![rows, c]), (rand_vec(c, 42, 0.5, 1.5), vec![c])],
            |v| v[0].rms_norm(Some(&v[1]), 1e-5),
            move |x| norm_ref(&x[0], c, false, Some(&x[1]), None, 1e-5),
            2e-3,
        );
    }
}

#[test]
fn layer_norm_forward_and_backward() {
    let g = gpu();
    for (rows, c) in [(4usize, 16usize), (70, 13), (260, 8)] {
        let x = rand_vec(rows * c, 43, -2.0, 2.0);
        check_grads(
            &format!("layer_norm {rows}x{c}"),
            &g,
            &[(x.clone(), vec![rows, c])],
            |v| v[0].layer_norm(None, None, 1e-5),
            move |x| norm_ref(&x[0], c, true, None, None, 1e-5),
            2e-3,
        );
        check_grads(
            &format!("layer_norm affine {rows}x{c}"),
            &g,
            &[(x, vec![rows, c]), (rand_vec(c, 44, 0.5, 1.5), vec![c]), (rand_vec(c, 45, -0.5, 0.5), vec![c])],
            |v| v[0].layer_norm(Some(&v[1]), Some(&v[2]), 1e-5),
            move |x| norm_ref(&x[0], c, true, Some(&x[1]), Some(&x[2]), 1e-5),
            2e-3,
        );
    }
}

#[test]
fn norm_parameter_shapes_are_checked() {
    let g = gpu();
    let x = enma::Tensor::zeros(&g, &[2, 8], enma::DType::F32).unwrap();
    let bad = enma::Tensor::zeros(&g, &[4], enma::DType::F32).unwrap();
    let e = enma::ops::rms_norm(&x, Some(&bad), 1e-5).unwrap_err().to_string();
    assert!(e.contains("[2, 8]") && e.contains("[4]"), "{e}");
}
