//! Pre-norm transformer block (MODEL.md §4): RMSNorm → attention with QK-RMSNorm → residual,
//! RMSNorm → SwiGLU MLP → residual.

use super::{MultiHeadAttention, RmsNorm, SwiGluMlp};
use crate::autodiff::{ParamStore, Tape, Var};
use crate::error::Result;
use crate::ops::flash_attention::AttentionOptions;

#[derive(Debug, Clone)]
pub struct TransformerBlock {
    pub norm1: RmsNorm,
    pub attn: MultiHeadAttention,
    pub norm2: RmsNorm,
    pub mlp: SwiGluMlp,
}

impl TransformerBlock {
    /// Width `d`, `heads` heads, MLP hidden width `mlp_ratio · d`.
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        d: usize,
        heads: usize,
        mlp_ratio: usize,
    ) -> Result<TransformerBlock> {
        Ok(TransformerBlock {
            norm1: RmsNorm::new(store, &format!("{name}.norm1"), d)?,
            attn: MultiHeadAttention::new(store, &format!("{name}.attn"), d, heads, true)?,
            norm2: RmsNorm::new(store, &format!("{name}.norm2"), d)?,
            mlp: SwiGluMlp::new(store, &format!("{name}.mlp"), d, mlp_ratio * d)?,
        })
    }

    /// `x` is `[B, T, d]`; `mask` as in [`MultiHeadAttention::forward`] (plain attention).
    pub fn forward(&self, tape: &Tape, store: &ParamStore, x: &Var, mask: Option<&Var>) -> Result<Var> {
        let h = self.norm1.forward(tape, store, x)?;
        let x = x.add(&self.attn.forward(tape, store, &h, mask)?)?;
        self.feed_forward(tape, store, &x)
    }

    /// `x` is `[B, T, d]`; flash attention with `opts`' masks.
    pub fn forward_flash(&self, tape: &Tape, store: &ParamStore, x: &Var, opts: &AttentionOptions) -> Result<Var> {
        let h = self.norm1.forward(tape, store, x)?;
        let x = x.add(&self.attn.forward_flash(tape, store, &h, opts)?)?;
        self.feed_forward(tape, store, &x)
    }

    /// Decoding with a KV cache (see [`MultiHeadAttention::forward_cached`]).
    pub fn forward_cached(
        &self,
        tape: &Tape,
        store: &ParamStore,
        x: &Var,
        cache: &mut super::attention::KvCache,
    ) -> Result<Var> {
        let h = self.norm1.forward(tape, store, x)?;
        let x = x.add(&self.attn.forward_cached(tape, store, &h, cache)?)?;
        self.feed_forward(tape, store, &x)
    }

    fn feed_forward(&self, tape: &Tape, store: &ParamStore, x: &Var) -> Result<Var> {
        let h = self.norm2.forward(tape, store, x)?;
        x.add(&self.mlp.forward(tape, store, &h)?)
    }
}
