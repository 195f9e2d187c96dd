//! Advection u_t + α u_x = 0 on [0, 1] periodic, T = 1: the exact solution u₀(x − αt),
//! evaluated at the kept points and frames (1024 × 100 simulated grid, 128 × 20 kept).

use std::f64::consts::PI;

use super::{Pde, Spec, Split, unif, unif_int, unif_two};
use crate::error::Result;
use crate::ops::random::Philox;

/// Advection on the stored grid `points × frames` taken from the 1024 × 100 grid.
pub struct Advection {
    /// Terms of the initial condition (J).
    pub terms: usize,
    pub full: bool,
}

const FULL_X: usize = 1024;
const FULL_T: usize = 100;

impl Advection {
    fn kept(&self) -> (usize, usize) {
        if self.full { (1, 1) } else { (8, 5) }
    }
}

/// Initial condition: a family (sines, cosines, both) of J terms A sin/cos(2π l x + φ).
pub(crate) struct TrigIc {
    pub family: u32,
    pub terms: Vec<(f64, f64, f64)>,
}

impl TrigIc {
    pub(crate) fn draw(rng: &mut Philox, j: usize, families: u32) -> TrigIc {
        let family = rng.next_u32() % families;
        let terms =
            (0..j).map(|_| (unif(rng, -0.5, 0.5), unif_int(rng, 1, 3) as f64, unif(rng, 0.0, 2.0 * PI))).collect();
        TrigIc { family, terms }
    }

    /// Value at x for a domain of length `len`.
    pub(crate) fn eval(&self, x: f64, len: f64) -> f64 {
        self.terms
            .iter()
            .enumerate()
            .map(|(i, &(a, l, phi))| {
                let arg = 2.0 * PI * l * x / len + phi;
                match self.family {
                    0 => a * arg.sin(),
                    1 => a * arg.cos(),
                    _ => a * if i % 2 == 0 { arg.sin() } else { arg.cos() },
                }
            })
            .sum()
    }
}

impl Pde for Advection {
    fn spec(&self) -> Spec {
        let (sx, st) = self.kept();
        let (nx, nt) = (FULL_X / sx, FULL_T / st);
        Spec {
            channels: 1,
            spatial: vec![nx],
            frames: nt,
            params: &["alpha"],
            t: (0..nt).map(|n| (n * st) as f64 / (FULL_T - 1) as f64).collect(),
            x: (0..nx).map(|j| (j * sx) as f64 / FULL_X as f64).collect(),
            domain: vec![1.0],
            solver: "exact solution u0(x - alpha t)".into(),
            dt_internal: 1.0 / (FULL_T - 1) as f64,
        }
    }

    fn sample_params(&self, split: Split, rng: &mut Philox) -> Vec<f64> {
        vec![match split {
            Split::Train | Split::InD => unif(rng, -5.0, 5.0),
            Split::OutD => unif_two(rng, -7.0, -5.0, 5.0, 7.0),
        }]
    }

    fn simulate(&self, params: &[f64], rng: &mut Philox) -> Result<Vec<f32>> {
        let alpha = params[0];
        let ic = TrigIc::draw(rng, self.terms, 3);
        let s = self.spec();
        let mut out = Vec::with_capacity(s.values_per_trajectory());
        for &t in &s.t {
            for &x in &s.x {
                out.push(ic.eval((x - alpha * t).rem_euclid(1.0), 1.0) as f32);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::pde::fft::{C64, Fft1};

    #[test]
    fn matches_an_independent_fourier_phase_shift_to_1e6() {
        let pde = Advection { terms: 5, full: false };
        let spec = pde.spec();
        for seed in 0..5u64 {
            let mut p = Philox::new(seed, 0);
            let alpha = pde.sample_params(Split::Train, &mut p)[0];
            let mut r1 = Philox::new(seed, 1);
            let out = pde.simulate(&[alpha], &mut r1).unwrap();
            // the same initial condition on the 1024-point grid, shifted in Fourier space
            let mut r2 = Philox::new(seed, 1);
            let ic = TrigIc::draw(&mut r2, 5, 3);
            let u0: Vec<f64> = (0..FULL_X).map(|j| ic.eval(j as f64 / FULL_X as f64, 1.0)).collect();
            let mut fft = Fft1::new(FULL_X);
            let mut s0 = vec![C64::default(); FULL_X / 2 + 1];
            fft.forward(&u0, &mut s0);
            for (n, &t) in spec.t.iter().enumerate() {
                let shifted: Vec<C64> = s0
                    .iter()
                    .enumerate()
                    .map(|(k, v)| v * C64::from_polar(1.0, -2.0 * PI * k as f64 * alpha * t))
                    .collect();
                let mut u = vec![0.0; FULL_X];
                fft.inverse(&shifted, &mut u);
                for j in 0..spec.x.len() {
                    let got = out[n * spec.x.len() + j] as f64;
                    assert!((got - u[j * 8]).abs() < 1e-6, "seed {seed} frame {n} point {j}: {got} vs {}", u[j * 8]);
                }
            }
        }
    }

    #[test]
    fn out_of_distribution_speeds_avoid_the_training_range() {
        let pde = Advection { terms: 5, full: false };
        let mut p = Philox::new(3, 0);
        for _ in 0..200 {
            let a = pde.sample_params(Split::OutD, &mut p)[0];
            assert!((5.0..=7.0).contains(&a.abs()), "{a}");
            let b = pde.sample_params(Split::Train, &mut p)[0];
            assert!(b.abs() <= 5.0);
        }
    }
}
