//! Gray–Scott u_t = D_u Δu − uv² + F(1 − u), v_t = D_v Δv + uv² − (F + k) v on a 32 × 32
//! periodic grid with Δs = 2 (9-point Laplacian, as the authors' earlier generator), classic
//! RK4 with dt = 0.25, 30 frames every 10 time units.

use super::{Pde, Spec, Split, check_finite, unif};
use crate::error::Result;
use crate::ops::random::Philox;

pub const N: usize = 32;
pub const DX: f64 = 2.0;
pub const FRAMES: usize = 30;
pub const INTERVAL: f64 = 10.0;
pub const DT: f64 = 0.25;

pub struct GrayScott {
    /// (D_u, D_v); the default (0.204, 0.102) forms patterns, the paper prints them swapped.
    pub diffusion: (f64, f64),
}

impl Default for GrayScott {
    fn default() -> Self {
        GrayScott { diffusion: (0.204, 0.102) }
    }
}

fn laplacian(f: &[f64], out: &mut [f64]) {
    let w = |r: usize, c: usize| f[(r % N) * N + (c % N)];
    for r in 0..N {
        for c in 0..N {
            let (rp, rm, cp, cm) = (r + 1, r + N - 1, c + 1, c + N - 1);
            let edges = w(rp, c) + w(rm, c) + w(r, cp) + w(r, cm);
            let corners = w(rp, cp) + w(rp, cm) + w(rm, cp) + w(rm, cm);
            out[r * N + c] = (0.5 * edges + 0.25 * corners - 3.0 * f[r * N + c]) / (DX * DX);
        }
    }
}

/// Right-hand side for the state [u; v].
fn rhs(s: &[f64], d: (f64, f64), f: f64, k: f64, out: &mut [f64], lap: &mut [f64]) {
    let m = N * N;
    let (u, v) = s.split_at(m);
    laplacian(u, lap);
    for i in 0..m {
        let uvv = u[i] * v[i] * v[i];
        out[i] = d.0 * lap[i] - uvv + f * (1.0 - u[i]);
    }
    laplacian(v, lap);
    for i in 0..m {
        let uvv = u[i] * v[i] * v[i];
        out[m + i] = d.1 * lap[i] + uvv - (f + k) * v[i];
    }
}

/// Frames [u; v] every `INTERVAL` from the state `s0`.
pub fn run(s0: &[f64], d: (f64, f64), f: f64, k: f64) -> Vec<Vec<f64>> {
    let len = s0.len();
    let mut s = s0.to_vec();
    let (mut k1, mut k2, mut k3, mut k4, mut tmp, mut lap) =
        (vec![0.0; len], vec![0.0; len], vec![0.0; len], vec![0.0; len], vec![0.0; len], vec![0.0; len / 2]);
    let steps = (INTERVAL / DT).round() as usize;
    let mut frames = vec![s.clone()];
    for _ in 1..FRAMES {
        for _ in 0..steps {
            rhs(&s, d, f, k, &mut k1, &mut lap);
            for i in 0..len {
                tmp[i] = s[i] + 0.5 * DT * k1[i];
            }
            rhs(&tmp, d, f, k, &mut k2, &mut lap);
            for i in 0..len {
                tmp[i] = s[i] + 0.5 * DT * k2[i];
            }
            rhs(&tmp, d, f, k, &mut k3, &mut lap);
            for i in 0..len {
                tmp[i] = s[i] + DT * k3[i];
            }
            rhs(&tmp, d, f, k, &mut k4, &mut lap);
            for i in 0..len {
                s[i] += DT / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
            }
        }
        frames.push(s.clone());
    }
    frames
}

impl Pde for GrayScott {
    fn spec(&self) -> Spec {
        Spec {
            channels: 2,
            spatial: vec![N, N],
            frames: FRAMES,
            params: &["f", "k"],
            t: (0..FRAMES).map(|i| INTERVAL * i as f64).collect(),
            x: (0..N).map(|j| DX * j as f64).collect(),
            domain: vec![DX * N as f64, DX * N as f64],
            solver: format!("9-point Laplacian, RK4 dt={DT}, D=({}, {})", self.diffusion.0, self.diffusion.1),
            dt_internal: DT,
        }
    }

    fn sample_params(&self, split: Split, rng: &mut Philox) -> Vec<f64> {
        match split {
            Split::Train | Split::InD => vec![unif(rng, 0.023, 0.045), unif(rng, 0.059, 0.064)],
            Split::OutD => vec![unif(rng, 0.045, 0.0467), unif(rng, 0.057, 0.059)],
        }
    }

    fn simulate(&self, params: &[f64], rng: &mut Philox) -> Result<Vec<f32>> {
        let m = N * N;
        let mut s0 = vec![0.95; m];
        s0.extend(std::iter::repeat_n(0.05, m));
        // three squares of side 3 with u = 0, v = 1
        for _ in 0..3 {
            let (r0, c0) = ((rng.next_u32() as usize) % (N - 3), (rng.next_u32() as usize) % (N - 3));
            for r in r0..r0 + 3 {
                for c in c0..c0 + 3 {
                    s0[r * N + c] = 0.0;
                    s0[m + r * N + c] = 1.0;
                }
            }
        }
        let frames = run(&s0, self.diffusion, params[0], params[1]);
        let out: Vec<f32> = frames.into_iter().flatten().map(|v| v as f32).collect();
        check_finite("gray-scott solver", &out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concentrations_stay_in_the_unit_interval_and_patterns_form() {
        let pde = GrayScott::default();
        let mut p = Philox::new(5, 0);
        for split in [Split::Train, Split::OutD] {
            for e in 0..3 {
                let params = pde.sample_params(split, &mut p);
                let mut r = Philox::new(5, 10 + e);
                let out = pde.simulate(&params, &mut r).unwrap();
                let (lo, hi) = out.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                assert!(lo >= -1e-6 && hi <= 1.0 + 1e-6, "{params:?}: range [{lo}, {hi}]");
                // the last frame of v is not uniform
                let last = &out[(FRAMES - 1) * 2 * N * N + N * N..];
                let (a, b) = last.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                assert!(b - a > 1e-3, "{params:?}: v is flat");
            }
        }
    }
}
