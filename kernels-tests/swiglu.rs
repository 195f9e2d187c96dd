use crate::common::{check_grads, gpu, rand_vec};

#[test]
fn swiglu_forward_and_backward() {
    let g = gpu();
    for (rows, h) in [(4usize, 8usize), (13, 7), (300, 12)] {
        check_grads(
            &format!("swiglu {rows}x{h}"),
            &g,
            &[(rand_vec(rows * 2 * h, 51, -3.0, 3.0), vec![rows, 2 * h])],
            |v| v[0].swiglu(),
            move |x| {
                (0..rows)
                    .flat_map(|r| {
                        let row = &x[0][r * 2 * h..(r + 1) * 2 * h];
                        (0..h).map(move |j| row[j] / (1.0 + (-row[j]).exp()) * row[h + j]).collect::<Vec<_>>()
                    })
                    .collect()
            },
            2e-3,
        );
    }
    let odd = enma::Tensor::zeros(&g, &[2, 5], enma::DType::F32).unwrap();
    assert!(enma::ops::swiglu(&odd).is_err());
}
