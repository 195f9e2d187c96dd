//! Batched matrix multiply with optional transposes and bias (`shaders/matmul.wgsl` and
//! `shaders/matmul_subgroup.wgsl`).
//!
//! Three kernels: `matmul`, register-blocked with `override` tile sizes, for any shape on any
//! adapter; `matmul_smem`, staging tiles in workgroup memory, for large products on GPUs; and
//! `matmul_sg`, for adapters with subgroups of one fixed size from 4 to 64 lanes, which
//! share rows of A across lanes by subgroup broadcast (on 8-lane lavapipe about 2× faster than
//! the best of the others).
//! [`MatmulKernel::auto`] picks one per call.

use super::{Imm, launch};
use crate::autodiff::Var;
use crate::error::{Error, Result};
use crate::gpu::kernels::{MATMUL, MATMUL_SUBGROUP};
use crate::gpu::tune::bucket;
use crate::gpu::{DType, Gpu, Tensor};

/// Tile sizes of the register-blocked kernel (its `override` constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulTiles {
    /// Rows of C per invocation (4 or 8).
    pub tm: u32,
    /// Columns of C per invocation (4 or 8).
    pub tn: u32,
    /// Invocations per workgroup along N.
    pub wg_x: u32,
    /// Invocations per workgroup along M.
    pub wg_y: u32,
}

impl MatmulTiles {
    /// The tiles for this adapter (`cargo bench --bench kernels -- --sweep` measures the others).
    pub fn for_gpu(gpu: &Gpu) -> MatmulTiles {
        if gpu.is_cpu() {
            // Best of the lavapipe sweep (README).
            MatmulTiles { tm: 8, tn: 8, wg_x: 32, wg_y: 2 }
        } else {
            // 128 × 128 outputs per workgroup, 8 × 8 per invocation: the usual GPU shape.
            MatmulTiles { tm: 8, tn: 8, wg_x: 16, wg_y: 16 }
        }
    }

    fn check(&self, gpu: &Gpu) -> Result<()> {
        let ok_t = |t: u32| t == 4 || t == 8;
        if !ok_t(self.tm) || !ok_t(self.tn) || self.wg_x == 0 || self.wg_y == 0 {
            return Err(Error::invalid(
                "matmul",
                format!("tiles {self:?}: tm and tn must be 4 or 8, workgroup sides > 0"),
            ));
        }
        let threads = self.wg_x * self.wg_y;
        let max = gpu.adapter().limits.max_compute_invocations_per_workgroup;
        if threads > max {
            return Err(Error::invalid(
                "matmul",
                format!("tiles {self:?}: {threads} invocations exceed the device's {max}"),
            ));
        }
        Ok(())
    }
}

/// Which matmul kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulKernel {
    /// Register-blocked, any shape.
    Tiled(MatmulTiles),
    /// Workgroup-memory kernel (128 × 128 blocks, 256 invocations, vec4 loads, double-buffered
    /// 16 KiB of workgroup memory): any shape, for GPUs.
    Shared,
    /// Subgroup-broadcast kernel: needs subgroups of one fixed size from 4 to 64 lanes
    /// ([`subgroup_lanes`]), K % 4 == 0 and N % 4 == 0. `cn` (1 or 2) is the number of
    /// 4-column groups per lane.
    Subgroup { cn: u32 },
}

impl MatmulKernel {
    /// The built-in rule for an (M, N, K) product on this adapter (the autotuner's fallback):
    /// the subgroup kernel where it applies on CPU adapters, the workgroup-memory kernel for large products on GPUs, the register-blocked
    /// kernel otherwise.
    pub fn auto(gpu: &Gpu, m: usize, n: usize, k: usize) -> MatmulKernel {
        if gpu.is_cpu() && subgroup_lanes(gpu).is_some() && n.is_multiple_of(4) && k.is_multiple_of(4) {
            MatmulKernel::Subgroup { cn: 2 }
        } else if !gpu.is_cpu() && m >= 128 && n >= 128 && k >= 32 {
            MatmulKernel::Shared
        } else {
            MatmulKernel::Tiled(MatmulTiles::for_gpu(gpu))
        }
    }
}

