//! The fused flow sampler against an f64 CPU reference of the adaLN head's midpoint ODE, and
//! against the composed-ops sampler on the same noise.

use enma::model::flow::{FlowHead, FlowHeadConfig};
use enma::{ParamStore, Tensor};

use crate::common::{gpu, rand_vec};

/// Gives every parameter random values (the zero-initialised modulation and output layers
/// would otherwise make the velocity trivial).
fn randomise(store: &ParamStore, seed: u64) {
    for (i, p) in store.params().into_iter().enumerate() {
        let shape = store.shape(&p).unwrap().to_vec();
        let n: usize = shape.iter().product();
        let scale = 1.0 / (*shape.first().unwrap() as f32).sqrt();
        store.set(&p, &shape, &rand_vec(n, seed + i as u64, -scale, scale)).unwrap();
    }
}

/// The head's weights by name, as f64.
struct Cpu {
    w: std::collections::HashMap<String, (Vec<usize>, Vec<f64>)>,
}

impl Cpu {
    fn linear(&self, name: &str, x: &[f64]) -> Vec<f64> {
        let (shape, w) = &self.w[&format!("{name}.weight")];
        let (_, b) = &self.w[&format!("{name}.bias")];
        let (din, dout) = (shape[0], shape[1]);
        (0..dout).map(|j| b[j] + (0..din).map(|k| x[k] * w[k * dout + j]).sum::<f64>()).collect()
    }

    fn modulated(&self, name: &str, x: &[f64], y: &[f64]) -> Vec<f64> {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let (shift, scale) = (self.linear(&format!("{name}.shift"), y), self.linear(&format!("{name}.scale"), y));
        x.iter().enumerate().map(|(j, v)| (v - mean) / (var + 1e-6).sqrt() * (1.0 + scale[j]) + shift[j]).collect()
    }

    fn velocity(&self, z: &[f64], r: f64, cond: &[f64], depth: usize) -> Vec<f64> {
        let silu = |v: f64| v / (1.0 + (-v).exp());
        // sinusoidal encoding of 1000·r, 64 channels: (sin, cos) pairs at ω_j = 10000^(−2j/64)
        let temb: Vec<f64> = (0..64)
            .map(|c| {
                let a = 1000.0 * r * 10000f64.powf(-2.0 * (c / 2) as f64 / 64.0);
                if c % 2 == 0 { a.sin() } else { a.cos() }
            })
            .collect();
        let temb = self.linear("h.time2", &self.linear("h.time1", &temb).into_iter().map(silu).collect::<Vec<_>>());
        let y: Vec<f64> = self.linear("h.cond", cond).iter().zip(&temb).map(|(a, b)| silu(a + b)).collect();
        let mut x = self.linear("h.input", z);
        for b in 0..depth {
            let n = format!("h.block{b}");
            let h = self.modulated(&format!("{n}.ada"), &x, &y);
            let u: Vec<f64> = self.linear(&format!("{n}.fc1"), &h).into_iter().map(silu).collect();
            let f = self.linear(&format!("{n}.fc2"), &u);
            let g = self.linear(&format!("{n}.ada.gate"), &y);
            for j in 0..x.len() {
                x[j] += g[j] * f[j];
            }
        }
        self.linear("h.out", &self.modulated("h.final_ada", &x, &y))
    }
}

