//! AdamW, clipping and the parameter store against CPU references.

use enma::optim::{AdamW, AdamWConfig, global_norm};
use enma::{Init, ParamStore, Tape, Tensor};

use crate::common::{gpu, rand_vec};

#[test]
fn global_norm_matches_the_cpu() {
    let g = gpu();
    for n in [1usize, 300, 5000, 70_001] {
        let data = rand_vec(n, n as u64, -2.0, 2.0);
        let t = Tensor::from_slice(&g, &data, &[n]).unwrap();
        let got = global_norm(&t, n).unwrap().to_vec().unwrap()[0] as f64;
        let want = data.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        assert!((got - want).abs() <= 1e-5 * want, "n={n}: {got} vs {want}");
    }
}

/// CPU AdamW on f64, one parameter tensor.
struct CpuAdam {
    p: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
}

#[test]
fn adamw_matches_a_cpu_reference_with_decay_and_clipping() {
    let g = gpu();
    let mut store = ParamStore::new(&g, 7);
    let w = store.add("w", &[5, 3], Init::Normal { std: 0.5 }, true).unwrap();
    let b = store.add("b", &[3], Init::Const(0.25), false).unwrap();
    let unused = store.add("unused", &[2], Init::Const(1.0), true).unwrap();
    let cfg = AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1, clip_norm: Some(0.5) };
    let mut opt = AdamW::new(&store, cfg).unwrap();
    let x = rand_vec(4 * 5, 3, -1.0, 1.0);
    let mut cpu: Vec<CpuAdam> = [&w, &b]
        .iter()
        .map(|p| {
            let v: Vec<f64> = store.tensor(p).unwrap().to_vec().unwrap().iter().map(|&v| v as f64).collect();
            CpuAdam { m: vec![0.0; v.len()], v: vec![0.0; v.len()], p: v }
        })
        .collect();
    for step in 1..=4 {
        let tape = Tape::new(&g);
        let xv = tape.constant(Tensor::from_slice(&g, &x, &[4, 5]).unwrap());
        let (wv, bv) = (tape.param(&store, &w).unwrap(), tape.param(&store, &b).unwrap());
        // loss = Σ (x·w + b)²
        let loss = xv.matmul(&wv, Some(&bv), false, false).unwrap().square().unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let gw: Vec<f64> = grads.param(&w).unwrap().to_vec().unwrap().iter().map(|&v| v as f64).collect();
        let gb: Vec<f64> = grads.param(&b).unwrap().to_vec().unwrap().iter().map(|&v| v as f64).collect();
        assert!(grads.param(&unused).is_none());
        let lr = 0.01 * step as f32;
        opt.step(&store, &grads, lr).unwrap();
        // CPU reference
        let norm = gw.iter().chain(&gb).map(|v| v * v).sum::<f64>().sqrt();
        let scale = (0.5 / (norm + 1e-6)).min(1.0);
        let t = step;
        for (state, (grad, decay)) in cpu.iter_mut().zip([(&gw, true), (&gb, false)]) {
            for (i, gr) in grad.iter().enumerate() {
                let gi = gr * scale;
                state.m[i] = 0.9 * state.m[i] + 0.1 * gi;
                state.v[i] = 0.95 * state.v[i] + 0.05 * gi * gi;
                let upd =
                    (state.m[i] / (1.0 - 0.9f64.powi(t))) / ((state.v[i] / (1.0 - 0.95f64.powi(t))).sqrt() + 1e-8);
                let wd = if decay { 0.1 } else { 0.0 };
                state.p[i] -= lr as f64 * (upd + wd * state.p[i]);
            }
        }
        let got_norm = opt.last_grad_norm().unwrap().unwrap() as f64;
        assert!((got_norm - norm).abs() <= 1e-4 * norm, "step {step}: norm {got_norm} vs {norm}");
        for (p, state) in [&w, &b].iter().zip(&cpu) {
            let got = store.tensor(p).unwrap().to_vec().unwrap();
            for (i, (&gv, &wv)) in got.iter().zip(&state.p).enumerate() {
                assert!((gv as f64 - wv).abs() < 2e-5, "step {step}, {} [{i}]: {gv} vs {wv}", store.name(p).unwrap());
            }
        }
        // the unused parameter only decays (zero gradient, Adam update 0)
        let u = store.tensor(&unused).unwrap().to_vec().unwrap();
        assert!(u[0] < 1.0 && u[0] > 0.99, "{u:?}");
    }
}