impl MatmulKernel {
    /// A short name (the autotuner's and the benches').
    pub fn name(&self) -> String {
        match self {
            MatmulKernel::Tiled(t) => format!("tiled-{}x{}-wg{}x{}", t.tm, t.tn, t.wg_x, t.wg_y),
            MatmulKernel::Shared => "shared-128x128".into(),
            MatmulKernel::Subgroup { cn } => format!("subgroup-cn{cn}"),
        }
    }

    /// The kernels that can compute an (M, N, K) product on this adapter, and the index of the
    /// one the built-in rule ([`MatmulKernel::auto`]) picks.
    pub fn candidates(gpu: &Gpu, m: usize, n: usize, k: usize) -> (usize, Vec<(String, MatmulKernel)>) {
        let mut v = Vec::new();
        if subgroup_lanes(gpu).is_some() && n.is_multiple_of(4) && k.is_multiple_of(4) {
            v.extend([MatmulKernel::Subgroup { cn: 2 }, MatmulKernel::Subgroup { cn: 1 }]);
        }
        let tiles = MatmulTiles::for_gpu(gpu);
        v.push(MatmulKernel::Tiled(tiles));
        let small = MatmulTiles { tm: 4, tn: 4, wg_x: 16, wg_y: 16 };
        if small != tiles && small.check(gpu).is_ok() {
            v.push(MatmulKernel::Tiled(small));
        }
        v.push(MatmulKernel::Shared);
        let rule = MatmulKernel::auto(gpu, m, n, k);
        let at = v.iter().position(|c| *c == rule).unwrap_or(0);
        (at, v.into_iter().map(|c| (c.name(), c)).collect())
    }
}

/// The subgroup size when the subgroup kernels can run on this adapter: subgroups of one fixed
/// size that is a power of two from 4 to 64.
pub fn subgroup_lanes(gpu: &Gpu) -> Option<u32> {
    gpu.subgroup_size().filter(|s| s.is_power_of_two() && (4..=64).contains(s))
}

/// Splits `[.., r, c]` into (batch, r, c).
fn batch_rc(op: &str, t: &Tensor) -> Result<(usize, usize, usize)> {
    let s = t.shape();
    if s.len() < 2 {
        return Err(Error::invalid(op, format!("operands need rank >= 2, got shape {s:?}")));
    }
    let batch = s[..s.len() - 2].iter().product();
    Ok((batch, s[s.len() - 2], s[s.len() - 1]))
}

/// `op(a) · op(b) (+ bias)` over the leading (batch) dimensions, with the best kernel.
///
/// `a` is `[.., M, K]` (`[.., K, M]` when `trans_a`), `b` is `[.., K, N]` (`[.., N, K]` when
/// `trans_b`), `bias` is `[N]`. Batch dimensions must be equal, or one side has batch 1 (or
/// none) and is shared. The result is `[batch dims.., M, N]`.
pub fn matmul(a: &Tensor, b: &Tensor, bias: Option<&Tensor>, trans_a: bool, trans_b: bool) -> Result<Tensor> {
    if let Some(c) = split_inner_dimension(a, b, bias, trans_a, trans_b)? {
        return Ok(c);
    }
    if let Some((a, b)) = pad_inner_dimension(a, b, trans_a, trans_b)? {
        return matmul(&a, &b, bias, trans_a, trans_b);
    }
    if let Some(c) = narrow_output_swapped(a, b, bias, trans_a, trans_b)? {
        return Ok(c);
    }
    matmul_with(a, b, bias, trans_a, trans_b, None)
}

