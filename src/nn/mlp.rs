//! SwiGLU feed-forward block.

use super::Linear;
use crate::autodiff::{ParamStore, Tape, Var};
use crate::error::Result;

/// `down(silu(x·W_gate) ⊙ x·W_up)`, hidden width `hidden` (one fused up-projection of 2·hidden).
#[derive(Debug, Clone)]
pub struct SwiGluMlp {
    pub up: Linear,
    pub down: Linear,
}

impl SwiGluMlp {
    pub fn new(store: &mut ParamStore, name: &str, d: usize, hidden: usize) -> Result<SwiGluMlp> {
        Ok(SwiGluMlp {
            up: Linear::new(store, &format!("{name}.up"), d, 2 * hidden, true)?,
            down: Linear::new(store, &format!("{name}.down"), hidden, d, true)?,
        })
    }

    pub fn forward(&self, tape: &Tape, store: &ParamStore, x: &Var) -> Result<Var> {
        let h = self.up.forward(tape, store, x)?.swiglu()?;
        self.down.forward(tape, store, &h)
    }
}
