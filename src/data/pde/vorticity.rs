//! Decaying 2D turbulence ω_t + u·∇ω = ν Δω, u = ∇^⊥ψ, Δψ = −ω on the periodic [0, 2π]² box:
//! Fourier pseudo-spectral at `n`² (128 tiny, 256 small, 512 paper), 2/3 dealiasing, integrating-
//! factor RK4 with an adaptive step (CFL 0.5) that lands on the output times, an exponential
//! spectral filter exp(−36 (k/k_max)³⁶) so the under-resolved Out-D viscosities stay stable,
//! block-averaged to 64² for storage. 30 frames every 0.2 time units.

use std::f64::consts::PI;

use super::fft::{C64, Fft2, wavenumber};
use super::{Pde, Spec, Split, block_average, check_finite, unif};
use crate::error::{Error, Result};
use crate::ops::random::Philox;

pub const OUT: usize = 64;
pub const FRAMES: usize = 30;
pub const INTERVAL: f64 = 0.2;
pub const CFL: f64 = 0.5;
const K0: f64 = 10.0;

pub struct Vorticity {
    /// Simulation grid side (a multiple of 64).
    pub n: usize,
}

/// The spectral solver on an n × n grid.
pub struct VortSolver {
    pub n: usize,
    nh: usize,
    nu: f64,
    fft: Fft2,
    kx: Vec<f64>,
    ky: Vec<f64>,
    k2: Vec<f64>,
    keep: Vec<f64>,
    /// Largest step taken.
    pub max_dt: f64,
    pub steps: usize,
}

impl VortSolver {
    pub fn new(n: usize, nu: f64) -> VortSolver {
        let nh = n / 2 + 1;
        let (mut kx, mut ky, mut k2, mut keep) =
            (vec![0.0; n * nh], vec![0.0; n * nh], vec![0.0; n * nh], vec![0.0; n * nh]);
        let kmax = (n / 2) as f64;
        let filter = |k: f64| (-36.0 * (k.abs() / kmax).powi(36)).exp();
        for r in 0..n {
            for q in 0..nh {
                let i = r * nh + q;
                kx[i] = q as f64;
                ky[i] = wavenumber(r, n);
                k2[i] = kx[i] * kx[i] + ky[i] * ky[i];
                let dealiased = 3.0 * kx[i].abs() < n as f64 && 3.0 * ky[i].abs() < n as f64;
                keep[i] = if dealiased { filter(kx[i]) * filter(ky[i]) } else { 0.0 };
            }
        }
        VortSolver { n, nh, nu, fft: Fft2::new(n), kx, ky, k2, keep, max_dt: 0.0, steps: 0 }
    }

    pub fn to_spectral(&mut self, w: &[f64]) -> Vec<C64> {
        let mut s = vec![C64::default(); self.n * self.nh];
        self.fft.forward(w, &mut s);
        s
    }

    pub fn to_physical(&mut self, s: &[C64]) -> Vec<f64> {
        let mut tmp = s.to_vec();
        let mut out = vec![0.0; self.n * self.n];
        self.fft.inverse(&mut tmp, &mut out);
        out
    }

    /// −u·∇ω (dealiased) and max(|u| + |v|) of the field `w`.
    fn nonlinear(&mut self, w: &[C64], out: &mut [C64]) -> f64 {
        let len = w.len();
        let (mut su, mut sv, mut sx, mut sy) = (
            vec![C64::default(); len],
            vec![C64::default(); len],
            vec![C64::default(); len],
            vec![C64::default(); len],
        );
        let i = C64::new(0.0, 1.0);
        for j in 0..len {
            let psi = if self.k2[j] > 0.0 { w[j] / self.k2[j] } else { C64::default() };
            su[j] = i * self.ky[j] * psi;
            sv[j] = -i * self.kx[j] * psi;
            sx[j] = i * self.kx[j] * w[j];
            sy[j] = i * self.ky[j] * w[j];
        }
        let m = self.n * self.n;
        let (mut u, mut v, mut wx, mut wy) = (vec![0.0; m], vec![0.0; m], vec![0.0; m], vec![0.0; m]);
        self.fft.inverse(&mut su, &mut u);
        self.fft.inverse(&mut sv, &mut v);
        self.fft.inverse(&mut sx, &mut wx);
        self.fft.inverse(&mut sy, &mut wy);
        let mut vmax: f64 = 0.0;
        for j in 0..m {
            vmax = vmax.max(u[j].abs() + v[j].abs());
            wx[j] = -(u[j] * wx[j] + v[j] * wy[j]);
        }
        self.fft.forward(&wx, out);
        for j in 0..len {
            out[j] *= self.keep[j];
        }
        vmax
    }

