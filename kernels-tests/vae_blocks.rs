//! The VAE's building blocks: residual block with a global-context gate (identity at init,
//! causal), compression and upsampling shapes (the time rule), NeRF encoding.

use enma::nn::{Down, ResBlock, Up, nerf_encoding};
use enma::{ParamStore, Tape, Tensor};

use crate::common::{gpu, rand_vec};

#[test]
fn a_res_block_starts_as_its_skip_path_and_is_causal() {
    let g = gpu();
    let mut store = ParamStore::new(&g, 1);
    let block = ResBlock::new(&mut store, "res", 8, 8, 1).unwrap();
    let (b, t, x, c) = (2, 6, 10, 8);
    let data = rand_vec(b * t * x * c, 1, -1.0, 1.0);
    let run = |d: &[f32]| {
        let tape = Tape::no_grad(&g);
        block
            .forward(&tape, &store, &tape.constant(Tensor::from_slice(&g, d, &[b, t, x, c]).unwrap()))
            .unwrap()
            .to_vec()
            .unwrap()
    };
    let out = run(&data);
    // the gate starts at sigmoid(−10) ≈ 4.5e-5: the block is the identity to 1e-3
    for (o, i) in out.iter().zip(&data) {
        assert!((o - i).abs() < 1e-3, "{o} vs {i}");
    }
    assert_ne!(out, data, "the residual branch is not exactly zero");
    // causality: perturbing frame 3 (of every batch) leaves frames 0..3 unchanged
    let mut d2 = data.clone();
    for bi in 0..b {
        let base = bi * t * x * c;
        for v in &mut d2[base + 3 * x * c..base + 4 * x * c] {
            *v += 5.0;
        }
    }
    let out2 = run(&d2);
    for bi in 0..b {
        let base = bi * t * x * c;
        assert_eq!(out2[base..base + 3 * x * c], out[base..base + 3 * x * c], "batch {bi}: earlier frames changed");
        assert_ne!(out2[base + 4 * x * c..base + 5 * x * c], out[base + 4 * x * c..base + 5 * x * c]);
    }
}

#[test]
fn compression_and_upsampling_follow_the_time_rule() {
    let g = gpu();
    let mut store = ParamStore::new(&g, 2);
    let tape = Tape::new(&g);
    // 1D: 20 frames padded to 21, 128 points, 4 channels
    let x = tape.constant(Tensor::from_slice(&g, &rand_vec(21 * 128 * 4, 3, -1.0, 1.0), &[1, 21, 128, 4]).unwrap());
    let s = Down::space(&mut store, "ds", 4, 8, 1).unwrap().forward(&tape, &store, &x).unwrap();
    assert_eq!(s.shape(), &[1, 21, 64, 8]);
    let tdown = Down::time(&mut store, "dt", 8, 8, 1).unwrap().forward(&tape, &store, &s).unwrap();
    assert_eq!(tdown.shape(), &[1, 11, 64, 8], "21 frames → 11 latent frames");
    let tup = Up::time(&mut store, "ut", 8, 8, 1).unwrap().forward(&tape, &store, &tdown).unwrap();
    assert_eq!(tup.shape(), &[1, 22, 64, 8], "11 latent frames → 22, of which the first is dropped");
    let sup = Up::space(&mut store, "us", 8, 4, 1).unwrap().forward(&tape, &store, &tup).unwrap();
    assert_eq!(sup.shape(), &[1, 22, 128, 4]);
    // 2D
    let y = tape.constant(Tensor::from_slice(&g, &rand_vec(3 * 8 * 8 * 2, 4, -1.0, 1.0), &[1, 3, 8, 8, 2]).unwrap());
    let d2 = Down::space(&mut store, "ds2", 2, 4, 2).unwrap().forward(&tape, &store, &y).unwrap();
    assert_eq!(d2.shape(), &[1, 3, 4, 4, 4]);
    let u2 = Up::space(&mut store, "us2", 4, 2, 2).unwrap().forward(&tape, &store, &d2).unwrap();
    assert_eq!(u2.shape(), &[1, 3, 8, 8, 2]);
    // gradients flow through the chain to every conv
    let grads = sup
        .square()
        .unwrap()
        .mean_all()
        .unwrap()
        .add(&u2.square().unwrap().mean_all().unwrap())
        .unwrap()
        .backward()
        .unwrap();
    for p in store.params() {
        let v =
            grads.param(&p).unwrap_or_else(|| panic!("no gradient for {}", store.name(&p).unwrap())).to_vec().unwrap();
        assert!(v.iter().all(|x| x.is_finite()) && v.iter().any(|x| *x != 0.0), "{}", store.name(&p).unwrap());
    }
}

#[test]
fn nerf_features() {
    let f = nerf_encoding(&[0.25, 0.5], 2);
    assert_eq!(f.len(), 48);
    let pi = std::f32::consts::PI;
    assert!((f[0] - (pi * 0.25).sin()).abs() < 1e-6 && (f[1] - (pi * 0.25).cos()).abs() < 1e-6);
    assert!((f[22] - (16.0 * pi * 0.25).sin()).abs() < 1e-5, "the last band is 2⁴·π");
    assert!((f[24] - (pi * 0.5).sin()).abs() < 1e-6, "the second coordinate follows");
}
