//! Flash attention (`shaders/flash_attention.wgsl`), forward and backward, FlashAttention-2
//! style: tiles, online softmax and the saved log-sum-exp, so the Nq×Nk score matrix never
//! exists in memory. Masks: none, block-causal (a token sees every token of its own frame and
//! of earlier frames) and key padding; [`flash_attention_cached`] reads keys and values from a
//! KV cache for decoding.
//!
//! Two kernels: `flash_attention_subgroup.wgsl` (adapters with one fixed subgroup size of 4 to
//! 64 lanes: each lane owns four rows, tiles of 16 rows are shared by subgroup broadcasts) and
//! `flash_attention.wgsl` (any adapter: one invocation per row, tiles staged in workgroup
//! memory). [`FlashKernel::Auto`] lets the autotuner pick per shape class.

use super::{Imm, launch};
use crate::autodiff::Var;
use crate::error::{Error, Result};
use crate::gpu::kernels::{FLASH_ATTENTION, FLASH_ATTENTION_SUBGROUP, Shader};
use crate::gpu::tune::bucket;
use crate::gpu::{DType, Gpu, Tensor};

/// Largest head dimension of the kernel (`MAX_DH` in the shader).
pub const MAX_HEAD_DIM: usize = 64;
/// Queries (or keys) per workgroup of the tiled kernel (`BQ` in the shader).
const TILE: usize = 64;

/// Which flash kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlashKernel {
    /// The autotuner's choice per shape class (built-in rule: `Subgroup` where it applies).
    #[default]
    Auto,
    /// One invocation per query (or key), tiles in workgroup memory: any adapter.
    Tiled,
    /// Four rows per lane, tiles shared by subgroup broadcasts: adapters with one fixed
    /// subgroup size of 4 to 64 lanes ([`subgroup_lanes`](super::matmul::subgroup_lanes)).
    Subgroup,
}

/// What each query may see, and the score scale.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionOptions {
    /// Scores are `scale · q·k` (usually 1/√dh).
    pub scale: f32,
    /// Block-causal mask with this many tokens per block (frame): a token sees every token of
    /// its own block and of earlier blocks. `None`: every key.
    pub block_causal: Option<usize>,
    /// Valid keys per batch (key padding); `None`: all.
    pub key_lens: Option<Vec<u32>>,
    /// Position of query 0 in the key sequence (decoding with a KV cache: the cached length
    /// before this step's tokens). Only matters with a block-causal mask.
    pub q_offset: usize,
    /// The kernel (default: [`FlashKernel::Auto`]).
    pub kernel: FlashKernel,
    /// q, k, v (and o and the gradients) are token-major, `[B, N, H, dh]` (a `[B, N, H·dh]`
    /// projection as it is), instead of `[B, H, N, dh]`: attention then needs no copies to
    /// split and merge heads. Not for [`flash_attention_cached`], whose cache is head-major.
    pub token_major: bool,
}

impl AttentionOptions {
    /// Full attention with scale 1/√`head_dim`.
    pub fn new(head_dim: usize) -> AttentionOptions {
        AttentionOptions {
            scale: 1.0 / (head_dim.max(1) as f32).sqrt(),
            block_causal: None,
            key_lens: None,
            q_offset: 0,
            kernel: FlashKernel::Auto,
            token_major: false,
        }
    }

    /// The same with a block-causal mask of `block` tokens per frame.
    pub fn block_causal(mut self, block: usize) -> AttentionOptions {
        self.block_causal = Some(block);
        self
    }

    /// The same with the given kernel.
    pub fn kernel(mut self, kernel: FlashKernel) -> AttentionOptions {
        self.kernel = kernel;
        self
    }

    /// The same with token-major tensors `[B, N, H, dh]` (see [`AttentionOptions::token_major`]).
    pub fn token_major(mut self) -> AttentionOptions {
        self.token_major = true;
        self
    }

    /// The same with `lens[b]` valid keys in batch b.
    pub fn key_lens(mut self, lens: Vec<u32>) -> AttentionOptions {
        self.key_lens = Some(lens);
        self
    }
}

