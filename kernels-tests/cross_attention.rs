//! The fused distance-biased cross-attention against an f64 CPU reference, forward and
//! backward (q, k, v, query and key coordinates, slopes), with key padding and periodic
//! distances.

use crate::common::{check_grads, gpu, rand_vec};

#[allow(clippy::too_many_arguments)]
fn reference(
    x: &[Vec<f64>],
    b: usize,
    h: usize,
    nq: usize,
    nk: usize,
    dh: usize,
    dim: usize,
    bq: usize,
    bk: usize,
    nvalid: &[usize],
    periodic: bool,
) -> Vec<f64> {
    let (q, k, v, qc, kc, m) = (&x[0], &x[1], &x[2], &x[3], &x[4], &x[5]);
    let scale = 1.0 / (dh as f64).sqrt();
    let mut o = vec![0.0; b * h * nq * dh];
    for bi in 0..b {
        for hi in 0..h {
            for i in 0..nq {
                let s: Vec<f64> = (0..nvalid[bi])
                    .map(|j| {
                        let dot: f64 = (0..dh)
                            .map(|e| q[((bi * h + hi) * nq + i) * dh + e] * k[((bi * h + hi) * nk + j) * dh + e])
                            .sum();
                        let dist: f64 = (0..dim)
                            .map(|c| {
                                let mut e = qc[(if bq == 1 { 0 } else { bi } * nq + i) * dim + c]
                                    - kc[(if bk == 1 { 0 } else { bi } * nk + j) * dim + c];
                                if periodic {
                                    e -= e.round();
                                }
                                e * e
                            })
                            .sum::<f64>()
                            .sqrt();
                        scale * dot - m[hi] * dist
                    })
                    .collect();
                let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|v| (v - mx).exp()).sum();
                for e in 0..dh {
                    o[((bi * h + hi) * nq + i) * dh + e] = s
                        .iter()
                        .enumerate()
                        .map(|(j, sj)| (sj - mx).exp() / z * v[((bi * h + hi) * nk + j) * dh + e])
                        .sum();
                }
            }
        }
    }
    o
}

#[test]
fn cross_attention_forward_and_backward() {
    let g = gpu();
    // (B, H, Nq, Nk, dh, D, shared query coords, shared key coords, key counts, periodic)
    let cases = [
        (2usize, 2usize, 5usize, 7usize, 4usize, 1usize, true, false, vec![7usize, 4], true),
        (1, 3, 9, 6, 3, 2, true, true, vec![6], false),
    ];
    for (b, h, nq, nk, dh, dim, sq, sk, nvalid, periodic) in cases {
        let (bq, bk) = (if sq { 1 } else { b }, if sk { 1 } else { b });
        let inputs = vec![
            (rand_vec(b * h * nq * dh, 91, -1.0, 1.0), vec![b, h, nq, dh]),
            (rand_vec(b * h * nk * dh, 92, -1.0, 1.0), vec![b, h, nk, dh]),
            (rand_vec(b * h * nk * dh, 93, -1.0, 1.0), vec![b, h, nk, dh]),
            (rand_vec(bq * nq * dim, 94, 0.0, 1.0), vec![bq, nq, dim]),
            (rand_vec(bk * nk * dim, 95, 0.0, 1.0), vec![bk, nk, dim]),
            (rand_vec(h, 96, 1.0, 4.0), vec![h]),
        ];
        let counts: Vec<u32> = nvalid.iter().map(|&c| c as u32).collect();
        let nv = nvalid.clone();
        check_grads(
            &format!("cross_attention b{b} h{h} nq{nq} nk{nk} dh{dh} D{dim} periodic={periodic}"),
            &g,
            &inputs,
            |v| v[0].cross_attention(&v[1], &v[2], &v[3], &v[4], &v[5], Some(&counts), periodic),
            move |x| reference(x, b, h, nq, nk, dh, dim, bq, bk, &nv, periodic),
            3e-3,
        );
    }
}

#[test]
fn cross_attention_checks_shapes() {
    let g = gpu();
    let t = |s: &[usize]| enma::Tensor::zeros(&g, s, enma::DType::F32).unwrap();
    let (q, k) = (t(&[1, 2, 3, 4]), t(&[1, 2, 5, 4]));
    let e = enma::ops::cross_attention::cross_attention_forward(
        &q,
        &k,
        &k,
        &t(&[1, 3, 2]),
        &t(&[1, 5, 2]),
        &t(&[3]),
        None,
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("slope"), "{e}");
    let e = enma::ops::cross_attention::cross_attention_forward(
        &q,
        &k,
        &k,
        &t(&[1, 3, 2]),
        &t(&[1, 4, 2]),
        &t(&[2]),
        None,
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("Nk=5"), "{e}");
}

#[test]
fn cross_attention_refuses_shapes_past_a_software_drivers_loop_budget() {
    // 600 keys of head dimension 32: about 600 · (2 · 32 + 2 + 3) = 41,400 loop passes per
    // invocation, past what lavapipe and llvmpipe run before they stop every loop silently
    let g = gpu();
    let t = |s: &[usize]| enma::Tensor::zeros(&g, s, enma::DType::F32).unwrap();
    let r = enma::ops::cross_attention::cross_attention_forward(
        &t(&[1, 1, 4, 32]),
        &t(&[1, 1, 600, 32]),
        &t(&[1, 1, 600, 32]),
        &t(&[1, 4, 2]),
        &t(&[1, 600, 2]),
        &t(&[1]),
        None,
        false,
    );
    if g.loop_capped() {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("loop passes"), "{e}");
    } else {
        let (o, _) = r.unwrap();
        assert!(o.to_vec().unwrap().iter().all(|v| *v == 0.0), "zero values give a zero output");
    }
}