/// Aᵀ·B with a long inner dimension and a small result (the weight gradient of a linear or
/// convolution layer: K = every row of a batch) gives too few workgroups to use the cores.
/// Splitting K into S blocks, multiplying them as a batch and summing the S partial products
/// (a fixed order) spreads the work. When K does not split evenly into blocks of a multiple of
/// 4 (as the subgroup kernel wants), the last few rows make one more small product. Both
/// operands must be plain matrices stored `[K, ..]`.
fn split_inner_dimension(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    trans_a: bool,
    trans_b: bool,
) -> Result<Option<Tensor>> {
    if !trans_a
        || trans_b
        || a.rank() != 2
        || b.rank() != 2
        || bias.is_some()
        || a.dtype() != DType::F32
        || b.dtype() != DType::F32
    {
        return Ok(None);
    }
    let (k, m, n) = (a.shape()[0], a.shape()[1], b.shape()[1]);
    if b.shape()[0] != k || m * n > 256 * 256 {
        return Ok(None);
    }
    let Some(s) = [16usize, 8, 4].into_iter().find(|s| k / s >= 4096) else {
        return Ok(None);
    };
    let main = k / (4 * s) * (4 * s);
    let (am, bm) =
        if main == k { (a.clone(), b.clone()) } else { (super::slice(a, 0, 0, main)?, super::slice(b, 0, 0, main)?) };
    let parts = matmul(&am.reshape(&[s, main / s, m])?, &bm.reshape(&[s, main / s, n])?, None, true, false)?;
    let sum = super::sum(&parts, 0, false)?;
    if main == k {
        return Ok(Some(sum));
    }
    let rest = matmul_with(&super::slice(a, 0, main, k)?, &super::slice(b, 0, main, k)?, None, true, false, None)?;
    Ok(Some(super::add(&sum, &rest)?))
}

/// Whether the operands may be rewritten for the subgroup kernel (a CPU adapter with
/// fixed-size subgroups, f32 matrices).
fn subgroup_rewrite_applies(a: &Tensor, b: &Tensor) -> bool {
    a.gpu().is_cpu()
        && subgroup_lanes(a.gpu()).is_some()
        && a.rank() >= 2
        && b.rank() >= 2
        && a.dtype() == DType::F32
        && b.dtype() == DType::F32
}

