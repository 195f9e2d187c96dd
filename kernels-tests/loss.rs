use enma::ops::loss::{kl_diag_normal, masked_mean, mse, relative_l2};

use crate::common::{check_grads, gpu, rand_vec};

#[test]
fn losses_forward_and_backward() {
    let g = gpu();
    for (b, n) in [(2usize, 8usize), (3, 13)] {
        let p = rand_vec(b * n, 71, -1.0, 1.0);
        let t = rand_vec(b * n, 72, -1.0, 1.0);
        check_grads(
            &format!("mse {b}x{n}"),
            &g,
            &[(p.clone(), vec![b, n]), (t.clone(), vec![b, n])],
            |v| mse(&v[0], &v[1]),
            |x| vec![x[0].iter().zip(&x[1]).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / x[0].len() as f64],
            2e-3,
        );
        check_grads(
            &format!("relative_l2 {b}x{n}"),
            &g,
            &[(p.clone(), vec![b, n]), (t.clone(), vec![b, n])],
            |v| relative_l2(&v[0], &v[1], 0.0),
            move |x| {
                let per: Vec<f64> = (0..b)
                    .map(|i| {
                        let r = i * n..(i + 1) * n;
                        let d: f64 = x[0][r.clone()].iter().zip(&x[1][r.clone()]).map(|(a, b)| (a - b).powi(2)).sum();
                        let t: f64 = x[1][r].iter().map(|v| v * v).sum();
                        d.sqrt() / t.sqrt()
                    })
                    .collect();
                vec![per.iter().sum::<f64>() / b as f64]
            },
            2e-3,
        );
        check_grads(
            &format!("kl {b}x{n}"),
            &g,
            &[(p.clone(), vec![b, n]), (t.clone(), vec![b, n])],
            |v| kl_diag_normal(&v[0], &v[1]),
            |x| {
                let s: f64 = x[0].iter().zip(&x[1]).map(|(m, lv)| -0.5 * (1.0 + lv - m * m - lv.exp())).sum();
                vec![s / x[0].len() as f64]
            },
            2e-3,
        );
        let mask: Vec<f32> = (0..b * n).map(|i| if i % 3 == 0 { 1.0 } else { 0.0 }).collect();
        let m2 = mask.clone();
        check_grads(
            &format!("masked_mean {b}x{n}"),
            &g,
            &[(p.clone(), vec![b, n])],
            move |v| {
                let mv = v[0].tape().constant(enma::Tensor::from_slice(v[0].gpu(), &mask, &[b, n]).unwrap());
                masked_mean(&v[0], &mv)
            },
            move |x| {
                let s: f64 = x[0].iter().zip(&m2).map(|(a, m)| a * *m as f64).sum();
                vec![s / m2.iter().map(|&m| m as f64).sum::<f64>()]
            },
            2e-3,
        );
    }
}

#[test]
fn loss_shapes_are_checked() {
    let g = gpu();
    let tape = enma::Tape::new(&g);
    let a = tape.leaf(enma::Tensor::zeros(&g, &[2, 3], enma::DType::F32).unwrap());
    let b = tape.leaf(enma::Tensor::zeros(&g, &[3, 2], enma::DType::F32).unwrap());
    let e = mse(&a, &b).unwrap_err().to_string();
    assert!(e.contains("mse") && e.contains("[2, 3]") && e.contains("[3, 2]"), "{e}");
}