#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    h: usize,
    nq: usize,
    /// Keys in use.
    nk: usize,
    /// Key rows per (batch, head) slice in memory (the cache capacity).
    k_rows: usize,
    dh: usize,
    /// Token-major tensors `[B, N, H, dh]`.
    token_major: bool,
}

impl Dims {
    /// The shape of q (or o) and of k (or v).
    fn shapes(&self) -> ([usize; 4], [usize; 4]) {
        let Dims { b, h, nq, k_rows, dh, .. } = *self;
        if self.token_major { ([b, nq, h, dh], [b, k_rows, h, dh]) } else { ([b, h, nq, dh], [b, h, k_rows, dh]) }
    }

    /// Elements between consecutive tokens of one head (`RS` in the shaders).
    fn row_stride(&self) -> usize {
        if self.token_major { self.h * self.dh } else { self.dh }
    }
}

fn dims(q: &Tensor, k: &Tensor, v: &Tensor, nk: Option<usize>, token_major: bool) -> Result<Dims> {
    let op = "flash_attention";
    for t in [q, k, v] {
        t.expect_dtype(op, DType::F32)?;
    }
    let layout = if token_major { "[B, N, H, dh]" } else { "[B, H, N, dh]" };
    if q.rank() != 4 || k.rank() != 4 || k.shape() != v.shape() {
        return Err(Error::shape(op, q.shape(), k.shape(), format!("q, k and v are {layout}, k and v alike")));
    }
    // (batch, heads, tokens, head dim) of a tensor in this layout
    let split = |s: &[usize]| if token_major { (s[0], s[2], s[1], s[3]) } else { (s[0], s[1], s[2], s[3]) };
    let (b, h, nq, dh) = split(q.shape());
    let (kb, kh, k_rows, kd) = split(k.shape());
    if kb != b || kh != h || kd != dh {
        return Err(Error::shape(op, q.shape(), k.shape(), "batch, heads and head dimension must agree"));
    }
    if dh == 0 || dh > MAX_HEAD_DIM {
        return Err(Error::invalid(op, format!("head dimension {dh} must be in 1..={MAX_HEAD_DIM}")));
    }
    let nk = nk.unwrap_or(k_rows);
    if nk > k_rows {
        return Err(Error::invalid(op, format!("{nk} keys in use but the cache holds {k_rows}")));
    }
    Ok(Dims { b, h, nq, nk, k_rows, dh, token_major })
}

fn imm(d: &Dims, o: &AttentionOptions) -> Result<Imm> {
    let u = |v: usize| u32::try_from(v).map_err(|_| Error::invalid("flash_attention", "sizes too large"));
    u(d.b * d.h * d.nq.max(d.k_rows) * d.dh)?;
    Ok(Imm::default()
        .u(u(d.b * d.h)?)
        .u(u(d.h)?)
        .u(u(d.nq)?)
        .u(u(d.nk)?)
        // between (batch·head) slices, or between batches when token-major
        .u(u(d.nq * d.row_stride())?)
        .u(u(d.k_rows * d.row_stride())?)
        .u(u(o.block_causal.unwrap_or(1))?)
        .u(u(o.q_offset)?)
        .f(o.scale))
}