/// On CPU adapters with subgroups the fast kernel needs K % 4 == 0; for large products with a
/// ragged K (an im2col matrix of 7 × 7 taps on one channel: K = 49), zero-padding both operands
/// along K costs one copy each and is far cheaper than the general kernel's scalar path.
fn pad_inner_dimension(a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Result<Option<(Tensor, Tensor)>> {
    if !subgroup_rewrite_applies(a, b) {
        return Ok(None);
    }
    let (ra, rb) = (a.rank(), b.rank());
    let k_axis_a = if trans_a { ra - 2 } else { ra - 1 };
    let k_axis_b = if trans_b { rb - 1 } else { rb - 2 };
    let gpu = a.gpu();
    let k = a.shape()[k_axis_a];
    if k.is_multiple_of(4) || k != b.shape()[k_axis_b] || a.numel() / k.max(1) < 1024 {
        return Ok(None);
    }
    let pad = 4 - k % 4;
    let zeros_like = |t: &Tensor, axis: usize| -> Result<Tensor> {
        let mut s = t.shape().to_vec();
        s[axis] = pad;
        Tensor::zeros(gpu, &s, DType::F32)
    };
    let ap = super::concat(&[a, &zeros_like(a, k_axis_a)?], k_axis_a)?;
    let bp = super::concat(&[b, &zeros_like(b, k_axis_b)?], k_axis_b)?;
    Ok(Some((ap, bp)))
}

/// On CPU adapters with subgroups a product with few output columns (N < 32) wastes most lanes
/// of the subgroup kernel, whose workgroup covers 64 columns. Computing Cᵀ = op(B)ᵀ·op(A)ᵀ
/// (M columns) and transposing back is faster there (`None`: not worth it or not applicable).
fn narrow_output_swapped(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    trans_a: bool,
    trans_b: bool,
) -> Result<Option<Tensor>> {
    if !subgroup_rewrite_applies(a, b) {
        return Ok(None);
    }
    let (ar, ac) = (a.shape()[a.rank() - 2], a.shape()[a.rank() - 1]);
    let (br, bc) = (b.shape()[b.rank() - 2], b.shape()[b.rank() - 1]);
    let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
    let n = if trans_b { br } else { bc };
    // also when N is ragged: the general kernel is then far slower than a transposed subgroup product
    let worth = n < 32 && (m >= 128 || n % 4 != 0) && m % 4 == 0 && k % 4 == 0 && k == if trans_b { bc } else { br };
    if !worth {
        return Ok(None);
    }
    let ct = matmul_with(b, a, None, !trans_b, !trans_a, None)?;
    let c = super::transpose(&ct, ct.rank() - 2, ct.rank() - 1)?;
    Ok(Some(match bias {
        None => c,
        Some(bias) => {
            if bias.shape() != [n] {
                return Err(Error::shape("matmul", bias.shape(), &[n], "bias must be [N]"));
            }
            super::add(&c, bias)?
        }
    }))
}

/// `matmul` with an explicit kernel (`None` = [`MatmulKernel::auto`]).
pub fn matmul_with(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    trans_a: bool,
    trans_b: bool,
    kernel: Option<MatmulKernel>,
) -> Result<Tensor> {
    let op = "matmul";
    a.expect_dtype(op, DType::F32)?;
    b.expect_dtype(op, DType::F32)?;
    let gpu = a.gpu();
    let (ba, ar, ac) = batch_rc(op, a)?;
    let (bb, br, bc) = batch_rc(op, b)?;
    let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if trans_b { (bc, br) } else { (br, bc) };
    if k != kb {
        return Err(Error::shape(
            op,
            a.shape(),
            b.shape(),
            format!(
                "inner dimensions differ: K = {k} for a (trans_a = {trans_a}) and {kb} for b (trans_b = {trans_b})"
            ),
        ));
    }
    let a_batch = &a.shape()[..a.rank() - 2];
    let b_batch = &b.shape()[..b.rank() - 2];
    let out_batch: Vec<usize> = if a_batch == b_batch || bb == 1 {
        a_batch.to_vec()
    } else if ba == 1 {
        b_batch.to_vec()
    } else {
        return Err(Error::shape(op, a.shape(), b.shape(), "batch dimensions differ and neither is 1"));
    };
    let batch: usize = out_batch.iter().product();
    if let Some(bias) = bias {
        bias.expect_dtype(op, DType::F32)?;
        if bias.shape() != [n] {
            return Err(Error::shape(op, bias.shape(), &[n], "bias must be [N]"));
        }
    }
    if k > MAX_K {
        return split_long_k(a, b, bias, trans_a, trans_b, kernel, k);
    }
    let kernel = match kernel {
        Some(k) => k,
        None => {
            let (rule, candidates) = MatmulKernel::candidates(gpu, m, n, k);
            let class = format!(
                "{}x{}x{} b{} t{}{}{}",
                bucket(m),
                bucket(n),
                bucket(k),
                bucket(batch),
                trans_a as u8,
                trans_b as u8,
                if n % 4 == 0 && k % 4 == 0 { " v4" } else { "" }
            );
            gpu.tune(op, &class, &candidates, rule, |&c| matmul_with(a, b, bias, trans_a, trans_b, Some(c)).map(drop))?
        }
    };
    match kernel {
        MatmulKernel::Tiled(t) => t.check(gpu)?,
        MatmulKernel::Shared => {}
        MatmulKernel::Subgroup { cn } => {
            if subgroup_lanes(gpu).is_none() || n % 4 != 0 || k % 4 != 0 || !(cn == 1 || cn == 2) {
                return Err(Error::invalid(
                    op,
                    format!(
                        "the Subgroup kernel needs subgroups of one size from 4 to 64 lanes (adapter: {:?}), \
                         N % 4 == 0 and K % 4 == 0 (N = {n}, K = {k}) and cn 1 or 2 (got {cn})",
                        gpu.subgroup_size()
                    ),
                ));
            }
        }
    }
    let mut out_shape = out_batch;
    out_shape.extend([m, n]);
    let c = Tensor::empty(gpu, &out_shape, DType::F32)?;
    if m == 0 || n == 0 {
        return Ok(c);
    }
    if k == 0 {
        // An empty sum: zeros, plus the bias broadcast over the rows.
        super::fill(&c, 0.0)?;
        return match bias {
            None => Ok(c),
            Some(bias) => super::add(&c, bias),
        };
    }
    let big = |v: usize| u32::try_from(v).map_err(|_| Error::invalid(op, format!("dimension {v} is too large")));
    big(a.numel())?;
    big(b.numel())?;
    big(c.numel())?;
    let sa = if ba == 1 && batch > 1 { 0 } else { big(m * k)? };
    let sb = if bb == 1 && batch > 1 { 0 } else { big(k * n)? };
    let imm = Imm::default().u(big(m)?).u(big(n)?).u(big(k)?).u(0).u(sa).u(sb).u(big(m * n)?).u(0);
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    // Without a bias the shader reads nothing from its bias binding; bind `a` there.
    let bias_t = bias.unwrap_or(a);
    // whether rows of A and B (as stored) can be read as aligned vec4s
    let vec_a = k % 4 == 0 && (!trans_a || m % 4 == 0);
    let vec_b = k % 4 == 0 && (trans_b || n % 4 == 0);
    match kernel {
        MatmulKernel::Tiled(tiles) => {
            let overrides = [
                ("TM", tiles.tm as f64),
                ("TN", tiles.tn as f64),
                ("WG_X", tiles.wg_x as f64),
                ("WG_Y", tiles.wg_y as f64),
                ("TRANS_A", flag(trans_a)),
                ("TRANS_B", flag(trans_b)),
                ("VEC_A", flag(vec_a)),
                ("VEC_B", flag(vec_b)),
                ("HAS_BIAS", flag(bias.is_some())),
            ];
            let gx = n.div_ceil((tiles.tn * tiles.wg_x) as usize);
            let gy = m.div_ceil((tiles.tm * tiles.wg_y) as usize);
            let groups = [big(gx)?, big(gy)?, big(batch)?];
            launch(gpu, &MATMUL, "matmul", &overrides, &[(0, a), (1, b), (2, bias_t), (3, &c)], &imm, groups)?;
        }
        MatmulKernel::Shared => {
            let overrides = [
                ("TRANS_A", flag(trans_a)),
                ("TRANS_B", flag(trans_b)),
                ("VEC_A", flag(vec_a)),
                ("VEC_B", flag(vec_b)),
                ("HAS_BIAS", flag(bias.is_some())),
            ];
            let groups = [big(n.div_ceil(128))?, big(m.div_ceil(128))?, big(batch)?];
            let bindings = [(0, a), (1, b), (2, bias_t), (3, &c)];
            launch(gpu, &MATMUL, "matmul_smem", &overrides, &bindings, &imm, groups)?;
        }
        MatmulKernel::Subgroup { cn } => {
            let sg = subgroup_lanes(gpu).unwrap_or(8);
            let overrides = [
                ("CN", cn as f64),
                ("SG", sg as f64),
                ("TRANS_A", flag(trans_a)),
                ("TRANS_B", flag(trans_b)),
                ("HAS_BIAS", flag(bias.is_some())),
            ];
            let cols = 4 * sg as usize * cn as usize;
            let groups = [big(n.div_ceil(cols))?, big(m.div_ceil(16))?, big(batch)?];
            let bindings = [(0, a), (1, b), (2, bias_t), (3, &c), (4, a)];
            launch(gpu, &MATMUL_SUBGROUP, "matmul_sg", &overrides, &bindings, &imm, groups)?;
        }
    }
    Ok(c)
}

/// The longest inner dimension one launch takes: every kernel loops over K in one invocation,
/// at most K passes (the tiled kernel), within the loop budget of software drivers.
const MAX_K: usize = super::LOOP_BUDGET / 2;

/// `matmul_with` for K > [`MAX_K`]: products of K-blocks of at most `MAX_K`, added in order
/// (then the bias).
fn split_long_k(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    trans_a: bool,
    trans_b: bool,
    kernel: Option<MatmulKernel>,
    k: usize,
) -> Result<Tensor> {
    let (ka, kb) =
        (if trans_a { a.rank() - 2 } else { a.rank() - 1 }, if trans_b { b.rank() - 1 } else { b.rank() - 2 });
    let mut acc: Option<Tensor> = None;
    for k0 in (0..k).step_by(MAX_K) {
        let k1 = (k0 + MAX_K).min(k);
        let part =
            matmul_with(&super::slice(a, ka, k0, k1)?, &super::slice(b, kb, k0, k1)?, None, trans_a, trans_b, kernel)?;
        acc = Some(match acc {
            None => part,
            Some(sum) => super::add(&sum, &part)?,
        });
    }
    let c = acc.ok_or_else(|| Error::invalid("matmul", "empty inner dimension"))?;
    match bias {
        None => Ok(c),
        Some(bias) => super::add(&c, bias),
    }
}

/// Sums a batched gradient `[batch.., r, c]` down to an operand's own shape (shared operands
/// have batch 1 or no batch dimensions).
fn to_operand_shape(g: Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g);
    }
    let (r, c) = (g.shape()[g.rank() - 2], g.shape()[g.rank() - 1]);
    let summed = super::sum(&g.reshape(&[g.numel() / (r * c), r, c])?, 0, false)?;
    summed.reshape(shape)
}

