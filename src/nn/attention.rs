//! Multi-head self-attention with optional QK-RMSNorm: the fused flash kernel (block-causal
//! and key-padding masks) or the plain path (scores matrix, any additive mask).

use super::{Linear, RmsNorm};
use crate::autodiff::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::tune::bucket;
use crate::ops::flash_attention::AttentionOptions;

/// Keys and values of the tokens seen so far, `[B, heads, capacity, head dim]` each.
#[derive(Debug, Clone)]
pub struct KvCache {
    pub k: crate::gpu::Tensor,
    pub v: crate::gpu::Tensor,
    /// Tokens cached.
    pub len: usize,
}

impl KvCache {
    pub fn new(gpu: &crate::gpu::Gpu, batch: usize, heads: usize, capacity: usize, head_dim: usize) -> Result<KvCache> {
        let shape = [batch, heads, capacity, head_dim];
        Ok(KvCache {
            k: crate::gpu::Tensor::zeros(gpu, &shape, crate::gpu::DType::F32)?,
            v: crate::gpu::Tensor::zeros(gpu, &shape, crate::gpu::DType::F32)?,
            len: 0,
        })
    }
}

/// Which attention implementation [`MultiHeadAttention::forward_flash`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionPath {
    /// Without key padding and with a score matrix that fits one storage binding, the path the
    /// autotuner measures faster on the forward pass (built-in rule: flash, but plain on CPU
    /// adapters without the subgroup flash kernel, where the tiled one was 2–7× slower,
    /// `cargo bench --bench kernels -- flash`); the flash kernel otherwise. `ENMA_ATTENTION=flash|plain` overrides.
    #[default]
    Auto,
    Flash,
    /// Score matrix, additive mask, softmax (no key padding).
    Plain,
}

#[derive(Debug, Clone)]
pub struct MultiHeadAttention {
    pub qkv: Linear,
    pub out: Linear,
    pub heads: usize,
    pub d: usize,
    /// RMSNorm of queries and keys over the head dimension (learned scale shared by heads).
    pub qk_norm: Option<(RmsNorm, RmsNorm)>,
    pub path: AttentionPath,
}

