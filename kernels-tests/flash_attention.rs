//! Flash attention against an f64 reference with finite differences (every mask), against the
//! plain attention path (matmul, additive mask, softmax), and the KV-cache decode against the
//! full forward.

use enma::ops::flash_attention::{AttentionOptions, FlashKernel, flash_attention, flash_attention_cached};
use enma::{Gpu, Tape, Tensor};

use crate::common::{assert_close, check_grads, gpu, rand_vec};

/// o [B, H, Nq, dh] of q, k, v (f64), with the options' masks; rows that see no key are 0.
fn reference(q: &[f64], k: &[f64], v: &[f64], s: [usize; 5], o: &AttentionOptions) -> Vec<f64> {
    let [b, h, nq, nk, dh] = s;
    let mut out = vec![0.0; b * h * nq * dh];
    for bi in 0..b {
        let len = o.key_lens.as_ref().map(|l| (l[bi] as usize).min(nk)).unwrap_or(nk);
        for hi in 0..h {
            let bh = bi * h + hi;
            for i in 0..nq {
                let keys: Vec<usize> =
                    (0..len).filter(|&j| o.block_causal.is_none_or(|blk| j / blk <= (i + o.q_offset) / blk)).collect();
                if keys.is_empty() {
                    continue;
                }
                let scores: Vec<f64> = keys
                    .iter()
                    .map(|&j| {
                        (0..dh).map(|d| q[(bh * nq + i) * dh + d] * k[(bh * nk + j) * dh + d]).sum::<f64>()
                            * o.scale as f64
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                for (&j, s) in keys.iter().zip(&scores) {
                    let p = (s - m).exp() / z;
                    for d in 0..dh {
                        out[(bh * nq + i) * dh + d] += p * v[(bh * nk + j) * dh + d];
                    }
                }
            }
        }
    }
    out
}

/// Every kernel the adapter can run (the tests force each, not only the tuner's pick).
fn kernels(g: &Gpu) -> Vec<FlashKernel> {
    let mut k = vec![FlashKernel::Tiled];
    if enma::ops::matmul::subgroup_lanes(g).is_some() {
        k.push(FlashKernel::Subgroup);
    }
    k
}

fn cases() -> Vec<([usize; 5], AttentionOptions)> {
    let base = |dh| AttentionOptions::new(dh);
    vec![
        ([2, 2, 5, 7, 4], base(4)),
        ([1, 2, 9, 9, 3], base(3).block_causal(3)),
        ([2, 1, 4, 6, 5], base(5).key_lens(vec![6, 2])),
        ([2, 2, 8, 8, 4], base(4).block_causal(2).key_lens(vec![5, 8])),
        // more queries and keys than one tile, a batch with no valid key at all
        ([2, 1, 70, 80, 2], base(2).key_lens(vec![0, 75])),
        // partial last frame, padded keys inside a tile and at its edge, more queries than keys
        ([2, 1, 37, 37, 6], base(6).block_causal(5).key_lens(vec![33, 16])),
        ([1, 3, 40, 17, 9], base(9).key_lens(vec![17])),
    ]
}

#[test]
fn flash_attention_matches_the_reference_with_every_mask() {
    let g = gpu();
    let all = cases().into_iter().flat_map(|(s, o)| kernels(&g).into_iter().map(move |k| (s, o.clone().kernel(k))));
    for (k, (s, opts)) in all.enumerate() {
        let [b, h, nq, nk, dh] = s;
        let (sq, sk) = (vec![b, h, nq, dh], vec![b, h, nk, dh]);
        let o2 = opts.clone();
        check_grads(
            &format!("flash_attention {s:?} {opts:?}"),
            &g,
            &[
                (rand_vec(b * h * nq * dh, 10 + k as u64, -1.5, 1.5), sq),
                (rand_vec(b * h * nk * dh, 20 + k as u64, -1.5, 1.5), sk.clone()),
                (rand_vec(b * h * nk * dh, 30 + k as u64, -1.0, 1.0), sk),
            ],
            move |v| v[0].flash_attention(&v[1], &v[2], &o2),
            move |x| reference(&x[0], &x[1], &x[2], s, &opts),
            3e-3,
        );
    }
}

#[test]
fn flash_attention_equals_the_plain_attention_path() {
    let g = gpu();
    let shapes = [(2, 2, 100, 16, None), (1, 2, 96, 64, Some(16)), (2, 4, 48, 8, Some(12)), (1, 1, 150, 8, Some(16))];
    for ((b, h, n, dh, block), kernel) in shapes.into_iter().flat_map(|s| kernels(&g).into_iter().map(move |k| (s, k)))
    {
        let shape = [b, h, n, dh];
        let data: Vec<Vec<f32>> = (0..4).map(|i| rand_vec(b * h * n * dh, 50 + i, -1.0, 1.0)).collect();
        let mut opts = AttentionOptions::new(dh).kernel(kernel);
        opts.block_causal = block;
        let run = |flash: bool| {
            let tape = Tape::new(&g);
            let v: Vec<_> = data[..3].iter().map(|d| tape.leaf(Tensor::from_slice(&g, d, &shape).unwrap())).collect();
            let o = if flash {
                v[0].flash_attention(&v[1], &v[2], &opts).unwrap()
            } else {
                let (q, k, vv) = (
                    v[0].reshape(&[b * h, n, dh]).unwrap(),
                    v[1].reshape(&[b * h, n, dh]).unwrap(),
                    v[2].reshape(&[b * h, n, dh]).unwrap(),
                );
                let mut s = q.matmul(&k, None, false, true).unwrap().scale(opts.scale).unwrap();
                if let Some(blk) = block {
                    let mask: Vec<f32> =
                        (0..n * n).map(|e| if (e % n) / blk <= (e / n) / blk { 0.0 } else { -1e9 }).collect();
                    s = s.add(&tape.constant(Tensor::from_slice(&g, &mask, &[n, n]).unwrap())).unwrap();
                }
                s.softmax().unwrap().matmul(&vv, None, false, false).unwrap().reshape(&shape).unwrap()
            };
            let w = tape.constant(Tensor::from_slice(&g, &data[3], &shape).unwrap());
            let grads = o.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
            let mut out = vec![o.to_vec().unwrap()];
            out.extend(v.iter().map(|x| grads.of(x).unwrap().to_vec().unwrap()));
            out
        };
        let (fa, plain) = (run(true), run(false));
        for (i, name) in ["o", "dq", "dk", "dv"].iter().enumerate() {
            assert_close(&format!("{shape:?} {block:?} {kernel:?} {name}"), &fa[i], &plain[i], 2e-5, 2e-4);
        }
    }
}

/// `[B, X, Y, dh]` → `[B, Y, X, dh]` of a flat f32 tensor.
fn swap12(x: &[f32], s: [usize; 4]) -> Vec<f32> {
    let [b, n1, n2, dh] = s;
    let mut out = vec![0.0; x.len()];
    for bi in 0..b {
        for i in 0..n1 {
            for j in 0..n2 {
                let (from, to) = (((bi * n1 + i) * n2 + j) * dh, ((bi * n2 + j) * n1 + i) * dh);
                out[to..to + dh].copy_from_slice(&x[from..from + dh]);
            }
        }
    }
    out
}

#[test]
fn token_major_flash_attention_equals_the_head_major_one() {
    // the same sums in the same order: o and every gradient agree to rounding, with each mask
    let g = gpu();
    let all = cases().into_iter().flat_map(|(s, o)| kernels(&g).into_iter().map(move |k| (s, o.clone().kernel(k))));
    for (c, (s, opts)) in all.enumerate() {
        let [b, h, nq, nk, dh] = s;
        let (sq, sk) = ([b, h, nq, dh], [b, h, nk, dh]);
        let data = [
            rand_vec(b * h * nq * dh, 60 + c as u64, -1.5, 1.5),
            rand_vec(b * h * nk * dh, 70 + c as u64, -1.5, 1.5),
            rand_vec(b * h * nk * dh, 80 + c as u64, -1.0, 1.0),
            rand_vec(b * h * nq * dh, 90 + c as u64, -1.0, 1.0),
        ];
        let shapes = [sq, sk, sk, sq];
        // head-major results, swapped to token-major when `tm`
        let run = |tm: bool| {
            let tape = Tape::new(&g);
            let shape = |i: usize| if tm { [b, shapes[i][2], h, dh] } else { shapes[i] };
            let put = |i: usize| {
                let d = if tm { swap12(&data[i], shapes[i]) } else { data[i].clone() };
                Tensor::from_slice(&g, &d, &shape(i)).unwrap()
            };
            let v: Vec<_> = (0..3).map(|i| tape.leaf(put(i))).collect();
            let o = v[0].flash_attention(&v[1], &v[2], &AttentionOptions { token_major: tm, ..opts.clone() }).unwrap();
            let grads = o.mul(&tape.constant(put(3))).unwrap().sum_all().unwrap().backward().unwrap();
            let back = |x: Vec<f32>, i: usize| if tm { swap12(&x, shape(i)) } else { x };
            let mut out = vec![back(o.to_vec().unwrap(), 0)];
            out.extend(v.iter().enumerate().map(|(i, x)| back(grads.of(x).unwrap().to_vec().unwrap(), i)));
            out
        };
        let (hm, tm) = (run(false), run(true));
        for (i, name) in ["o", "dq", "dk", "dv"].iter().enumerate() {
            assert_close(&format!("token-major {s:?} {opts:?} {name}"), &tm[i], &hm[i], 1e-6, 1e-6);
        }
    }
}

#[test]
fn decoding_from_a_kv_cache_equals_the_full_forward() {
    let g = gpu();
    // 5 frames of 6 tokens, 2 heads of 8: the full block-causal pass, then frame by frame
    let (b, h, frames, m, dh) = (2, 2, 5, 6, 8);
    let n = frames * m;
    let shape = [b, h, n, dh];
    let (qv, kv, vv) = (rand_vec(b * h * n * dh, 1, -1.0, 1.0), rand_vec(b * h * n * dh, 2, -1.0, 1.0), {
        rand_vec(b * h * n * dh, 3, -1.0, 1.0)
    });
    let t = |d: &[f32], s: &[usize]| Tensor::from_slice(&g, d, s).unwrap();
    for kernel in kernels(&g) {
        let opts = AttentionOptions::new(dh).block_causal(m).kernel(kernel);
        let (full, _) = flash_attention(&t(&qv, &shape), &t(&kv, &shape), &t(&vv, &shape), &opts).unwrap();
        let full = full.to_vec().unwrap();
        // the cache holds all n rows; only the first (f + 1)·m are in use at frame f (the rest is
        // garbage that must never be read)
        let mut kc = vec![f32::NAN; b * h * n * dh];
        let mut vc = kc.clone();
        for f in 0..frames {
            let mut q = Vec::new();
            for bh in 0..b * h {
                for r in f * m..(f + 1) * m {
                    let src = (bh * n + r) * dh;
                    kc[src..src + dh].copy_from_slice(&kv[src..src + dh]);
                    vc[src..src + dh].copy_from_slice(&vv[src..src + dh]);
                    q.extend_from_slice(&qv[src..src + dh]);
                }
            }
            let mut o = opts.clone();
            o.q_offset = f * m;
            let step =
                flash_attention_cached(&t(&q, &[b, h, m, dh]), &t(&kc, &shape), &t(&vc, &shape), (f + 1) * m, &o)
                    .unwrap()
                    .to_vec()
                    .unwrap();
            for bh in 0..b * h {
                for r in 0..m {
                    let want = &full[(bh * n + f * m + r) * dh..][..dh];
                    let got = &step[(bh * m + r) * dh..][..dh];
                    assert_close(&format!("{kernel:?} frame {f} row {r}"), got, want, 1e-6, 1e-5);
                }
            }
        }
    }
}

#[test]
fn flash_attention_rejects_bad_inputs() {
    let g = gpu();
    let t = |s: &[usize]| Tensor::zeros(&g, s, enma::DType::F32).unwrap();
    let o = AttentionOptions::new(8);
    assert!(flash_attention(&t(&[1, 1, 4, 80]), &t(&[1, 1, 4, 80]), &t(&[1, 1, 4, 80]), &o).is_err());
    assert!(flash_attention(&t(&[1, 1, 4, 8]), &t(&[1, 2, 4, 8]), &t(&[1, 2, 4, 8]), &o).is_err());
    assert!(
        flash_attention(&t(&[2, 1, 4, 8]), &t(&[2, 1, 4, 8]), &t(&[2, 1, 4, 8]), &o.clone().key_lens(vec![1])).is_err()
    );
    assert!(
        flash_attention(&t(&[1, 1, 4, 8]), &t(&[1, 1, 4, 8]), &t(&[1, 1, 4, 8]), &o.clone().block_causal(0)).is_err()
    );
    let e = flash_attention_cached(&t(&[1, 1, 4, 8]), &t(&[1, 1, 4, 8]), &t(&[1, 1, 4, 8]), 5, &o).unwrap_err();
    assert!(e.to_string().contains("cache"), "{e}");
    // token-major: heads are axis 2, so these disagree; the cache is head-major
    let tm = o.clone().token_major();
    assert!(flash_attention(&t(&[1, 4, 2, 8]), &t(&[1, 4, 1, 8]), &t(&[1, 4, 1, 8]), &tm).is_err());
    assert!(flash_attention(&t(&[1, 4, 2, 8]), &t(&[1, 6, 2, 8]), &t(&[1, 6, 2, 8]), &tm).is_ok());
    assert!(flash_attention_cached(&t(&[1, 1, 4, 8]), &t(&[1, 1, 4, 8]), &t(&[1, 1, 4, 8]), 4, &tm).is_err());
}
