//! Causal space-time convolution against an f64 direct convolution (forward and backward),
//! causality, and the depth-to-space / depth-to-time upsampling layouts.

use enma::ops::conv_causal::ConvSpec;
use enma::{Tape, Tensor};

use crate::common::{check_grads, gpu, rand_vec};

/// Direct causal convolution: x [B, T, S.., C] (S = [s0] or [s0, s1]), w [(dt, ds.., c), co].
fn reference(x: &[f64], w: &[f64], bias: &[f64], shape: &[usize], co: usize, sp: ConvSpec) -> Vec<f64> {
    let (b, t, c) = (shape[0], shape[1], shape[shape.len() - 1]);
    let ns = shape.len() - 3;
    let s0 = shape[2];
    let s1 = if ns == 2 { shape[3] } else { 1 };
    let ks1 = if ns == 2 { sp.ks } else { 1 };
    let (to, o0, o1) = (sp.out_frames(t), sp.out_points(s0), if ns == 2 { sp.out_points(s1) } else { 1 });
    let pad = (sp.ks - 1) as isize / 2;
    let mut y = vec![0.0; b * to * o0 * o1 * co];
    for bi in 0..b {
        for tt in 0..to {
            for a0 in 0..o0 {
                for a1 in 0..o1 {
                    for oc in 0..co {
                        let mut s = bias[oc];
                        for dt in 0..sp.kt {
                            let ti = (tt * sp.st + dt) as isize - (sp.kt as isize - 1);
                            for d0 in 0..sp.ks {
                                let x0 = (a0 * sp.ss + d0) as isize - pad;
                                for d1 in 0..ks1 {
                                    let x1 = if ns == 2 { (a1 * sp.ss + d1) as isize - pad } else { 0 };
                                    if ti < 0 || x0 < 0 || x0 >= s0 as isize || x1 < 0 || x1 >= s1 as isize {
                                        continue;
                                    }
                                    for ci in 0..c {
                                        let xi =
                                            (((bi * t + ti as usize) * s0 + x0 as usize) * s1 + x1 as usize) * c + ci;
                                        let wi = ((dt * sp.ks + d0) * ks1 + d1) * c + ci;
                                        s += x[xi] * w[wi * co + oc];
                                    }
                                }
                            }
                        }
                        y[(((bi * to + tt) * o0 + a0) * o1 + a1) * co + oc] = s;
                    }
                }
            }
        }
    }
    y
}

#[test]
fn causal_convolutions_forward_and_backward() {
    let g = gpu();
    // (input shape [B, T, S.., C], C_out, spec)
    let cases: Vec<(Vec<usize>, usize, ConvSpec)> = vec![
        (vec![2, 5, 7, 2], 3, ConvSpec::new(3, 3, 1, 1)),
        (vec![1, 6, 9, 2], 2, ConvSpec::new(3, 3, 2, 2)),
        (vec![1, 4, 8, 1], 2, ConvSpec::new(7, 7, 1, 1)),
        (vec![2, 3, 5, 3], 4, ConvSpec::new(1, 1, 1, 1)),
        (vec![1, 4, 5, 6, 2], 2, ConvSpec::new(3, 3, 2, 2)),
        (vec![1, 3, 4, 4, 1], 3, ConvSpec::new(3, 3, 1, 2)),
        // more than 8 channels on both sides: the im2col path
        (vec![1, 3, 5, 9], 10, ConvSpec::new(3, 3, 2, 1)),
        // multiples of 4 channels: the implicit kernels on adapters with subgroups, in both
        // layouts (rows = positions for ≥ 32 result channels, rows = channels otherwise)
        (vec![2, 5, 7, 4], 8, ConvSpec::new(3, 3, 1, 1)),
        (vec![1, 6, 9, 8], 32, ConvSpec::new(3, 3, 2, 2)),
        (vec![1, 5, 4, 6, 4], 64, ConvSpec::new(3, 3, 1, 2)),
        (vec![1, 3, 6, 5, 36], 16, ConvSpec::new(3, 3, 2, 1)),
        (vec![1, 4, 8, 16], 1, ConvSpec::new(7, 7, 1, 1)),
        (vec![1, 4, 9, 4], 36, ConvSpec::new(7, 7, 1, 1)),
    ];
    for (shape, co, sp) in cases {
        let ns = shape.len() - 3;
        let ci = shape[shape.len() - 1];
        let rows = sp.weight_rows(ci, ns);
        let n: usize = shape.iter().product();
        let sh = shape.clone();
        check_grads(
            &format!("conv_causal {shape:?} -> {co} {sp:?}"),
            &g,
            &[
                (rand_vec(n, 101, -1.0, 1.0), shape.clone()),
                (rand_vec(rows * co, 102, -0.5, 0.5), vec![rows, co]),
                (rand_vec(co, 103, -0.5, 0.5), vec![co]),
            ],
            move |v| v[0].conv_causal(&v[1], Some(&v[2]), sp),
            move |x| reference(&x[0], &x[1], &x[2], &sh, co, sp),
            3e-3,
        );
    }
}