#[test]
fn the_store_names_grows_and_aligns() {
    let g = gpu();
    let mut store = ParamStore::new(&g, 1);
    let a = store.add("a", &[3, 3], Init::Values((0..9).map(|v| v as f32).collect()), true).unwrap();
    assert!(store.add("a", &[1], Init::Zeros, false).is_err(), "duplicate names are refused");
    assert!(store.add("bad", &[2], Init::Values(vec![1.0]), false).is_err(), "wrong value count");
    // grow well past the first capacity: earlier values survive the move
    let big = store.add("big", &[100, 100], Init::Uniform { bound: 0.1 }, true).unwrap();
    assert_eq!(store.tensor(&a).unwrap().to_vec().unwrap(), (0..9).map(|v| v as f32).collect::<Vec<_>>());
    let bv = store.tensor(&big).unwrap().to_vec().unwrap();
    assert!(bv.iter().all(|v| v.abs() <= 0.1) && bv.iter().any(|v| v.abs() > 0.05));
    assert_eq!(store.get("big"), Some(big.clone()));
    assert_eq!(store.num_values(), 9 + 10_000);
    // same seed, same name → same values; another seed → others
    let mut s2 = ParamStore::new(&g, 1);
    let big2 = s2.add("big", &[100, 100], Init::Uniform { bound: 0.1 }, true).unwrap();
    assert_eq!(s2.tensor(&big2).unwrap().to_vec().unwrap(), bv);
    let mut s3 = ParamStore::new(&g, 2);
    let big3 = s3.add("big", &[100, 100], Init::Uniform { bound: 0.1 }, true).unwrap();
    assert_ne!(s3.tensor(&big3).unwrap().to_vec().unwrap(), bv);
    // a parameter of another store is refused
    assert!(store.tensor(&big3).is_err());
}

#[test]
fn the_optimiser_refuses_a_changed_store() {
    let g = gpu();
    let mut store = ParamStore::new(&g, 1);
    let a = store.add("a", &[4], Init::Const(1.0), true).unwrap();
    let mut opt = AdamW::new(&store, AdamWConfig::default()).unwrap();
    store.add("late", &[4], Init::Zeros, true).unwrap();
    let tape = Tape::new(&g);
    let loss = tape.param(&store, &a).unwrap().sum_all().unwrap();
    let e = opt.step(&store, &loss.backward().unwrap(), 0.1).unwrap_err();
    assert!(e.to_string().contains("added after"), "{e}");
}

#[test]
fn parameters_export_and_load_by_name() {
    let g = gpu();
    let mut a = ParamStore::new(&g, 1);
    a.add("x.weight", &[3, 2], Init::Normal { std: 1.0 }, true).unwrap();
    a.add("x.bias", &[2], Init::Const(0.5), false).unwrap();
    let saved = a.export().unwrap();
    assert_eq!(
        saved.iter().map(|(n, s, _)| (n.as_str(), s.clone())).collect::<Vec<_>>(),
        [("x.weight", vec![3, 2]), ("x.bias", vec![2])]
    );
    let mut b = ParamStore::new(&g, 99);
    b.add("x.weight", &[3, 2], Init::Zeros, true).unwrap();
    b.add("x.bias", &[2], Init::Zeros, false).unwrap();
    for (name, shape, values) in &saved {
        b.set(&b.get(name).unwrap(), shape, values).unwrap();
    }
    assert_eq!(b.export().unwrap(), saved);
    let e = b.set(&b.get("x.bias").unwrap(), &[3], &[0.0; 3]).unwrap_err().to_string();
    assert!(e.contains("x.bias") && e.contains("[3]") && e.contains("[2]"), "{e}");
}
