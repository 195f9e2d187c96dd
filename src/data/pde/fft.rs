//! Real FFTs for the spectral solvers: 1D (realfft) and 2D on an n × n periodic grid
//! (real transform along rows, complex transform along the columns of the half spectrum).

use std::sync::Arc;

use realfft::num_complex::Complex64;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};

pub type C64 = Complex64;

/// Signed wavenumber of index `j` of an `n`-point transform.
pub fn wavenumber(j: usize, n: usize) -> f64 {
    if j <= n / 2 { j as f64 } else { j as f64 - n as f64 }
}

/// 1D real transform of length n (spectrum of n/2 + 1 values; the inverse is normalised).
pub struct Fft1 {
    n: usize,
    r2c: Arc<dyn RealToComplex<f64>>,
    c2r: Arc<dyn ComplexToReal<f64>>,
    rbuf: Vec<f64>,
    cbuf: Vec<C64>,
}

impl Fft1 {
    pub fn new(n: usize) -> Fft1 {
        let mut p = RealFftPlanner::<f64>::new();
        Fft1 {
            n,
            r2c: p.plan_fft_forward(n),
            c2r: p.plan_fft_inverse(n),
            rbuf: vec![0.0; n],
            cbuf: vec![C64::new(0.0, 0.0); n / 2 + 1],
        }
    }

    pub fn forward(&mut self, x: &[f64], out: &mut [C64]) {
        self.rbuf.copy_from_slice(x);
        // Lengths match by construction; realfft only fails on wrong lengths.
        self.r2c.process(&mut self.rbuf, out).expect("fft lengths");
    }

    pub fn inverse(&mut self, spec: &[C64], out: &mut [f64]) {
        self.cbuf.copy_from_slice(spec);
        // The imaginary parts of the DC and Nyquist bins must be zero for a real signal.
        self.cbuf[0].im = 0.0;
        if self.n.is_multiple_of(2) {
            let last = self.cbuf.len() - 1;
            self.cbuf[last].im = 0.0;
        }
        self.c2r.process(&mut self.cbuf, out).expect("fft lengths");
        let s = 1.0 / self.n as f64;
        out.iter_mut().for_each(|v| *v *= s);
    }
}

/// 2D real transform of an n × n grid stored row-major (row = y, column = x). The spectrum is
/// n rows (ky) × (n/2 + 1) columns (kx), row-major; the inverse is normalised.
pub struct Fft2 {
    pub n: usize,
    pub nh: usize,
    row: Fft1,
    col_f: Arc<dyn Fft<f64>>,
    col_i: Arc<dyn Fft<f64>>,
    col: Vec<C64>,
    scratch: Vec<C64>,
}

impl Fft2 {
    pub fn new(n: usize) -> Fft2 {
        let mut p = FftPlanner::<f64>::new();
        let col_f = p.plan_fft_forward(n);
        let col_i = p.plan_fft_inverse(n);
        let scratch_len = col_f.get_inplace_scratch_len().max(col_i.get_inplace_scratch_len());
        Fft2 {
            n,
            nh: n / 2 + 1,
            row: Fft1::new(n),
            col_f,
            col_i,
            col: vec![C64::new(0.0, 0.0); n],
            scratch: vec![C64::new(0.0, 0.0); scratch_len],
        }
    }

    pub fn forward(&mut self, x: &[f64], spec: &mut [C64]) {
        let (n, nh) = (self.n, self.nh);
        for r in 0..n {
            self.row.forward(&x[r * n..(r + 1) * n], &mut spec[r * nh..(r + 1) * nh]);
        }
        for c in 0..nh {
            for r in 0..n {
                self.col[r] = spec[r * nh + c];
            }
            self.col_f.process_with_scratch(&mut self.col, &mut self.scratch);
            for r in 0..n {
                spec[r * nh + c] = self.col[r];
            }
        }
    }

    /// Inverse transform; `spec` is used as work space and left modified.
    pub fn inverse(&mut self, spec: &mut [C64], out: &mut [f64]) {
        let (n, nh) = (self.n, self.nh);
        for c in 0..nh {
            for r in 0..n {
                self.col[r] = spec[r * nh + c];
            }
            self.col_i.process_with_scratch(&mut self.col, &mut self.scratch);
            let s = 1.0 / n as f64;
            for r in 0..n {
                spec[r * nh + c] = self.col[r] * s;
            }
        }
        for r in 0..n {
            self.row.inverse(&spec[r * nh..(r + 1) * nh], &mut out[r * n..(r + 1) * n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_single_modes() {
        let n = 16;
        let mut f = Fft2::new(n);
        let x: Vec<f64> = (0..n * n).map(|i| ((i * 37 % 11) as f64) - 5.0).collect();
        let mut spec = vec![C64::new(0.0, 0.0); n * (n / 2 + 1)];
        f.forward(&x, &mut spec);
        let mut back = vec![0.0; n * n];
        f.inverse(&mut spec, &mut back);
        for (a, b) in x.iter().zip(&back) {
            assert!((a - b).abs() < 1e-12);
        }
        // cos(2π·2x/n) lands in kx = 2, ky = 0 with weight n²/2
        let c: Vec<f64> =
            (0..n * n).map(|i| (2.0 * std::f64::consts::PI * 2.0 * (i % n) as f64 / n as f64).cos()).collect();
        f.forward(&c, &mut spec);
        assert!((spec[2].re - (n * n) as f64 / 2.0).abs() < 1e-9);
        assert!(spec.iter().enumerate().filter(|(i, _)| *i != 2).all(|(_, v)| v.norm() < 1e-9));
        assert_eq!(wavenumber(n - 1, n), -1.0);
    }
}