#[test]
fn the_fused_sampler_matches_the_cpu_ode_and_the_composed_ops() {
    let g = gpu();
    for (dim, cond_w, width, depth, n, steps) in [(4, 24, 32, 2, 13, 3), (16, 64, 128, 1, 9, 2), (8, 16, 96, 3, 5, 1)] {
        let mut store = ParamStore::new(&g, 0);
        let head = FlowHead::new(&mut store, "h", FlowHeadConfig { dim, cond: cond_w, width, depth }).unwrap();
        randomise(&store, 7);
        let cond_v = rand_vec(n * cond_w, 3, -1.0, 1.0);
        let cond = Tensor::from_slice(&g, &cond_v, &[n, cond_w]).unwrap();
        let (temperature, seed) = (0.9, 11);
        let fused = head.sample_fused(&g, &store, &cond, steps, temperature, seed).unwrap().to_vec().unwrap();
        let composed = head.sample_composed(&g, &store, &cond, steps, temperature, seed).unwrap().to_vec().unwrap();
        // the CPU ODE from the same noise
        let noise = enma::ops::random::normal(&g, &[n, dim], seed, 0x5A3).unwrap().to_vec().unwrap();
        let cpu = Cpu {
            w: store
                .export()
                .unwrap()
                .into_iter()
                .map(|(name, shape, v)| (name, (shape, v.into_iter().map(f64::from).collect())))
                .collect(),
        };
        let h = 1.0 / steps as f64;
        let mut worst: f64 = 0.0;
        let mut worst_composed: f64 = 0.0;
        let fused_vs_composed = fused.iter().zip(&composed).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        for t in 0..n {
            let c: Vec<f64> = cond_v[t * cond_w..(t + 1) * cond_w].iter().map(|&v| v as f64).collect();
            let mut z: Vec<f64> =
                noise[t * dim..(t + 1) * dim].iter().map(|&v| temperature as f64 * v as f64).collect();
            for s in 0..steps {
                let r = s as f64 * h;
                let v1 = cpu.velocity(&z, r, &c, depth);
                let mid: Vec<f64> = z.iter().zip(&v1).map(|(a, b)| a + 0.5 * h * b).collect();
                let v2 = cpu.velocity(&mid, r + 0.5 * h, &c, depth);
                for (a, b) in z.iter_mut().zip(&v2) {
                    *a += h * b;
                }
            }
            let scale = z.iter().map(|v| v.abs()).fold(1.0, f64::max);
            for k in 0..dim {
                worst = worst.max((fused[t * dim + k] as f64 - z[k]).abs() / scale);
                worst_composed = worst_composed.max((composed[t * dim + k] as f64 - z[k]).abs() / scale);
            }
        }
        // tolerance relative to the largest value: f32 arithmetic through 2·steps·(depth + 2)
        // layers of width ≤ 128 (measured on lavapipe: ≤ 6e-7)
        assert!(worst < 1e-5, "dim {dim} width {width}: fused vs CPU {worst:.2e}");
        assert!(worst_composed < 1e-5, "dim {dim} width {width}: composed vs CPU {worst_composed:.2e}");
        assert!(fused_vs_composed < 1e-5, "dim {dim} width {width}: fused vs composed {fused_vs_composed:.2e}");
        eprintln!("flow_sample dim {dim} width {width}: vs CPU {worst:.2e}, vs composed {fused_vs_composed:.2e}");
        // the result moved away from the scaled noise: the head did something
        let moved = fused.iter().zip(&noise).map(|(a, b)| (a - temperature * b).abs()).fold(0f32, f32::max);
        assert!(moved > 1e-2, "the sampler returned its noise ({moved:.2e})");
    }
}

#[test]
fn the_fused_sampler_rejects_bad_shapes_and_wide_heads() {
    let g = gpu();
    let mut store = ParamStore::new(&g, 0);
    let head = FlowHead::new(&mut store, "h", FlowHeadConfig { dim: 4, cond: 8, width: 16, depth: 1 }).unwrap();
    let cond = Tensor::from_slice(&g, &[0.0; 24], &[3, 8]).unwrap();
    assert!(head.sample_fused(&g, &store, &cond, 0, 1.0, 0).is_err());
    let bad = Tensor::from_slice(&g, &[0.0; 21], &[3, 7]).unwrap();
    assert!(head.sample_fused(&g, &store, &bad, 2, 1.0, 0).is_err());
    let mut weights = head.weights(&store).unwrap();
    assert_eq!(weights.offsets.len(), 18);
    assert_eq!(weights.tile(), Some(8));
    weights.width = 1024;
    assert_eq!(weights.tile(), None);
    weights.width = 18; // not a multiple of 4
    assert_eq!(weights.tile(), None);
    // a head too wide for the kernel still samples, through the composed path
    let mut store = ParamStore::new(&g, 0);
    let wide = FlowHead::new(&mut store, "h", FlowHeadConfig { dim: 2, cond: 4, width: 800, depth: 1 }).unwrap();
    let cond = Tensor::from_slice(&g, &[0.5; 8], &[2, 4]).unwrap();
    assert_eq!(wide.sample(&g, &store, &cond, 1, 1.0, 0).unwrap().shape(), [2, 2]);
}
