//! Normalisation layers over the last axis.

use crate::autodiff::{Init, Param, ParamStore, Tape, Var};
use crate::error::Result;

/// RMSNorm with a learned scale (ones at init).
#[derive(Debug, Clone)]
pub struct RmsNorm {
    pub gamma: Param,
    pub eps: f32,
}

impl RmsNorm {
    pub fn new(store: &mut ParamStore, name: &str, d: usize) -> Result<RmsNorm> {
        Ok(RmsNorm { gamma: store.add(&format!("{name}.weight"), &[d], Init::Const(1.0), false)?, eps: 1e-6 })
    }

    pub fn forward(&self, tape: &Tape, store: &ParamStore, x: &Var) -> Result<Var> {
        x.rms_norm(Some(&tape.param(store, &self.gamma)?), self.eps)
    }
}

/// LayerNorm, with a learned scale and shift or without (`affine = false`, as under adaLN).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub affine: Option<(Param, Param)>,
    pub eps: f32,
}

impl LayerNorm {
    pub fn new(store: &mut ParamStore, name: &str, d: usize, affine: bool) -> Result<LayerNorm> {
        let affine = if affine {
            Some((
                store.add(&format!("{name}.weight"), &[d], Init::Const(1.0), false)?,
                store.add(&format!("{name}.bias"), &[d], Init::Zeros, false)?,
            ))
        } else {
            None
        };
        Ok(LayerNorm { affine, eps: 1e-6 })
    }

    pub fn forward(&self, tape: &Tape, store: &ParamStore, x: &Var) -> Result<Var> {
        match &self.affine {
            Some((g, b)) => x.layer_norm(Some(&tape.param(store, g)?), Some(&tape.param(store, b)?), self.eps),
            None => x.layer_norm(None, None, self.eps),
        }
    }
}
