//! The causal transformer (MODEL.md §4): `[BOS block; Z⁰; …; Z^{F−2}]` under a block-causal
//! mask (a token sees its own frame and earlier frames); the output of block f is Z_dyn for
//! frame f. Decoding feeds one frame at a time through per-layer KV caches.

use crate::autodiff::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{Embedding, KvCache, Linear, RmsNorm, TransformerBlock};
use crate::ops::flash_attention::AttentionOptions;

#[derive(Debug, Clone)]
pub struct CausalTransformer {
    input: Linear,
    bos: Embedding,
    blocks: Vec<TransformerBlock>,
    norm: RmsNorm,
    tokens: usize,
    width: usize,
    heads: usize,
}

impl CausalTransformer {
    /// Tokens of `token_dim` channels, `tokens` per frame; `depth` blocks of `width` with `heads`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        token_dim: usize,
        tokens: usize,
        width: usize,
        heads: usize,
        depth: usize,
        mlp_ratio: usize,
    ) -> Result<CausalTransformer> {
        Ok(CausalTransformer {
            input: Linear::new(store, &format!("{name}.input"), token_dim, width, true)?,
            bos: Embedding::new(store, &format!("{name}.bos"), tokens, width, 0.02)?,
            blocks: (0..depth)
                .map(|i| TransformerBlock::new(store, &format!("{name}.block{i}"), width, heads, mlp_ratio))
                .collect::<Result<_>>()?,
            norm: RmsNorm::new(store, &format!("{name}.norm"), width)?,
            tokens,
            width,
            heads,
        })
    }

    /// Teacher forcing: `z` `[B, F, M, token_dim]`, `pos` `[M, width]` → Z_dyn `[B, F, M, width]`
    /// (frame f from BOS and frames < f).
    pub fn forward(&self, tape: &Tape, store: &ParamStore, z: &Var, pos: &Var) -> Result<Var> {
        let f = z.shape().get(1).copied().unwrap_or(0);
        let blocks: Vec<Option<usize>> = std::iter::once(None).chain((0..f.saturating_sub(1)).map(Some)).collect();
        self.forward_blocks(tape, store, z, &blocks, pos)
    }

    /// The sequence of `blocks` (`None` = BOS, `Some(f)` = frame f of `z` `[B, F, M,
    /// token_dim]`) → one output `[B, blocks, M, width]` per block (what comes next).
    pub fn forward_blocks(
        &self,
        tape: &Tape,
        store: &ParamStore,
        z: &Var,
        blocks: &[Option<usize>],
        pos: &Var,
    ) -> Result<Var> {
        let s = z.shape().to_vec();
        if s.len() != 4 || s[2] != self.tokens || blocks.iter().flatten().any(|&f| f >= s[1]) || blocks.is_empty() {
            return Err(Error::invalid(
                "CausalTransformer",
                format!("expects [B, F, {}, D] and blocks within F, got {s:?} and {blocks:?}", self.tokens),
            ));
        }
        let (b, m, w) = (s[0], s[2], self.width);
        let bos = self.bos.all(tape, store)?.add(pos)?.reshape(&[1, 1, m, w])?.expand(&[b, 1, m, w])?;
        let frames = self.input.forward(tape, store, z)?.add(pos)?;
        // runs of consecutive frames become one slice each
        let mut parts: Vec<Var> = Vec::new();
        let mut i = 0;
        while i < blocks.len() {
            match blocks[i] {
                None => {
                    parts.push(bos.clone());
                    i += 1;
                }
                Some(f0) => {
                    let mut j = i + 1;
                    while j < blocks.len() && blocks[j] == Some(f0 + (j - i)) {
                        j += 1;
                    }
                    parts.push(frames.slice(1, f0, f0 + (j - i))?);
                    i = j;
                }
            }
        }
        let n = blocks.len();
        let mut x = Var::concat(&parts.iter().collect::<Vec<_>>(), 1)?.reshape(&[b, n * m, w])?;
        let opts = AttentionOptions::new(1).block_causal(m);
        for blk in &self.blocks {
            x = blk.forward_flash(tape, store, &x, &opts)?;
        }
        self.norm.forward(tape, store, &x)?.reshape(&[b, n, m, w])
    }

    /// Empty KV caches for `batch` sequences of up to `frames` blocks (BOS included).
    pub fn caches(&self, gpu: &Gpu, batch: usize, frames: usize) -> Result<Vec<KvCache>> {
        let hd = self.width / self.heads;
        (0..self.blocks.len()).map(|_| KvCache::new(gpu, batch, self.heads, frames * self.tokens, hd)).collect()
    }

    /// Decoding: feeds the next block, BOS when `frame` is `None` or a frame `[B, M,
    /// token_dim]`, and returns Z_dyn of the following frame `[B, M, width]`.
    pub fn step(
        &self,
        tape: &Tape,
        store: &ParamStore,
        frame: Option<&Var>,
        pos: &Var,
        caches: &mut [KvCache],
    ) -> Result<Var> {
        let b = caches.first().map(|c| c.k.shape()[0]).unwrap_or(1);
        let (m, w) = (self.tokens, self.width);
        let mut x = match frame {
            None => self.bos.all(tape, store)?.add(pos)?.reshape(&[1, m, w])?.expand(&[b, m, w])?,
            Some(z) => self.input.forward(tape, store, z)?.add(pos)?,
        };
        for (blk, cache) in self.blocks.iter().zip(caches.iter_mut()) {
            x = blk.forward_cached(tape, store, &x, cache)?;
        }
        self.norm.forward(tape, store, &x)
    }
}
