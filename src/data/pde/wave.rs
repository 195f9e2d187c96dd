//! Damped wave u_tt = c² Δu − k u_t on [0, 1]² periodic, T = 0.005, 64 × 64 × 30 frames:
//! exact in time, mode by mode, in the Fourier basis of the grid (no time step, no CFL).

use std::f64::consts::PI;

use super::fft::{C64, Fft2, wavenumber};
use super::{Pde, Spec, Split, check_finite, unif, unif_int};
use crate::error::Result;
use crate::ops::random::Philox;

pub const N: usize = 64;
pub const FRAMES: usize = 30;
pub const T_END: f64 = 0.005;

pub struct Wave;

/// The exact evolution of the periodic grid field `u0` (zero initial velocity) at `times`.
pub fn evolve(u0: &[f64], n: usize, c: f64, k: f64, times: &[f64]) -> Vec<Vec<f64>> {
    let mut fft = Fft2::new(n);
    let nh = n / 2 + 1;
    let mut a0 = vec![C64::default(); n * nh];
    fft.forward(u0, &mut a0);
    let mut out = Vec::with_capacity(times.len());
    let mut spec = vec![C64::default(); n * nh];
    for &t in times {
        for r in 0..n {
            for q in 0..nh {
                let (kx, ky) = (2.0 * PI * q as f64, 2.0 * PI * wavenumber(r, n));
                let lambda = c * c * (kx * kx + ky * ky);
                let idx = r * nh + q;
                let factor = if lambda == 0.0 {
                    1.0
                } else {
                    let disc = lambda - k * k / 4.0;
                    let damp = (-k * t / 2.0).exp();
                    if disc > 0.0 {
                        let w = disc.sqrt();
                        damp * ((w * t).cos() + k / (2.0 * w) * (w * t).sin())
                    } else {
                        // over-damped modes (never reached for c ≥ 100 on this grid)
                        let s = (-disc).sqrt();
                        damp * ((s * t).cosh() + k / (2.0 * s) * (s * t).sinh())
                    }
                };
                spec[idx] = a0[idx] * factor;
            }
        }
        let mut u = vec![0.0; n * n];
        fft.inverse(&mut spec, &mut u);
        out.push(u);
    }
    out
}

impl Pde for Wave {
    fn spec(&self) -> Spec {
        Spec {
            channels: 1,
            spatial: vec![N, N],
            frames: FRAMES,
            params: &["c", "k"],
            t: (0..FRAMES).map(|i| T_END * i as f64 / (FRAMES - 1) as f64).collect(),
            x: (0..N).map(|j| j as f64 / N as f64).collect(),
            domain: vec![1.0, 1.0],
            solver: "exact per Fourier mode (periodic), zero initial velocity".into(),
            dt_internal: 0.0,
        }
    }

    fn sample_params(&self, split: Split, rng: &mut Philox) -> Vec<f64> {
        match split {
            Split::Train | Split::InD => vec![unif(rng, 100.0, 500.0), unif(rng, 0.0, 50.0)],
            Split::OutD => vec![unif(rng, 500.0, 550.0), unif(rng, 50.0, 60.0)],
        }
    }

    fn simulate(&self, params: &[f64], rng: &mut Philox) -> Result<Vec<f32>> {
        // 2–4 Gaussians of amplitude 1, centres U[0,1]², σ U[0.025, 0.1], periodic distance
        let count = unif_int(rng, 2, 4);
        let bumps: Vec<(f64, f64, f64)> =
            (0..count).map(|_| (unif(rng, 0.0, 1.0), unif(rng, 0.0, 1.0), unif(rng, 0.025, 0.1))).collect();
        let per = |d: f64| d - d.round();
        let u0: Vec<f64> = (0..N * N)
            .map(|i| {
                let (y, x) = ((i / N) as f64 / N as f64, (i % N) as f64 / N as f64);
                bumps
                    .iter()
                    .map(|&(cx, cy, s)| (-(per(x - cx).powi(2) + per(y - cy).powi(2)) / (2.0 * s * s)).exp())
                    .sum()
            })
            .collect();
        let frames = evolve(&u0, N, params[0], params[1], &self.spec().t);
        let out: Vec<f32> = frames.into_iter().flatten().map(|v| v as f32).collect();
        check_finite("wave solver", &out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_mode_follows_the_analytic_damped_oscillation() {
        let n = 16;
        let (c, k) = (300.0, 40.0);
        // u0 = cos(2π·2x): λ = c²(4π)²
        let u0: Vec<f64> = (0..n * n).map(|i| (2.0 * PI * 2.0 * (i % n) as f64 / n as f64).cos()).collect();
        let times: Vec<f64> = (0..FRAMES).map(|i| T_END * i as f64 / (FRAMES - 1) as f64).collect();
        let frames = evolve(&u0, n, c, k, &times);
        let w = (c * c * (4.0 * PI).powi(2) - k * k / 4.0).sqrt();
        for (f, &t) in frames.iter().zip(&times) {
            let amp = (-k * t / 2.0).exp() * ((w * t).cos() + k / (2.0 * w) * (w * t).sin());
            for i in 0..n * n {
                let want = amp * u0[i];
                assert!((f[i] - want).abs() < 1e-9, "t={t}: {} vs {want}", f[i]);
            }
        }
        // the envelope decays as exp(−kt/2): compare the energy-like peak after many periods
        let env = |t: f64| (-k * t / 2.0).exp();
        assert!((env(T_END) - (-0.1f64).exp()).abs() < 1e-12);
    }

    #[test]
    fn the_mean_is_constant_and_trajectories_are_finite() {
        let mut r = Philox::new(1, 1);
        let out = Wave.simulate(&[450.0, 10.0], &mut r).unwrap();
        let m = N * N;
        let mean = |f: usize| out[f * m..(f + 1) * m].iter().map(|&v| v as f64).sum::<f64>() / m as f64;
        for f in 1..FRAMES {
            assert!((mean(f) - mean(0)).abs() < 1e-5);
        }
    }
}