impl MultiHeadAttention {
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        d: usize,
        heads: usize,
        qk_norm: bool,
    ) -> Result<MultiHeadAttention> {
        if heads == 0 || !d.is_multiple_of(heads) {
            return Err(Error::invalid("MultiHeadAttention", format!("width {d} does not split into {heads} heads")));
        }
        let hd = d / heads;
        let qk_norm = if qk_norm {
            Some((
                RmsNorm::new(store, &format!("{name}.q_norm"), hd)?,
                RmsNorm::new(store, &format!("{name}.k_norm"), hd)?,
            ))
        } else {
            None
        };
        Ok(MultiHeadAttention {
            qkv: Linear::new(store, &format!("{name}.qkv"), d, 3 * d, true)?,
            out: Linear::new(store, &format!("{name}.out"), d, d, true)?,
            heads,
            d,
            qk_norm,
            path: AttentionPath::Auto,
        })
    }

    /// Projected heads q, k, v of `x` `[B, T, d]` (q and k normalised), token-major
    /// `[B, T, H, hd]`: the projections as they come, with no copy.
    fn heads_of(&self, tape: &Tape, store: &ParamStore, x: &Var) -> Result<(Var, Var, Var)> {
        let s = x.shape().to_vec();
        if s.len() != 3 || s[2] != self.d {
            return Err(Error::invalid("MultiHeadAttention", format!("expects [B, T, {}], got {s:?}", self.d)));
        }
        let (b, t, h) = (s[0], s[1], self.heads);
        let hd = self.d / h;
        // q, k, v: one product each with its block of the `qkv` weight's columns
        let parts = self.qkv.forward_blocks(tape, store, x, 3)?;
        let part = |i: usize| parts[i].reshape(&[b, t, h, hd]);
        let (mut q, mut k, v) = (part(0)?, part(1)?, part(2)?);
        if let Some((qn, kn)) = &self.qk_norm {
            q = qn.forward(tape, store, &q)?;
            k = kn.forward(tape, store, &k)?;
        }
        Ok((q, k, v))
    }

    /// Token-major heads `[B, T, H, hd]` back to `[B, T, d]` (no copy), then the output
    /// projection.
    fn merge(&self, tape: &Tape, store: &ParamStore, o: &Var) -> Result<Var> {
        let s = o.shape().to_vec();
        self.out.forward(tape, store, &o.reshape(&[s[0], s[1], self.d])?)
    }

    /// `x` is `[B, T, d]`; `mask` (optional) is added to the scores and broadcasts to
    /// `[B·heads, T, T]` (e.g. `[T, T]` with 0 and −1e9 entries). Plain path: the score matrix
    /// is materialised.
    pub fn forward(&self, tape: &Tape, store: &ParamStore, x: &Var, mask: Option<&Var>) -> Result<Var> {
        let (q, k, v) = self.heads_of(tape, store, x)?;
        let (q, k, v) = (head_major(&q)?, head_major(&k)?, head_major(&v)?);
        let s = q.shape().to_vec();
        let flat = |t: &Var| t.reshape(&[s[0] * s[1], s[2], s[3]]);
        let mut scores = flat(&q)?.matmul(&flat(&k)?, None, false, true)?.scale(1.0 / (s[3] as f32).sqrt())?;
        if let Some(m) = mask {
            scores = scores.add(m)?;
        }
        let o = scores.softmax()?.matmul(&flat(&v)?, None, false, false)?.reshape(&s)?;
        self.merge(tape, store, &head_major(&o)?)
    }

    /// Decoding: `x` `[B, T, d]` are the next T tokens; their keys and values are appended to
    /// `cache` and they attend to every cached token (earlier ones and each other).
    pub fn forward_cached(&self, tape: &Tape, store: &ParamStore, x: &Var, cache: &mut KvCache) -> Result<Var> {
        let (q, k, v) = self.heads_of(tape, store, x)?;
        // the cache is head-major
        let (q, k, v) = (head_major(&q)?, head_major(&k)?, head_major(&v)?);
        let s = q.shape().to_vec();
        if cache.k.shape()[..2] != s[..2] || cache.k.shape()[3] != s[3] {
            return Err(Error::shape("KvCache", cache.k.shape(), &s, "the cache is [B, heads, capacity, head dim]"));
        }
        if cache.len + s[2] > cache.k.shape()[2] {
            return Err(Error::invalid(
                "KvCache",
                format!("{} cached + {} new tokens exceed the capacity {}", cache.len, s[2], cache.k.shape()[2]),
            ));
        }
        crate::ops::layout::write_into(k.tensor(), &cache.k, 2, cache.len)?;
        crate::ops::layout::write_into(v.tensor(), &cache.v, 2, cache.len)?;
        cache.len += s[2];
        let opts = AttentionOptions::new(s[3]);
        let o = crate::ops::flash_attention::flash_attention_cached(q.tensor(), &cache.k, &cache.v, cache.len, &opts)?;
        self.merge(tape, store, &head_major(&tape.constant(o))?)
    }

    /// `x` is `[B, T, d]`; attention with `opts`' masks (block-causal, key padding);
    /// `opts.scale` is replaced by 1/√(head dim). The implementation follows `self.path`.
    pub fn forward_flash(&self, tape: &Tape, store: &ParamStore, x: &Var, opts: &AttentionOptions) -> Result<Var> {
        let (q, k, v) = self.heads_of(tape, store, x)?;
        // token-major [B, T, H, hd]; `s` in head-major order
        let s = [q.shape()[0], q.shape()[2], q.shape()[1], q.shape()[3]];
        let opts = AttentionOptions { scale: 1.0 / (s[3] as f32).sqrt(), token_major: true, ..opts.clone() };
        // the plain path needs the score matrix in one binding
        let small =
            (s[0] * s[1] * s[2] * s[2] * 4) as u64 <= tape.gpu().adapter().limits.max_storage_buffer_binding_size;
        let env = std::env::var("ENMA_ATTENTION");
        let plain_possible = opts.key_lens.is_none() && opts.q_offset == 0 && small;
        let flash_fits = crate::ops::flash_attention::fits(&tape.gpu(), s[2], s[3]);
        let plain = opts.key_lens.is_none()
            && opts.q_offset == 0
            && match (self.path, env.as_deref()) {
                // beyond the loop budget of software drivers the flash kernels cannot run
                (AttentionPath::Auto, _) if !flash_fits => plain_possible,
                (AttentionPath::Flash, _) | (AttentionPath::Auto, Ok("flash")) => false,
                (AttentionPath::Plain, _) | (AttentionPath::Auto, Ok("plain")) => true,
                (AttentionPath::Auto, _) if plain_possible => {
                    // measured on the forward pass with the real inputs, outside the tape
                    let gpu = tape.gpu();
                    // plain on CPU adapters without the subgroup flash kernel, where the tiled
                    // one was 2–7× slower (`cargo bench --bench kernels -- flash`)
                    let rule = usize::from(gpu.is_cpu() && crate::ops::matmul::subgroup_lanes(&gpu).is_none());
                    let candidates = [("flash".to_string(), false), ("plain".to_string(), true)];
                    let class = format!(
                        "b{} h{} t{} d{} blk{}",
                        bucket(s[0]),
                        s[1],
                        bucket(s[2]),
                        s[3],
                        opts.block_causal.unwrap_or(0)
                    );
                    gpu.tune("attention", &class, &candidates, rule, |&plain| {
                        let t = Tape::no_grad(&gpu);
                        let (q, k, v) = (
                            t.constant(q.tensor().clone()),
                            t.constant(k.tensor().clone()),
                            t.constant(v.tensor().clone()),
                        );
                        attend(&t, &q, &k, &v, &opts, plain).map(drop)
                    })?
                }
                (AttentionPath::Auto, _) => false,
            };
        let o = attend(tape, &q, &k, &v, &opts, plain)?;
        self.merge(tape, store, &o)
    }
}

