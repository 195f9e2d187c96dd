//! Fully connected layer on the last axis.

use crate::autodiff::{Init, Param, ParamStore, Tape, Var};
use crate::error::{Error, Result};

/// `y = x·W (+ b)` with W `[in, out]`, over any leading axes.
#[derive(Debug, Clone)]
pub struct Linear {
    pub w: Param,
    pub b: Option<Param>,
    pub d_in: usize,
    pub d_out: usize,
}

impl Linear {
    /// W ~ U(±1/√in) (decayed), b = 0 (not decayed).
    pub fn new(store: &mut ParamStore, name: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
        let bound = 1.0 / (d_in.max(1) as f32).sqrt();
        Self::with_init(store, name, d_in, d_out, bias, Init::Uniform { bound })
    }

    /// Zero weights and bias (the adaLN and final layers of the flow head start at zero).
    pub fn zeros(store: &mut ParamStore, name: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
        Self::with_init(store, name, d_in, d_out, bias, Init::Zeros)
    }

    pub fn with_init(
        store: &mut ParamStore,
        name: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
        init: Init,
    ) -> Result<Linear> {
        let w = store.add(&format!("{name}.weight"), &[d_in, d_out], init, true)?;
        let b = if bias { Some(store.add(&format!("{name}.bias"), &[d_out], Init::Zeros, false)?) } else { None };
        Ok(Linear { w, b, d_in, d_out })
    }

    pub fn forward(&self, tape: &Tape, store: &ParamStore, x: &Var) -> Result<Var> {
        let shape = x.shape().to_vec();
        if shape.last() != Some(&self.d_in) {
            return Err(Error::invalid("Linear", format!("expects [.., {}], got {shape:?}", self.d_in)));
        }
        let rows = x.tensor().numel() / self.d_in;
        let w = tape.param(store, &self.w)?;
        let b = self.b.as_ref().map(|b| tape.param(store, b)).transpose()?;
        let y = x.reshape(&[rows, self.d_in])?.matmul(&w, b.as_ref(), false, false)?;
        let mut out = shape;
        *out.last_mut().expect("rank >= 1") = self.d_out;
        y.reshape(&out)
    }
}