    /// Advances the spectral field `w` by `duration` with CFL-limited integrating-factor RK4.
    pub fn advance(&mut self, w: &mut [C64], duration: f64) -> Result<()> {
        let len = w.len();
        let dx = 2.0 * PI / self.n as f64;
        let (mut k1, mut k2, mut k3, mut k4, mut tmp) = (
            vec![C64::default(); len],
            vec![C64::default(); len],
            vec![C64::default(); len],
            vec![C64::default(); len],
            vec![C64::default(); len],
        );
        let mut t = 0.0;
        while t < duration * (1.0 - 1e-12) {
            let vmax = self.nonlinear(w, &mut k1);
            if !vmax.is_finite() {
                return Err(Error::invalid("vorticity solver", "the velocity became infinite"));
            }
            let h = (CFL * dx / vmax.max(1e-12)).min(duration - t);
            self.max_dt = self.max_dt.max(h);
            let e2: Vec<f64> = self.k2.iter().map(|k| (-self.nu * k * h / 2.0).exp()).collect();
            for j in 0..len {
                tmp[j] = (w[j] + k1[j] * (h / 2.0)) * e2[j];
            }
            self.nonlinear(&tmp, &mut k2);
            for j in 0..len {
                tmp[j] = w[j] * e2[j] + k2[j] * (h / 2.0);
            }
            self.nonlinear(&tmp, &mut k3);
            for j in 0..len {
                tmp[j] = w[j] * e2[j] * e2[j] + k3[j] * (h * e2[j]);
            }
            self.nonlinear(&tmp, &mut k4);
            for j in 0..len {
                let e = e2[j] * e2[j];
                w[j] =
                    (w[j] * e + (k1[j] * e + (k2[j] + k3[j]) * (2.0 * e2[j]) + k4[j]) * (h / 6.0)) * self.keep_mean(j);
            }
            t += h;
            self.steps += 1;
        }
        Ok(())
    }

    /// The filter (and dealiasing) applied to the state; the mean (k = 0) is left untouched.
    fn keep_mean(&self, j: usize) -> f64 {
        if self.k2[j] == 0.0 { 1.0 } else { self.keep[j] }
    }

    /// Kinetic energy ½⟨|u|²⟩ of a spectral vorticity field (Parseval over the half spectrum).
    pub fn energy(&self, w: &[C64]) -> f64 {
        let m = (self.n * self.n) as f64;
        let mut e = 0.0;
        for j in 0..w.len() {
            if self.k2[j] > 0.0 {
                let weight = if self.kx[j] == 0.0 || 2 * (self.kx[j] as usize) == self.n { 1.0 } else { 2.0 };
                e += weight * w[j].norm_sqr() / self.k2[j];
            }
        }
        0.5 * e / (m * m)
    }

    /// Random-phase field with E(k) ∝ (k/k₀)⁴ exp(−(k/k₀)²), kinetic energy scaled to 0.5.
    pub fn initial(&mut self, rng: &mut Philox) -> Vec<C64> {
        let len = self.n * self.nh;
        let mut w = vec![C64::default(); len];
        for (j, wj) in w.iter_mut().enumerate() {
            let k = self.k2[j].sqrt();
            if k == 0.0 || self.keep[j] == 0.0 {
                continue;
            }
            let e = (k / K0).powi(4) * (-(k / K0).powi(2)).exp();
            let amp = k * (e / (PI * k)).sqrt();
            *wj = C64::from_polar(amp, 2.0 * PI * rng.uniform() as f64);
        }
        // make it the spectrum of a real field, then scale the energy
        let phys = self.to_physical(&w);
        let mut w = self.to_spectral(&phys);
        let s = (0.5 / self.energy(&w).max(1e-300)).sqrt();
        w.iter_mut().for_each(|v| *v *= s);
        w
    }
}