#[test]
fn direct_and_im2col_methods_agree_with_the_reference() {
    use enma::ops::conv_causal::{ConvMethod, conv_causal_backward, conv_causal_with};
    let g = gpu();
    let methods = [
        ConvMethod::Direct,
        ConvMethod::Im2col { chunk_rows: None },
        ConvMethod::Im2col { chunk_rows: Some(7) },
        ConvMethod::Tiled,
    ];
    // channel counts that are and are not multiples of 4 on both sides
    let cases: Vec<(Vec<usize>, usize, ConvSpec)> = vec![
        (vec![2, 7, 5, 6, 3], 4, ConvSpec::new(3, 3, 2, 1)),
        (vec![2, 5, 9, 6], 5, ConvSpec::new(3, 3, 1, 2)),
        (vec![1, 4, 8, 1], 1, ConvSpec::new(7, 7, 1, 1)),
        (vec![2, 3, 6, 12], 9, ConvSpec::new(3, 3, 1, 1)),
    ];
    for (k, (shape, co, sp)) in cases.into_iter().enumerate() {
        let ns = shape.len() - 3;
        let rows = sp.weight_rows(shape[shape.len() - 1], ns);
        let n: usize = shape.iter().product();
        let (xv, wv, bv) =
            (rand_vec(n, 1 + k as u64, -1.0, 1.0), rand_vec(rows * co, 2, -1.0, 1.0), rand_vec(co, 3, -1.0, 1.0));
        let f64s = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
        let want: Vec<f32> =
            reference(&f64s(&xv), &f64s(&wv), &f64s(&bv), &shape, co, sp).iter().map(|&a| a as f32).collect();
        let x = Tensor::from_slice(&g, &xv, &shape).unwrap();
        let w = Tensor::from_slice(&g, &wv, &[rows, co]).unwrap();
        let b = Tensor::from_slice(&g, &bv, &[co]).unwrap();
        let mut grads: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = Vec::new();
        for m in methods {
            let y = conv_causal_with(&x, &w, Some(&b), &sp, m).unwrap();
            crate::common::assert_close(&format!("{shape:?} {m:?} forward"), &y.to_vec().unwrap(), &want, 1e-5, 1e-5);
            let dy = Tensor::from_slice(&g, &rand_vec(y.numel(), 4, -1.0, 1.0), y.shape()).unwrap();
            let (dx, dw, db) = conv_causal_backward(&x, &w, true, &dy, &sp, m).unwrap();
            grads.push((dx.to_vec().unwrap(), dw.to_vec().unwrap(), db.unwrap().to_vec().unwrap()));
        }
        // the direct gradients are checked against finite differences in the test above
        for (m, gr) in methods.iter().zip(&grads).skip(1) {
            crate::common::assert_close(&format!("{shape:?} {m:?} dx"), &gr.0, &grads[0].0, 1e-5, 1e-5);
            crate::common::assert_close(&format!("{shape:?} {m:?} dw"), &gr.1, &grads[0].1, 1e-4, 1e-5);
            assert_eq!(gr.2, grads[0].2);
        }
    }
}

