//! The five benchmark PDEs (DATA.md): parameter sampling, initial conditions and solvers.
//!
//! A solver turns (parameters, initial-condition stream) into one trajectory at the resolution
//! the models consume, laid out `[T, C, spatial..]` row-major.

pub mod advection;
pub mod combined;
pub mod fft;
pub mod grayscott;
pub mod vorticity;
pub mod wave;

use crate::error::Result;
use crate::ops::random::Philox;

/// Which parameter range to draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Split {
    /// Training environments.
    Train,
    /// In-distribution test environments (same ranges as training).
    InD,
    /// Out-of-distribution test environments.
    OutD,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::InD => "test",
            Split::OutD => "ood",
        }
    }

    pub(crate) fn id(self) -> u64 {
        self as u64
    }

    pub fn all() -> [Split; 3] {
        [Split::Train, Split::InD, Split::OutD]
    }
}

/// What a solver produces and how the file describes it.
#[derive(Debug, Clone)]
pub struct Spec {
    pub channels: usize,
    /// Kept spatial grid: `[X]` in 1D, `[H, W]` in 2D.
    pub spatial: Vec<usize>,
    /// Kept frames.
    pub frames: usize,
    /// Names of the per-environment parameters, in the order `sample_params` returns them.
    pub params: &'static [&'static str],
    /// Times of the kept frames.
    pub t: Vec<f64>,
    /// Coordinates of the kept points along each spatial axis.
    pub x: Vec<f64>,
    /// Domain extent per spatial axis.
    pub domain: Vec<f64>,
    pub solver: String,
    /// Internal time step (or the largest one, for adaptive steps).
    pub dt_internal: f64,
}

impl Spec {
    pub fn values_per_trajectory(&self) -> usize {
        self.frames * self.channels * self.spatial.iter().product::<usize>()
    }
}

/// One benchmark PDE.
pub trait Pde: Sync + Send {
    fn spec(&self) -> Spec;
    /// Parameters of one environment of `split`.
    fn sample_params(&self, split: Split, rng: &mut Philox) -> Vec<f64>;
    /// One trajectory `[T, C, spatial..]` from an initial condition drawn from `rng`.
    fn simulate(&self, params: &[f64], rng: &mut Philox) -> Result<Vec<f32>>;
}

/// Uniform draw in [lo, hi).
pub(crate) fn unif(rng: &mut Philox, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.uniform() as f64
}

/// Uniform integer in lo..=hi.
pub(crate) fn unif_int(rng: &mut Philox, lo: u32, hi: u32) -> u32 {
    lo + (rng.next_u32() % (hi - lo + 1))
}

/// Uniform draw from [a, b) ∪ [c, d) (equal lengths weighted by length).
pub(crate) fn unif_two(rng: &mut Philox, a: f64, b: f64, c: f64, d: f64) -> f64 {
    let u = unif(rng, 0.0, (b - a) + (d - c));
    if u < b - a { a + u } else { c + (u - (b - a)) }
}

/// Block average of an n × n field to m × m (n a multiple of m).
pub(crate) fn block_average(x: &[f64], n: usize, m: usize) -> Vec<f64> {
    let f = n / m;
    let mut out = vec![0.0; m * m];
    for r in 0..n {
        for c in 0..n {
            out[(r / f) * m + c / f] += x[r * n + c];
        }
    }
    let s = 1.0 / (f * f) as f64;
    out.iter_mut().for_each(|v| *v *= s);
    out
}

/// Fails when a trajectory holds NaN or Inf (the solver blew up).
pub(crate) fn check_finite(what: &str, v: &[f32]) -> Result<()> {
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(crate::Error::invalid(
            what,
            format!("the solver produced {} at value {i}; parameters out of its stable range?", v[i]),
        ));
    }
    Ok(())
}