impl Pde for Vorticity {
    fn spec(&self) -> Spec {
        Spec {
            channels: 1,
            spatial: vec![OUT, OUT],
            frames: FRAMES,
            params: &["mu"],
            t: (0..FRAMES).map(|i| INTERVAL * i as f64).collect(),
            x: (0..OUT).map(|j| 2.0 * PI * (j as f64 + 0.5) / OUT as f64).collect(),
            domain: vec![2.0 * PI, 2.0 * PI],
            solver: format!(
                "pseudo-spectral {n}x{n}, 2/3 dealiasing + exp(-36(k/kmax)^36) filter, integrating-factor RK4, CFL {CFL}, block-averaged to {OUT}x{OUT}",
                n = self.n
            ),
            dt_internal: INTERVAL,
        }
    }

    fn sample_params(&self, split: Split, rng: &mut Philox) -> Vec<f64> {
        vec![match split {
            Split::Train | Split::InD => unif(rng, 1e-3, 1e-2),
            Split::OutD => unif(rng, 1e-5, 1e-4),
        }]
    }

    fn simulate(&self, params: &[f64], rng: &mut Philox) -> Result<Vec<f32>> {
        let mut solver = VortSolver::new(self.n, params[0]);
        let mut w = solver.initial(rng);
        let mut out = Vec::with_capacity(FRAMES * OUT * OUT);
        for f in 0..FRAMES {
            if f > 0 {
                solver.advance(&mut w, INTERVAL)?;
            }
            let phys = solver.to_physical(&w);
            out.extend(block_average(&phys, self.n, OUT).into_iter().map(|v| v as f32));
        }
        check_finite("vorticity solver", &out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taylor_green(n: usize) -> Vec<f64> {
        (0..n * n)
            .map(|i| {
                let (y, x) = (2.0 * PI * (i / n) as f64 / n as f64, 2.0 * PI * (i % n) as f64 / n as f64);
                2.0 * x.sin() * y.sin()
            })
            .collect()
    }

    #[test]
    fn taylor_green_is_steady_without_viscosity_and_decays_as_exp_minus_2_nu_t() {
        let n = 32;
        let w0 = taylor_green(n);
        for nu in [0.0, 0.01, 0.05] {
            let mut s = VortSolver::new(n, nu);
            let mut w = s.to_spectral(&w0);
            s.advance(&mut w, 1.0).unwrap();
            let w1 = s.to_physical(&w);
            let f = (-2.0 * nu).exp();
            let err = w1.iter().zip(&w0).map(|(a, b)| (a - f * b).abs()).fold(0.0, f64::max);
            assert!(err < 1e-8, "nu={nu}: max error {err}");
            assert!(s.steps > 5, "the CFL limit takes several steps");
        }
    }

    #[test]
    fn the_integral_of_vorticity_is_conserved_and_energy_starts_at_one_half() {
        let mut s = VortSolver::new(64, 2e-3);
        let mut rng = Philox::new(9, 1);
        let mut w = s.initial(&mut rng);
        assert!((s.energy(&w) - 0.5).abs() < 1e-9);
        // add a mean so the integral is not trivially zero
        w[0] += C64::new(3.0 * (64.0 * 64.0), 0.0);
        let before: f64 = s.to_physical(&w).iter().sum();
        s.advance(&mut w, 0.5).unwrap();
        let after: f64 = s.to_physical(&w).iter().sum();
        assert!((after - before).abs() < 1e-8 * before.abs(), "{before} -> {after}");
        assert!(s.energy(&w) < 0.5, "viscosity removes energy");
    }
}