#[test]
fn implicit_and_tiled_kernels_agree_with_the_reference_and_the_direct_gradients() {
    use enma::ops::conv_causal::{ConvMethod, conv_causal_backward, conv_causal_with};
    let g = gpu();
    // the tiled kernel runs everywhere, the implicit (subgroup) one on 8 to 64 lanes
    let mut methods = vec![ConvMethod::Tiled];
    if enma::ops::matmul::subgroup_lanes(&g).is_some_and(|s| s >= 8) {
        methods.push(ConvMethod::Implicit);
    } else {
        eprintln!("the implicit kernels need subgroups of 8 to 64 lanes (this adapter: {:?})", g.subgroup_size());
    }
    // (input shape, C_out, spec): ragged position counts, both layouts of the forward and the
    // input gradient, 1D and 2D, every block of the VAE (res 3×3, space and time compression,
    // the 7×7 input and output convolutions), and weight gradients split over many frames
    let cases: Vec<(Vec<usize>, usize, ConvSpec)> = vec![
        (vec![3, 11, 37, 16], 16, ConvSpec::new(3, 3, 1, 1)),
        (vec![2, 9, 20, 32], 64, ConvSpec::new(3, 3, 1, 2)),
        (vec![2, 7, 6, 10, 8], 40, ConvSpec::new(3, 3, 2, 1)),
        (vec![1, 21, 16, 64], 8, ConvSpec::new(7, 7, 1, 1)),
        (vec![2, 11, 16, 4], 64, ConvSpec::new(7, 7, 1, 1)),
        (vec![4, 9, 13, 12], 20, ConvSpec::new(3, 1, 2, 1)),
        (vec![3, 4, 15, 16], 32, ConvSpec::new(1, 3, 1, 2)),
        (vec![2, 5, 9, 7, 16], 12, ConvSpec::new(3, 3, 1, 1)),
        (vec![5, 21, 24, 16], 1, ConvSpec::new(7, 7, 1, 1)),
        // 1×1×1 convolutions also run on the implicit kernels there
        (vec![2, 6, 10, 16], 32, ConvSpec::new(1, 1, 1, 1)),
        (vec![2, 5, 6, 3, 8], 8, ConvSpec::new(1, 1, 1, 1)),
    ];
    for (k, (shape, co, sp)) in cases.into_iter().enumerate() {
        let ns = shape.len() - 3;
        let ci = shape[shape.len() - 1];
        let rows = sp.weight_rows(ci, ns);
        let n: usize = shape.iter().product();
        let (xv, wv, bv) =
            (rand_vec(n, 11 + k as u64, -1.0, 1.0), rand_vec(rows * co, 12, -0.3, 0.3), rand_vec(co, 13, -1.0, 1.0));
        let f64s = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
        let want: Vec<f32> =
            reference(&f64s(&xv), &f64s(&wv), &f64s(&bv), &shape, co, sp).iter().map(|&a| a as f32).collect();
        let x = Tensor::from_slice(&g, &xv, &shape).unwrap();
        let w = Tensor::from_slice(&g, &wv, &[rows, co]).unwrap();
        let b = Tensor::from_slice(&g, &bv, &[co]).unwrap();
        let what = format!("{shape:?} -> {co} {sp:?}");
        // the direct gradients are checked against finite differences above
        let y_shape = conv_causal_with(&x, &w, Some(&b), &sp, ConvMethod::Direct).unwrap().shape().to_vec();
        let dy = Tensor::from_slice(&g, &rand_vec(want.len(), 14, -1.0, 1.0), &y_shape).unwrap();
        let (dx0, dw0, _) = conv_causal_backward(&x, &w, true, &dy, &sp, ConvMethod::Direct).unwrap();
        for &m in &methods {
            let what = format!("{what} {m:?}");
            let y = conv_causal_with(&x, &w, Some(&b), &sp, m).unwrap();
            crate::common::assert_close(&format!("{what} forward"), &y.to_vec().unwrap(), &want, 2e-5, 2e-5);
            if m == ConvMethod::Implicit && co % 4 != 0 {
                // a gathered channel count that is not a multiple of 4 (dx of a 1-channel
                // output) is an error for the implicit kernels
                assert!(conv_causal_backward(&x, &w, true, &dy, &sp, m).is_err(), "{what}");
                continue;
            }
            let (dx, dw, _) = conv_causal_backward(&x, &w, true, &dy, &sp, m).unwrap();
            let (dx, dw) = (dx.to_vec().unwrap(), dw.to_vec().unwrap());
            crate::common::assert_close(&format!("{what} dx"), &dx, &dx0.to_vec().unwrap(), 2e-5, 2e-5);
            crate::common::assert_close(&format!("{what} dw"), &dw, &dw0.to_vec().unwrap(), 1e-4, 1e-4);
        }
    }
}