impl Var {
    /// Differentiable [`matmul`]: `op(self) · op(b) (+ bias)`.
    pub fn matmul(&self, b: &Var, bias: Option<&Var>, trans_a: bool, trans_b: bool) -> Result<Var> {
        let y = matmul(self.tensor(), b.tensor(), bias.map(|v| v.tensor()), trans_a, trans_b)?;
        let (at, bt) = (self.tensor().clone(), b.tensor().clone());
        let (need_a, need_b) = (self.requires_grad(), b.requires_grad());
        let n = y.shape()[y.rank() - 1];
        let mut inputs = vec![self, b];
        if let Some(bias) = bias {
            inputs.push(bias);
        }
        let need_bias = bias.is_some_and(|v| v.requires_grad());
        self.tape().record(y, &inputs, move |g| {
            // dA and dB for the four transpose cases: with C = op(A)·op(B), dop(A) = dC·op(B)ᵀ and
            // dop(B) = op(A)ᵀ·dC, transposed back when the operand is stored transposed.
            let da = if !need_a {
                None
            } else {
                let d = match (trans_a, trans_b) {
                    (false, false) => matmul(g, &bt, None, false, true)?,
                    (false, true) => matmul(g, &bt, None, false, false)?,
                    (true, false) => matmul(&bt, g, None, false, true)?,
                    (true, true) => matmul(&bt, g, None, true, true)?,
                };
                Some(to_operand_shape(d, at.shape())?)
            };
            let db = if !need_b {
                None
            } else {
                let d = match (trans_a, trans_b) {
                    (false, false) => matmul(&at, g, None, true, false)?,
                    (false, true) => matmul(g, &at, None, true, false)?,
                    (true, false) => matmul(&at, g, None, false, false)?,
                    (true, true) => matmul(g, &at, None, true, true)?,
                };
                Some(to_operand_shape(d, bt.shape())?)
            };
            let mut out = vec![da, db];
            if need_bias {
                out.push(Some(super::sum(&g.reshape(&[g.numel() / n, n])?, 0, false)?));
            }
            Ok(out)
        })
    }
}
