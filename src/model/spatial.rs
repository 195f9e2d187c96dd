//! The spatial transformer (MODEL.md §4): full attention over `[Z_dyn (M tokens) ; Ẑ (M
//! tokens)]`, where masked positions of Ẑ hold a learned mask embedding; its last M outputs
//! are the per-token conditions z̃ of the flow head.

use crate::autodiff::{Init, Param, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::nn::{Linear, RmsNorm, TransformerBlock};
use crate::ops::flash_attention::AttentionOptions;

#[derive(Debug, Clone)]
pub struct SpatialTransformer {
    input: Linear,
    mask: Param,
    blocks: Vec<TransformerBlock>,
    norm: RmsNorm,
    width: usize,
}

impl SpatialTransformer {
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        token_dim: usize,
        width: usize,
        heads: usize,
        depth: usize,
        mlp_ratio: usize,
    ) -> Result<SpatialTransformer> {
        Ok(SpatialTransformer {
            input: Linear::new(store, &format!("{name}.input"), token_dim, width, true)?,
            mask: store.add(&format!("{name}.mask"), &[width], Init::Normal { std: 0.02 }, false)?,
            blocks: (0..depth)
                .map(|i| TransformerBlock::new(store, &format!("{name}.block{i}"), width, heads, mlp_ratio))
                .collect::<Result<_>>()?,
            norm: RmsNorm::new(store, &format!("{name}.norm"), width)?,
            width,
        })
    }

    /// Conditions `[N, M, width]` from Z_dyn `[N, M, width]`, the frame's tokens `[N, M, D]`
    /// and `masked` `[N, M, 1]` (1 = masked, 0 = known), with positions `pos` `[M, width]`.
    pub fn forward(
        &self,
        tape: &Tape,
        store: &ParamStore,
        zdyn: &Var,
        tokens: &Var,
        masked: &Var,
        pos: &Var,
    ) -> Result<Var> {
        let s = zdyn.shape().to_vec();
        if s.len() != 3 || s[2] != self.width || tokens.shape()[..2] != s[..2] || masked.shape() != [s[0], s[1], 1] {
            return Err(Error::invalid(
                "SpatialTransformer",
                format!("Z_dyn {s:?}, tokens {:?}, mask {:?}", tokens.shape(), masked.shape()),
            ));
        }
        let m = s[1];
        let known = self.input.forward(tape, store, tokens)?.mul(&masked.affine(-1.0, 1.0)?)?;
        let t = known.add(&masked.mul(&tape.param(store, &self.mask)?)?)?.add(pos)?;
        let mut x = Var::concat(&[&zdyn.add(pos)?, &t], 1)?;
        let opts = AttentionOptions::new(1);
        for blk in &self.blocks {
            x = blk.forward_flash(tape, store, &x, &opts)?;
        }
        self.norm.forward(tape, store, &x.slice(1, m, 2 * m)?)
    }
}