/// A resolved kernel: the shader, its overrides and the rows one workgroup covers.
struct Launch {
    shader: &'static Shader,
    overrides: Vec<(&'static str, f64)>,
    /// Rows (queries or keys) one workgroup covers.
    rows: usize,
    /// The subgroup kernel, whose entry points reference more bindings than they use.
    subgroup: bool,
}

impl Launch {
    /// Runs `entry` (`forward`, `backward_dq` or `backward_dkv`) over `rows` rows of every
    /// (batch, head) slice.
    fn run(
        &self,
        gpu: &Gpu,
        entry: &'static str,
        used: &[(u32, &Tensor)],
        imm: &Imm,
        d: &Dims,
        rows: usize,
    ) -> Result<()> {
        let mut all = used.to_vec();
        if self.subgroup {
            // The subgroup kernel's entry points reference all of bindings 0..=10 but the
            // statistics the other pass owns (7 in `forward`, 5 in the backward): slots an entry
            // does not use are bound to a buffer it binds already (q for the read-only ones, its
            // first output for the writable ones), which it never touches through them.
            let q = used[0].1;
            let out = used.iter().find(|(s, _)| [4, 8, 9].contains(s)).map_or(q, |&(_, t)| t);
            let other_pass = if entry == "forward" { 7 } else { 5 };
            for slot in (4..=10).filter(|&s| s != other_pass) {
                if !used.iter().any(|(s, _)| *s == slot) {
                    all.push((slot, if matches!(slot, 6 | 7) { q } else { out }));
                }
            }
        }
        let groups = rows.div_ceil(self.rows).max(1);
        if groups > gpu.inner.limits.max_compute_workgroups_per_dimension as usize {
            let msg = format!("{rows} tokens need {groups} workgroups of {}, more than the grid allows", self.rows);
            return Err(Error::invalid("flash_attention", msg));
        }
        launch(gpu, self.shader, entry, &self.overrides, &all, imm, [groups as u32, (d.b * d.h) as u32, 1])
    }
}

fn base_overrides(d: &Dims, o: &AttentionOptions) -> Vec<(&'static str, f64)> {
    let mask = if o.block_causal.is_some() { 1.0 } else { 0.0 };
    vec![("DH", d.dh as f64), ("MASK", mask), ("RS", d.row_stride() as f64)]
}

fn resolve(gpu: &Gpu, d: &Dims, o: &AttentionOptions, kernel: FlashKernel) -> Result<Launch> {
    let mut overrides = base_overrides(d, o);
    let lanes = super::matmul::subgroup_lanes(gpu);
    match (kernel, lanes) {
        (FlashKernel::Tiled, _) | (FlashKernel::Auto, None) => {
            check_fits(d, gpu, FlashKernel::Tiled)?;
            Ok(Launch { shader: &FLASH_ATTENTION, overrides, rows: TILE, subgroup: false })
        }
        (FlashKernel::Subgroup, Some(sg)) => {
            check_fits(d, gpu, FlashKernel::Subgroup)?;
            overrides.push(("SG", sg as f64));
            Ok(Launch { shader: &FLASH_ATTENTION_SUBGROUP, overrides, rows: 4 * sg as usize, subgroup: true })
        }
        (FlashKernel::Auto, Some(_)) if !kernel_fits(gpu, FlashKernel::Tiled, d.nq.max(d.k_rows), d.dh) => {
            resolve(gpu, d, o, FlashKernel::Subgroup)
        }
        (FlashKernel::Subgroup, None) => Err(Error::invalid(
            "flash_attention",
            format!(
                "the subgroup kernel needs one fixed subgroup size of 4 to 64 lanes, which {} does not report; \
                 use FlashKernel::Tiled or Auto",
                gpu.adapter().name
            ),
        )),
        (FlashKernel::Auto, Some(_)) => {
            let candidates =
                [("subgroup".to_string(), FlashKernel::Subgroup), ("tiled".to_string(), FlashKernel::Tiled)];
            // not the key count: a KV cache grows every frame of a rollout, and each new class
            // would be measured again
            let class = format!(
                "bh{} q{} d{} blk{}",
                bucket(d.b * d.h),
                bucket(d.nq),
                d.dh,
                o.block_causal.map_or(0, |b| b.min(64))
            );
            let (qd, kd) = d.shapes();
            let pick = gpu.tune("flash_attention", &class, &candidates, 0, |&kernel| {
                let t = |s: &[usize]| Tensor::zeros(gpu, s, DType::F32);
                let opts = AttentionOptions { kernel, ..o.clone() };
                forward(&t(&qd)?, &t(&kd)?, &t(&kd)?, d, &opts).map(drop)
            })?;
            resolve(gpu, d, o, pick)
        }
    }
}

/// Whether the flash kernel the rules pick (the subgroup kernel where it applies) can attend
/// over `tokens` keys (or queries) of head dimension `dh` on this adapter; see [`kernel_fits`].
pub fn fits(gpu: &Gpu, tokens: usize, dh: usize) -> bool {
    let k = if super::matmul::subgroup_lanes(gpu).is_some() { FlashKernel::Subgroup } else { FlashKernel::Tiled };
    kernel_fits(gpu, k, tokens, dh)
}

/// Whether `kernel` can attend over `tokens` keys (or queries) of head dimension `dh` on this
/// adapter. Mesa's software drivers stop an invocation's loops after a fixed budget of passes
/// ([`LOOP_BUDGET`](super::LOOP_BUDGET)); one invocation loops over every key (forward, dq) or
/// query (dk/dv) tile of 16. The tiled kernel spends about 33 passes per head channel and tile
/// when its channel loops are not unrolled (more than 32 channels; measured wrong from 512 keys
/// at 64), about 128 when they are (measured correct up to 4,096 keys at 16 and 32); the
/// subgroup kernel has every inner loop written out and spends one pass per tile.
pub fn kernel_fits(gpu: &Gpu, kernel: FlashKernel, tokens: usize, dh: usize) -> bool {
    let per_tile = match kernel {
        FlashKernel::Subgroup => 1,
        _ if dh > 32 => 33 * (dh + 1),
        _ => 128,
    };
    !gpu.loop_capped() || tokens.div_ceil(16) * per_tile + 16 <= super::LOOP_BUDGET
}

fn check(d: &Dims, o: &AttentionOptions, gpu: &Gpu) -> Result<()> {
    let op = "flash_attention";
    if o.block_causal == Some(0) {
        return Err(Error::invalid(op, "a block-causal mask needs blocks of at least one token"));
    }
    if !o.scale.is_finite() {
        return Err(Error::invalid(op, format!("scale {} is not finite", o.scale)));
    }
    let max = gpu.inner.limits.max_compute_workgroups_per_dimension as usize;
    if d.b * d.h > max {
        return Err(Error::invalid(op, format!("B·H = {} exceeds the workgroup grid ({max})", d.b * d.h)));
    }
    Ok(())
}

/// The loop budget of software drivers (see [`kernel_fits`]).
fn check_fits(d: &Dims, gpu: &Gpu, kernel: FlashKernel) -> Result<()> {
    let op = "flash_attention";
    if !kernel_fits(gpu, kernel, d.nq.max(d.k_rows), d.dh) {
        return Err(Error::invalid(
            op,
            format!(
                "{} tokens with head dimension {} need more loop passes in one invocation than {} runs \
                 (its loops stop silently after 65,535); use the plain attention path (AttentionPath::Plain), \
                 fewer tokens, or a GPU",
                d.nq.max(d.k_rows),
                d.dh,
                gpu.adapter().name,
            ),
        ));
    }
    Ok(())
}

/// The key lengths of every batch as a tensor.
fn key_lens(d: &Dims, o: &AttentionOptions, gpu: &Gpu) -> Result<Tensor> {
    let op = "flash_attention";
    let lens = match &o.key_lens {
        Some(l) if l.len() != d.b => {
            return Err(Error::invalid(op, format!("{} key lengths for a batch of {}", l.len(), d.b)));
        }
        Some(l) => l.iter().map(|&n| n.min(d.nk as u32)).collect(),
        None => vec![d.nk as u32; d.b],
    };
    Tensor::from_u32(gpu, &lens, &[d.b])
}

fn forward(q: &Tensor, k: &Tensor, v: &Tensor, d: &Dims, opts: &AttentionOptions) -> Result<(Tensor, Tensor)> {
    let gpu = q.gpu();
    check(d, opts, gpu)?;
    let lens = key_lens(d, opts, gpu)?;
    let o = Tensor::empty(gpu, q.shape(), DType::F32)?;
    let stats = Tensor::empty(gpu, &[2 * d.b * d.h * d.nq.max(1)], DType::F32)?;
    if d.nq > 0 {
        let used = [(0, q), (1, k), (2, v), (3, &lens), (4, &o), (5, &stats)];
        resolve(gpu, d, opts, opts.kernel)?.run(gpu, "forward", &used, &imm(d, opts)?, d, d.nq)?;
    }
    Ok((o, stats))
}

/// Attention of q `[B, H, Nq, dh]` over k, v `[B, H, Nk, dh]` (or all `[B, N, H, dh]` with
/// `opts.token_major`): `(o` shaped like q`, stats)`,
/// where `stats` holds the row log-sum-exps the backward needs.
pub fn flash_attention(q: &Tensor, k: &Tensor, v: &Tensor, opts: &AttentionOptions) -> Result<(Tensor, Tensor)> {
    forward(q, k, v, &dims(q, k, v, None, opts.token_major)?, opts)
}

/// Decoding step: attention of q `[B, H, Nq, dh]` over the first `len` rows of a KV cache
/// `[B, H, capacity, dh]` (no copy of the cache). With a block-causal mask, set
/// `opts.q_offset` to the position of the first query in the sequence.
pub fn flash_attention_cached(
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    len: usize,
    opts: &AttentionOptions,
) -> Result<Tensor> {
    if opts.token_major {
        return Err(Error::invalid("flash_attention_cached", "the KV cache is head-major: token_major must be false"));
    }
    Ok(forward(q, k_cache, v_cache, &dims(q, k_cache, v_cache, Some(len), false)?, opts)?.0)
}

/// Gradients (dq, dk, dv) of [`flash_attention`] given its output `o`, `stats` and `dout`.
pub fn flash_attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    o: &Tensor,
    stats: &Tensor,
    dout: &Tensor,
    opts: &AttentionOptions,
) -> Result<(Tensor, Tensor, Tensor)> {
    let d = dims(q, k, v, None, opts.token_major)?;
    if dout.shape() != q.shape() || o.shape() != q.shape() {
        return Err(Error::shape("flash_attention", dout.shape(), q.shape(), "dout and o are shaped like q"));
    }
    let gpu = q.gpu();
    check(&d, opts, gpu)?;
    let lens = key_lens(&d, opts, gpu)?;
    let zeros = |t: &Tensor| Tensor::zeros(gpu, t.shape(), DType::F32);
    if d.nq == 0 || d.nk == 0 {
        return Ok((zeros(q)?, zeros(k)?, zeros(v)?));
    }
    let empty = |t: &Tensor| Tensor::empty(gpu, t.shape(), DType::F32);
    let (dq, dk, dv) = (empty(q)?, empty(k)?, empty(v)?);
    let im = imm(&d, opts)?;
    let l = resolve(gpu, &d, opts, opts.kernel)?;
    launch(
        gpu,
        &FLASH_ATTENTION,
        "delta",
        &base_overrides(&d, opts),
        &[(6, dout), (11, o), (5, stats)],
        &im,
        gpu.grid_1d((d.b * d.h * d.nq) as u64, 64),
    )?;
    let common = [(0, q), (1, k), (2, v), (3, &lens), (6, dout), (7, stats)];
    let mut b = common.to_vec();
    b.push((8, &dq));
    l.run(gpu, "backward_dq", &b, &im, &d, d.nq)?;
    let mut b = common.to_vec();
    b.extend([(9, &dk), (10, &dv)]);
    l.run(gpu, "backward_dkv", &b, &im, &d, d.nk)?;
    Ok((dq, dk, dv))
}

impl Var {
    /// Differentiable flash attention: `self` is q `[B, H, Nq, dh]`, k and v `[B, H, Nk, dh]`
    /// (or `[B, N, H, dh]` each with `opts.token_major`).
    pub fn flash_attention(&self, k: &Var, v: &Var, opts: &AttentionOptions) -> Result<Var> {
        let (q_t, k_t, v_t) = (self.tensor().clone(), k.tensor().clone(), v.tensor().clone());
        let (o, stats) = flash_attention(&q_t, &k_t, &v_t, opts)?;
        let (o_saved, opts) = (o.clone(), opts.clone());
        self.tape().record(o, &[self, k, v], move |dout| {
            let (dq, dk, dv) = flash_attention_backward(&q_t, &k_t, &v_t, &o_saved, &stats, dout, &opts)?;
            Ok(vec![Some(dq), Some(dk), Some(dv)])
        })
    }
}