/// `[B, T, H, hd]` ⇄ `[B, H, T, hd]` (the same swap both ways).
fn head_major(x: &Var) -> Result<Var> {
    x.permute(&[0, 2, 1, 3])
}

/// Attention of `q`, `k`, `v` `[B, heads, T, head dim]` (or `[B, T, heads, head dim]` with
/// `opts.token_major`, and then the result too): the flash kernel, or (`plain`) the score
/// matrix, an additive block-causal mask, softmax and a second product.
fn attend(tape: &Tape, q: &Var, k: &Var, v: &Var, opts: &AttentionOptions, plain: bool) -> Result<Var> {
    if !plain {
        return q.flash_attention(k, v, opts);
    }
    if opts.token_major {
        let o = attend(
            tape,
            &head_major(q)?,
            &head_major(k)?,
            &head_major(v)?,
            &AttentionOptions { token_major: false, ..opts.clone() },
            true,
        )?;
        return head_major(&o);
    }
    let s = q.shape().to_vec();
    let flat = |t: &Var| t.reshape(&[s[0] * s[1], s[2], s[3]]);
    let mut scores = flat(q)?.matmul(&flat(k)?, None, false, true)?.scale(opts.scale)?;
    if let Some(blk) = opts.block_causal {
        let t = s[2];
        let mask: Vec<f32> =
            (0..t * t).map(|e| if (e % t) / blk.max(1) <= (e / t) / blk.max(1) { 0.0 } else { -1e9 }).collect();
        scores = scores.add(&tape.constant(crate::gpu::Tensor::from_slice(&tape.gpu(), &mask, &[t, t])?))?;
    }
    scores.softmax()?.matmul(&flat(v)?, None, false, false)?.reshape(&s)
}
