//! Physics Attention and the interpolation module: shapes, permutation equivariance, key
//! padding, gradients to the learned coordinates and slopes.

use enma::nn::interp::regular_grid;
use enma::nn::{Interpolation, OutputAttention, PhysicsAttention};
use enma::{ParamStore, Tape, Tensor};

use crate::common::{assert_close, gpu, rand_vec};

#[test]
fn physics_attention_is_permutation_equivariant() {
    let g = gpu();
    let mut store = ParamStore::new(&g, 1);
    let pa = PhysicsAttention::new(&mut store, "pa", 16, 4, 6).unwrap();
    let (b, n, d) = (2, 9, 16);
    let x = rand_vec(b * n * d, 1, -1.0, 1.0);
    let perm: Vec<usize> = (0..n).map(|i| (i * 4 + 3) % n).collect();
    let xp: Vec<f32> = (0..b)
        .flat_map(|bi| perm.iter().flat_map(move |&p| (0..d).map(move |c| (bi, p, c))))
        .map(|(bi, p, c)| x[(bi * n + p) * d + c])
        .collect();
    let run = |v: &[f32]| {
        let tape = Tape::no_grad(&g);
        pa.forward(&tape, &store, &tape.constant(Tensor::from_slice(&g, v, &[b, n, d]).unwrap()))
            .unwrap()
            .to_vec()
            .unwrap()
    };
    let y = run(&x);
    let yp = run(&xp);
    let want: Vec<f32> = (0..b)
        .flat_map(|bi| perm.iter().flat_map(move |&p| (0..d).map(move |c| (bi, p, c))))
        .map(|(bi, p, c)| y[(bi * n + p) * d + c])
        .collect();
    assert_close("permuted points", &yp, &want, 1e-5, 1e-4);
}

#[test]
fn interpolation_ignores_padding_and_trains_its_coordinates() {
    let g = gpu();
    let mut store = ParamStore::new(&g, 2);
    let interp = Interpolation::new(&mut store, "interp", 1, &[16], 8, 1, 4, true).unwrap();
    let out_att = OutputAttention::new(&mut store, "out", 1, 8, 1, true).unwrap();
    let (b, n) = (2, 20);
    let coords = rand_vec(b * n, 3, 0.0, 1.0);
    let values = rand_vec(b * n, 4, -1.0, 1.0);
    let counts = [20u32, 12];
    let run = |v: &[f32]| {
        let tape = Tape::new(&g);
        let vv = tape.constant(Tensor::from_slice(&g, v, &[b, n, 1]).unwrap());
        let grid = interp.forward(&tape, &store, &vv, &coords, &counts).unwrap();
        assert_eq!(grid.shape(), &[b, 16, 8]);
        // decode at a 2× finer grid (super-resolution)
        let xi = tape.param(&store, &interp.xi).unwrap();
        let out = out_att.forward(&tape, &store, &grid, &xi, &regular_grid(&[32])).unwrap();
        assert_eq!(out.shape(), &[b, 32, 1]);
        (out.to_vec().unwrap(), out.square().unwrap().mean_all().unwrap().backward().unwrap())
    };
    let (y, grads) = run(&values);
    // values beyond a sample's count are padding: changing them changes nothing
    let mut padded = values.clone();
    for v in &mut padded[n + 12..] {
        *v = 100.0;
    }
    assert_eq!(run(&padded).0, y);
    // but changing a real value of sample 1 changes sample 1 only
    let mut real = values.clone();
    real[n + 3] += 1.0;
    let y2 = run(&real).0;
    assert_eq!(y2[..32], y[..32]);
    assert_ne!(y2[32..], y[32..]);
    for p in [&interp.xi, &interp.slopes, &out_att.slopes] {
        let v = grads.param(p).unwrap().to_vec().unwrap();
        assert!(v.iter().all(|x| x.is_finite()) && v.iter().any(|x| *x != 0.0), "{}", store.name(p).unwrap());
    }
    assert_eq!(regular_grid(&[2, 2]), [0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.5, 0.5]);
}