#[test]
fn an_output_frame_never_depends_on_later_frames() {
    let g = gpu();
    for sp in [ConvSpec::new(3, 3, 1, 1), ConvSpec::new(3, 3, 2, 2), ConvSpec::new(7, 7, 1, 1)] {
        let (b, t, x, c, co) = (1, 8, 6, 2, 3);
        let data = rand_vec(b * t * x * c, 7, -1.0, 1.0);
        let w = Tensor::from_slice(&g, &rand_vec(sp.weight_rows(c, 1) * co, 8, -1.0, 1.0), &[sp.weight_rows(c, 1), co])
            .unwrap();
        let run = |d: &[f32]| {
            let tape = Tape::no_grad(&g);
            let xv = tape.constant(Tensor::from_slice(&g, d, &[b, t, x, c]).unwrap());
            xv.conv_causal(&tape.constant(w.clone()), None, sp).unwrap().to_vec().unwrap()
        };
        let base = run(&data);
        for frame in 0..t {
            let mut d = data.clone();
            for k in 0..x * c {
                d[frame * x * c + k] += 10.0;
            }
            let out = run(&d);
            let per = sp.out_points(x) * co;
            for to in 0..sp.out_frames(t) {
                let same = out[to * per..(to + 1) * per] == base[to * per..(to + 1) * per];
                // output frame `to` reads input frames to·st − (kt − 1) ..= to·st
                if to * sp.st < frame {
                    assert!(same, "{sp:?}: output frame {to} changed when the later frame {frame} did");
                } else if frame + sp.kt > to * sp.st {
                    assert!(!same, "{sp:?}: output frame {to} ignores frame {frame} in its window");
                }
            }
        }
    }
    // the time rule: 20, 30, 50 frames padded to odd lengths give 11, 16, 26 latent frames
    let sp = ConvSpec::new(3, 3, 2, 1);
    assert_eq!([21, 31, 51].map(|t| sp.out_frames(t)), [11, 16, 26]);
}

#[test]
fn depth_to_space_and_time_layouts() {
    let g = gpu();
    let tape = Tape::no_grad(&g);
    // [B=1, T=2, X=3, r·C = 2·2]: channel j·C + c of point x goes to point r·x + j
    let v: Vec<f32> = (0..24).map(|i| i as f32).collect();
    let xv = tape.constant(Tensor::from_slice(&g, &v, &[1, 2, 3, 4]).unwrap());
    let s = xv.depth_to_space(2).unwrap();
    assert_eq!(s.shape(), &[1, 2, 6, 2]);
    assert_eq!(s.to_vec().unwrap(), v, "1D depth-to-space is a pure reshape");
    let t = xv.depth_to_time(2).unwrap();
    assert_eq!(t.shape(), &[1, 4, 3, 2]);
    // frame 2t + j, point x, channel c ← frame t, point x, channel j·C + c
    let tv = t.to_vec().unwrap();
    for tt in 0..2 {
        for j in 0..2 {
            for x in 0..3 {
                for c in 0..2 {
                    assert_eq!(tv[(((2 * tt + j) * 3) + x) * 2 + c], v[((tt * 3) + x) * 4 + j * 2 + c]);
                }
            }
        }
    }
    // 2D: [1, 1, 2, 2, 4] → [1, 1, 4, 4, 1]
    let w: Vec<f32> = (0..16).map(|i| i as f32).collect();
    let y = tape.constant(Tensor::from_slice(&g, &w, &[1, 1, 2, 2, 4]).unwrap()).depth_to_space(2).unwrap();
    assert_eq!(y.shape(), &[1, 1, 4, 4, 1]);
    let yv = y.to_vec().unwrap();
    for h in 0..2 {
        for ww in 0..2 {
            for ry in 0..2 {
                for rx in 0..2 {
                    assert_eq!(yv[(2 * h + ry) * 4 + 2 * ww + rx], w[(h * 2 + ww) * 4 + ry * 2 + rx]);
                }
            }
        }
    }
}
