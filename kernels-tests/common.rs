//! Shared helpers of the kernel tests.

use enma::ops::UnaryOp;
use enma::{Gpu, GpuOptions};

/// A fresh `Gpu` on the best adapter (each test owns its own).
pub fn gpu() -> Gpu {
    match Gpu::new(GpuOptions::default()) {
        Ok(g) => g,
        Err(e) => panic!("the kernel tests need an adapter (install mesa-vulkan-drivers): {e}"),
    }
}

/// A fresh `Gpu` on the best adapter with the autotuner off (the built-in kernel rules), for
/// tests that train a model to a fixed threshold: a tuned choice of kernels changes the
/// rounding and so the whole path of a long fit (the interpolating VAE's 1,500 steps at lr 1e-2
/// ended at 3.4–3.7e-2 with tuned kernels, 2.6e-2 with the rules), and the choice itself depends
/// on timings. Their thresholds are set for these kernels, and their numbers stay the same from
/// run to run.
pub fn gpu_rules() -> Gpu {
    let tune = enma::TuneSettings { enabled: false, cache_dir: None };
    match Gpu::new(GpuOptions { tune: Some(tune), ..Default::default() }) {
        Ok(g) => g,
        Err(e) => panic!("the model tests need an adapter (install mesa-vulkan-drivers): {e}"),
    }
}

/// A fresh `Gpu` whose autotuner takes `candidate` for every key in `keys` (and measures
/// nothing): tests force each kernel variant of an op through it.
pub fn gpu_pinned(keys: &[String], candidate: &str) -> Gpu {
    let g = gpu_rules();
    g.pin_tune_choices(&keys.iter().map(|k| (k.clone(), candidate.to_string())).collect());
    g
}

/// Deterministic uniform values in [lo, hi) (SplitMix64).
pub fn rand_vec(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * u
        })
        .collect()
}

/// Asserts |got - want| <= atol + rtol * |want| element-wise, naming the first bad index.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() { g.is_nan() } else { (g - w).abs() <= atol + rtol * w.abs() };
        assert!(ok, "{what}: element {i}: got {g}, want {w} (atol {atol}, rtol {rtol})");
    }
}

/// The absolute error WGSL allows `sin` and `cos` of f32 on [−π, π] (2⁻¹¹; the spec bounds
/// nothing outside, every adapter here range-reduces to that accuracy). Lavapipe is far closer,
/// SwiftShader uses about half of it: tests of trigonometric results hold every adapter to this.
pub const WGSL_TRIG_ABS: f32 = 1.0 / 2048.0;

/// Checks an op's forward against `cpu_f` and its backward against central finite differences of
/// `cpu_f` in f64. The scalar loss is Σ w·f(x) with fixed random weights w, so every output
/// element's gradient path is exercised. `gpu_f` builds the op on leaf variables.
#[track_caller]
pub fn check_grads(
    name: &str,
    g: &enma::Gpu,
    inputs: &[(Vec<f32>, Vec<usize>)],
    gpu_f: impl Fn(&[enma::Var]) -> enma::Result<enma::Var>,
    cpu_f: impl Fn(&[Vec<f64>]) -> Vec<f64>,
    tol: f64,
) {
    check_grads_atol(name, g, inputs, gpu_f, cpu_f, tol, 0.0)
}

