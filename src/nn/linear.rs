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
        let (w, b) = self.params(tape, store)?;
        self.product(x, &w, b.as_ref())
    }

    /// `forward` cut into `blocks` equal blocks of output columns, one product each with the
    /// weight's (and bias's) columns of that block: cheaper to differentiate than slices of the
    /// whole output, whose gradients are zero-filled full-size tensors, while the weight's
    /// column blocks are small.
    pub fn forward_blocks(&self, tape: &Tape, store: &ParamStore, x: &Var, blocks: usize) -> Result<Vec<Var>> {
        if blocks == 0 || !self.d_out.is_multiple_of(blocks) {
            return Err(Error::invalid("Linear", format!("{} outputs do not split into {blocks} blocks", self.d_out)));
        }
        let (w, b) = self.params(tape, store)?;
        let n = self.d_out / blocks;
        (0..blocks)
            .map(|i| {
                let bi = b.as_ref().map(|v| v.slice(0, i * n, (i + 1) * n)).transpose()?;
                self.product(x, &w.slice(1, i * n, (i + 1) * n)?, bi.as_ref())
            })
            .collect()
    }

    /// The weight and bias on `tape`.
    fn params(&self, tape: &Tape, store: &ParamStore) -> Result<(Var, Option<Var>)> {
        Ok((tape.param(store, &self.w)?, self.b.as_ref().map(|b| tape.param(store, b)).transpose()?))
    }

    /// `x` `[.., d_in]` times `w` `[d_in, n]` (+ `b`) → `[.., n]`.
    fn product(&self, x: &Var, w: &Var, b: Option<&Var>) -> Result<Var> {
        let shape = x.shape().to_vec();
        if shape.last() != Some(&self.d_in) {
            return Err(Error::invalid("Linear", format!("expects [.., {}], got {shape:?}", self.d_in)));
        }
        let rows = x.tensor().numel() / self.d_in;
        let y = x.reshape(&[rows, self.d_in])?.matmul(w, b, false, false)?;
        let mut out = shape;
        *out.last_mut().expect("rank >= 1") = w.shape()[1];
        y.reshape(&out)
    }
}
