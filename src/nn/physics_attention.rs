//! Physics Attention (Transolver, Wu et al. 2024): points are softly assigned to S learned
//! slices per head, the slice tokens attend to each other, and the result is spread back to the
//! points with the same assignment weights. Cost linear in the number of points.

use super::{LayerNorm, Linear};
use crate::autodiff::{Init, Param, ParamStore, Tape, Var};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct PhysicsAttention {
    pub heads: usize,
    pub slices: usize,
    pub d: usize,
    /// Values projected per head.
    pub fx: Linear,
    /// Features that decide the slice weights.
    pub x_mid: Linear,
    /// Per-head slice logits (shared across heads): dh → S.
    pub to_slice: Linear,
    /// Learned temperature per head (the logits are divided by it).
    pub temperature: Param,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub out: Linear,
}

impl PhysicsAttention {
    pub fn new(store: &mut ParamStore, name: &str, d: usize, heads: usize, slices: usize) -> Result<PhysicsAttention> {
        if heads == 0 || !d.is_multiple_of(heads) || slices == 0 {
            return Err(Error::invalid(
                "PhysicsAttention",
                format!("width {d} must split into {heads} heads; slices {slices} > 0"),
            ));
        }
        let dh = d / heads;
        Ok(PhysicsAttention {
            heads,
            slices,
            d,
            fx: Linear::new(store, &format!("{name}.fx"), d, d, true)?,
            x_mid: Linear::new(store, &format!("{name}.x_mid"), d, d, true)?,
            to_slice: Linear::new(store, &format!("{name}.to_slice"), dh, slices, true)?,
            temperature: store.add(&format!("{name}.temperature"), &[heads, 1, 1], Init::Const(0.5), false)?,
            q: Linear::new(store, &format!("{name}.q"), dh, dh, false)?,
            k: Linear::new(store, &format!("{name}.k"), dh, dh, false)?,
            v: Linear::new(store, &format!("{name}.v"), dh, dh, false)?,
            out: Linear::new(store, &format!("{name}.out"), d, d, true)?,
        })
    }

    /// `x` `[B, N, d]` → `[B, N, d]`.
    pub fn forward(&self, tape: &Tape, store: &ParamStore, x: &Var) -> Result<Var> {
        let s = x.shape().to_vec();
        if s.len() != 3 || s[2] != self.d {
            return Err(Error::invalid("PhysicsAttention", format!("expects [B, N, {}], got {s:?}", self.d)));
        }
        let (b, n, h, sl) = (s[0], s[1], self.heads, self.slices);
        let dh = self.d / h;
        let per_head = |v: Var| -> Result<Var> { v.reshape(&[b, n, h, dh])?.permute(&[0, 2, 1, 3]) }; // [B, H, N, dh]
        let fx = per_head(self.fx.forward(tape, store, x)?)?;
        let mid = per_head(self.x_mid.forward(tape, store, x)?)?;
        // slice weights [B, H, N, S], softmax over slices with a per-head temperature
        let logits = self.to_slice.forward(tape, store, &mid)?;
        let temp = tape.param(store, &self.temperature)?; // [H, 1, 1] broadcasts over [B, H, N, S]
        let w = logits.div(&temp)?.softmax()?;
        let w3 = w.reshape(&[b * h, n, sl])?;
        let fx3 = fx.reshape(&[b * h, n, dh])?;
        // slice tokens: weighted means of the points, [B·H, S, dh]
        let norm = w3.sum(1, true)?.transpose(1, 2)?.affine(1.0, 1e-5)?; // [B·H, S, 1]
        let tokens = w3.matmul(&fx3, None, true, false)?.div(&norm)?;
        // attention among the slice tokens
        let (q, k, v) = (
            self.q.forward(tape, store, &tokens)?,
            self.k.forward(tape, store, &tokens)?,
            self.v.forward(tape, store, &tokens)?,
        );
        let att = q.matmul(&k, None, false, true)?.scale(1.0 / (dh as f32).sqrt())?.softmax()?;
        let mixed = att.matmul(&v, None, false, false)?; // [B·H, S, dh]
        // back to the points
        let back = w3.matmul(&mixed, None, false, false)?; // [B·H, N, dh]
        let merged = back.reshape(&[b, h, n, dh])?.permute(&[0, 2, 1, 3])?.reshape(&[b, n, self.d])?;
        self.out.forward(tape, store, &merged)
    }
}

/// Transolver block: x + PhysicsAttention(LN(x)); x + MLP(LN(x)) with a GELU MLP of ratio 2.
#[derive(Debug, Clone)]
pub struct TransolverBlock {
    pub norm1: LayerNorm,
    pub attn: PhysicsAttention,
    pub norm2: LayerNorm,
    pub up: Linear,
    pub down: Linear,
}

impl TransolverBlock {
    pub fn new(store: &mut ParamStore, name: &str, d: usize, heads: usize, slices: usize) -> Result<TransolverBlock> {
        Ok(TransolverBlock {
            norm1: LayerNorm::new(store, &format!("{name}.norm1"), d, true)?,
            attn: PhysicsAttention::new(store, &format!("{name}.attn"), d, heads, slices)?,
            norm2: LayerNorm::new(store, &format!("{name}.norm2"), d, true)?,
            up: Linear::new(store, &format!("{name}.up"), d, 2 * d, true)?,
            down: Linear::new(store, &format!("{name}.down"), 2 * d, d, true)?,
        })
    }

    pub fn forward(&self, tape: &Tape, store: &ParamStore, x: &Var) -> Result<Var> {
        let x = x.add(&self.attn.forward(tape, store, &self.norm1.forward(tape, store, x)?)?)?;
        let h = self.up.forward(tape, store, &self.norm2.forward(tape, store, &x)?)?.gelu()?;
        x.add(&self.down.forward(tape, store, &h)?)
    }
}