/// [`check_grads`], with an absolute forward tolerance of at least `fwd_atol` (the WGSL
/// precision of a transcendental, e.g. [`WGSL_TRIG_ABS`]).
#[track_caller]
pub fn check_grads_atol(
    name: &str,
    g: &enma::Gpu,
    inputs: &[(Vec<f32>, Vec<usize>)],
    gpu_f: impl Fn(&[enma::Var]) -> enma::Result<enma::Var>,
    cpu_f: impl Fn(&[Vec<f64>]) -> Vec<f64>,
    tol: f64,
    fwd_atol: f64,
) {
    use enma::{Tape, Tensor};
    let tape = Tape::new(g);
    let vars: Vec<enma::Var> =
        inputs.iter().map(|(d, s)| tape.leaf(Tensor::from_slice(g, d, s).expect("upload"))).collect();
    let out = gpu_f(&vars).unwrap_or_else(|e| panic!("{name}: forward failed: {e}"));
    let x64: Vec<Vec<f64>> = inputs.iter().map(|(d, _)| d.iter().map(|&v| v as f64).collect()).collect();
    let want = cpu_f(&x64);
    let got = out.to_vec().unwrap();
    assert_eq!(got.len(), want.len(), "{name}: output sizes differ");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (&g32, &w64)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g32 as f64 - w64).abs() <= (1e-5 * scale + 1e-4 * w64.abs()).max(fwd_atol),
            "{name}: forward element {i}: got {g32}, want {w64}"
        );
    }
    let w = rand_vec(got.len(), 4242, -1.0, 1.0);
    let wv = tape.constant(Tensor::from_slice(g, &w, out.shape()).unwrap());
    let loss = out.mul(&wv).and_then(|v| v.sum_all()).unwrap();
    let grads = loss.backward().unwrap_or_else(|e| panic!("{name}: backward failed: {e}"));
    let loss_of = |x: &[Vec<f64>]| -> f64 { cpu_f(x).iter().zip(&w).map(|(a, b)| a * *b as f64).sum() };
    for (k, input) in x64.iter().enumerate() {
        let analytic = match grads.of(&vars[k]) {
            Some(t) => t.to_vec().unwrap(),
            None => vec![0.0; input.len()],
        };
        assert_eq!(analytic.len(), input.len(), "{name}: gradient {k} has the wrong size");
        let mut x = x64.clone();
        let mut fd = Vec::with_capacity(input.len());
        for i in 0..input.len() {
            let h = 1e-6 * input[i].abs().max(1.0);
            let orig = x[k][i];
            x[k][i] = orig + h;
            let lp = loss_of(&x);
            x[k][i] = orig - h;
            let lm = loss_of(&x);
            x[k][i] = orig;
            fd.push((lp - lm) / (2.0 * h));
        }
        let gscale = fd.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for i in 0..input.len() {
            let (a, f) = (analytic[i] as f64, fd[i]);
            assert!(
                (a - f).abs() <= tol * gscale + tol * f.abs(),
                "{name}: d/d input{k}[{i}]: backward {a}, finite difference {f} (tolerance {tol} relative to {gscale})"
            );
        }
    }
}

/// f64 reference of every unary op.
pub fn unary_ref(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => 1.0 / x.sqrt(),
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Square => x * x,
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::Silu => x / (1.0 + (-x).exp()),
        UnaryOp::Gelu => 0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh()),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Affine { alpha, beta } => alpha as f64 * x + beta as f64,
        UnaryOp::LeakyRelu { slope } => {
            if x >= 0.0 {
                x
            } else {
                slope as f64 * x
            }
        }
        UnaryOp::Elu { alpha } => {
            if x > 0.0 {
                x
            } else {
                alpha as f64 * (x.exp() - 1.0)
            }
        }
        UnaryOp::Clamp { min, max } => x.clamp(min as f64, max as f64),
    }
}

/// Flat index into a tensor of `shape` broadcast to `out`, at output coordinate `coord`.
pub fn broadcast_index(shape: &[usize], out: &[usize], coord: &[usize]) -> usize {
    let off = out.len() - shape.len();
    shape.iter().enumerate().fold(0, |i, (d, &s)| i * s + if s == 1 { 0 } else { coord[d + off] })
}

/// Every unary op, with parameters.
pub fn all_unary_ops() -> [UnaryOp; 19] {
    [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Recip,
        UnaryOp::Square,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Relu,
        UnaryOp::Silu,
        UnaryOp::Gelu,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Affine { alpha: 1.5, beta: -0.5 },
        UnaryOp::LeakyRelu { slope: 0.1 },
        UnaryOp::Elu { alpha: 1.0 },
        UnaryOp::Clamp { min: -0.5, max: 0.5 },
    ]
}

/// f64 reference of every binary op.
pub fn binary_ref(op: enma::ops::BinaryOp, a: f64, b: f64) -> f64 {
    use enma::ops::BinaryOp;
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Max => a.max(b),
        BinaryOp::Min => a.min(b),
        BinaryOp::Pow => a.powf(b),
    }
}

/// Multi-index of flat position `lin` in `shape`.
pub fn coords_of(mut lin: usize, shape: &[usize]) -> Vec<usize> {
    let mut c = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        c[d] = lin % shape[d];
        lin /= shape[d];
    }
    c
}
