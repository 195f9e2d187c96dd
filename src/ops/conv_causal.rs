//! Causal space-time convolution. On adapters with subgroups of one size (8 to 64 lanes) an implicit GEMM
//! (`shaders/conv_causal_subgroup.wgsl`) computes the forward, dx and dw without an im2col
//! matrix; elsewhere (`shaders/conv_causal.wgsl`) im2col, then the matmul kernels, backward
//! through col2im (the adjoint gather) and the matmul backward, or for layers with few channels
//! direct kernels for the forward, dx and dw (see [`ConvMethod`]). Data are channels-last
//! `[B, T, S.., C]` with one or two spatial axes; weights `[kt·ks^ns·C_in, C_out]`. The input
//! gradient is skipped when the input needs none (the data of the first layer).

use super::{Imm, LOOP_BUDGET, launch};
use crate::autodiff::Var;
use crate::error::{Error, Result};
use crate::gpu::kernels::{CONV_CAUSAL, CONV_CAUSAL_SUBGROUP, CONV_CAUSAL_TILED};
use crate::gpu::tune::bucket;
use crate::gpu::{DType, Gpu, Tensor};

/// Kernel sizes and strides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Taps in time (causal).
    pub kt: usize,
    /// Taps per spatial axis (odd: "same" padding).
    pub ks: usize,
    /// Stride in time.
    pub st: usize,
    /// Stride in space.
    pub ss: usize,
}

impl ConvSpec {
    pub fn new(kt: usize, ks: usize, st: usize, ss: usize) -> ConvSpec {
        ConvSpec { kt, ks, st, ss }
    }

    /// Rows of the weight matrix for `c_in` input channels and `ns` spatial axes.
    pub fn weight_rows(&self, c_in: usize, ns: usize) -> usize {
        self.kt * self.ks.pow(ns as u32) * c_in
    }

    /// A 1×1×1 kernel with unit strides: the convolution is a plain matmul.
    pub fn is_pointwise(&self) -> bool {
        self.kt == 1 && self.ks == 1 && self.st == 1 && self.ss == 1
    }

    /// Output frames for `t` input frames: ⌊(t − 1)/st⌋ + 1.
    pub fn out_frames(&self, t: usize) -> usize {
        if t == 0 { 0 } else { (t - 1) / self.st + 1 }
    }

    /// Output points along a spatial axis of `s` points: ⌈s/ss⌉.
    pub fn out_points(&self, s: usize) -> usize {
        s.div_ceil(self.ss)
    }
}

struct Geometry {
    b: usize,
    t: usize,
    s: [usize; 2],
    c: usize,
    ns: usize,
    to: usize,
    o: [usize; 2],
}

fn geometry(x: &Tensor, spec: &ConvSpec) -> Result<Geometry> {
    let op = "conv_causal";
    x.expect_dtype(op, DType::F32)?;
    if spec.kt == 0 || spec.ks.is_multiple_of(2) || spec.st == 0 || spec.ss == 0 {
        return Err(Error::invalid(op, format!("{spec:?}: kt ≥ 1, odd ks, strides ≥ 1")));
    }
    let sh = x.shape();
    let ns = sh
        .len()
        .checked_sub(3)
        .filter(|n| (1..=2).contains(n))
        .ok_or_else(|| Error::invalid(op, format!("input must be [B, T, X, C] or [B, T, H, W, C], got {sh:?}")))?;
    let s = if ns == 1 { [sh[2], 1] } else { [sh[2], sh[3]] };
    let o = if ns == 1 { [spec.out_points(s[0]), 1] } else { [spec.out_points(s[0]), spec.out_points(s[1])] };
    Ok(Geometry { b: sh[0], t: sh[1], s, c: sh[sh.len() - 1], ns, to: spec.out_frames(sh[1]), o })
}

fn imm(g: &Geometry, spec: &ConvSpec, row0: usize, rows: usize) -> Result<Imm> {
    let u = |v: usize| u32::try_from(v).map_err(|_| Error::invalid("conv_causal", "sizes too large"));
    Ok(Imm::default()
        .u(u(g.b)?)
        .u(u(g.t)?)
        .u(u(g.s[0])?)
        .u(u(g.s[1])?)
        .u(u(g.c)?)
        .u(u(spec.kt)?)
        .u(u(spec.ks)?)
        .u(u(spec.st)?)
        .u(u(spec.ss)?)
        .u(g.ns as u32)
        .u(u(g.to)?)
        .u(u(g.o[0])?)
        .u(u(g.o[1])?)
        .u(u(row0)?)
        .u(u(rows)?))
}

/// The pipeline constants of a convolution.
fn overrides(g: &Geometry, spec: &ConvSpec) -> [(&'static str, f64); 5] {
    [
        ("KT", spec.kt as f64),
        ("KS", spec.ks as f64),
        ("ST", spec.st as f64),
        ("SS", spec.ss as f64),
        ("NS", g.ns as f64),
    ]
}

/// How a convolution is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvMethod {
    /// On adapters with subgroups of one size (8 to 64 lanes) the implicit-GEMM kernels wherever the
    /// gathered channels are a multiple of 4; elsewhere direct when the output has fewer than
    /// 4 channels (the im2col products would be too thin to use the matmul tiles), im2col
    /// otherwise. `ENMA_CONV=direct|im2col|implicit|tiled` forces one where it applies (for
    /// benchmarks).
    Auto,
    /// The im2col matrix, built and multiplied on the matmul kernels in chunks of at most
    /// `chunk_rows` output rows (`None`: 32 MiB of matrix).
    Im2col { chunk_rows: Option<usize> },
    /// Direct kernels: no im2col matrix.
    Direct,
    /// Implicit GEMM (`shaders/conv_causal_subgroup.wgsl`): the matmul of the im2col matrix
    /// without the matrix, each lane gathering its rows tap by tap and sharing them through
    /// subgroup broadcasts. Needs subgroups of one fixed size, 8 to 64 lanes, and a multiple of
    /// 4 gathered channels (C_in for the forward and the weight gradient, C_out for the input
    /// gradient).
    Implicit,
    /// Implicit GEMM in workgroup memory (`shaders/conv_causal_tiled.wgsl`), the GPU-class
    /// kernel: 64 × 64 blocks of the result, double-buffered slices of both operands, any
    /// channel counts, no subgroups. The autotuner tries it on GPUs (on CPU adapters its
    /// barriers cost more than they save).
    Tiled,
}

/// The three products of a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Product {
    Forward,
    InputGrad,
    WeightGrad,
}

/// Whether the implicit-GEMM kernels can compute `product` of a convolution of `g` to `c_out`
/// channels on this adapter.
fn implicit_applies(gpu: &Gpu, g: &Geometry, c_out: usize, product: Product) -> bool {
    let gathered = if product == Product::InputGrad { c_out } else { g.c };
    implicit_lanes(gpu).is_some() && gathered > 0 && gathered.is_multiple_of(4) && c_out > 0
}

impl ConvMethod {
    /// A short name (the autotuner's).
    pub fn name(&self) -> &'static str {
        match self {
            ConvMethod::Auto => "auto",
            ConvMethod::Im2col { .. } => "im2col",
            ConvMethod::Direct => "direct",
            ConvMethod::Implicit => "implicit",
            ConvMethod::Tiled => "tiled",
        }
    }

    /// Whether the method runs 1×1×1 convolutions on its own kernels (the others run them as
    /// plain matmuls).
    fn own_kernel(&self) -> bool {
        matches!(self, ConvMethod::Implicit | ConvMethod::Tiled)
    }

    /// `resolve`, except that `Auto` (without `ENMA_CONV`) asks the autotuner, which measures
    /// every method that applies with `run` and falls back to the built-in rule.
    fn pick(
        self,
        gpu: &Gpu,
        g: &Geometry,
        c_out: usize,
        spec: &ConvSpec,
        product: Product,
        run: impl FnMut(&ConvMethod) -> Result<()>,
    ) -> Result<ConvMethod> {
        let rule = self.resolve(gpu, g, c_out, product)?;
        if self != ConvMethod::Auto || std::env::var_os("ENMA_CONV").is_some() {
            return Ok(rule);
        }
        let mut candidates = Vec::new();
        if implicit_applies(gpu, g, c_out, product) {
            candidates.push(ConvMethod::Implicit);
        }
        candidates.extend([ConvMethod::Direct, ConvMethod::Im2col { chunk_rows: None }]);
        if !gpu.is_cpu() {
            candidates.push(ConvMethod::Tiled);
        }
        let at = candidates.iter().position(|c| *c == rule).unwrap_or(0);
        let named: Vec<(String, ConvMethod)> = candidates.into_iter().map(|c| (c.name().to_string(), c)).collect();
        let class = format!(
            "{product:?} {}x{}x{}x{} c{}>{c_out} k{}x{} s{}x{}",
            bucket(g.b * g.t),
            g.s[0],
            g.s[1],
            g.ns,
            g.c,
            spec.kt,
            spec.ks,
            spec.st,
            spec.ss
        );
        gpu.tune("conv_causal", &class, &named, at, run)
    }

    fn resolve(self, gpu: &Gpu, g: &Geometry, c_out: usize, product: Product) -> Result<ConvMethod> {
        let implicit = implicit_applies(gpu, g, c_out, product);
        let fallback = if c_out < 4 { ConvMethod::Direct } else { ConvMethod::Im2col { chunk_rows: None } };
        Ok(match self {
            ConvMethod::Auto => match std::env::var("ENMA_CONV").as_deref() {
                Ok("direct") => ConvMethod::Direct,
                Ok("tiled") => ConvMethod::Tiled,
                Ok("im2col") => ConvMethod::Im2col { chunk_rows: None },
                _ if implicit => ConvMethod::Implicit,
                _ => fallback,
            },
            ConvMethod::Implicit if !implicit => {
                return Err(Error::invalid(
                    "conv_causal",
                    format!(
                        "the implicit kernels need subgroups of one size from 8 to 64 lanes (adapter: {:?}) and a multiple of 4 gathered \
                         channels ({} in, {c_out} out, {product:?}); use ConvMethod::Auto",
                        gpu.subgroup_size(),
                        g.c
                    ),
                ));
            }
            m => m,
        })
    }
}

fn direct_imm(g: &Geometry, c_out: usize, frames_per_split: usize) -> Result<Imm> {
    let u = |v: usize| u32::try_from(v).map_err(|_| Error::invalid("conv_causal", "sizes too large"));
    Ok(Imm::default()
        .u(u(g.b)?)
        .u(u(g.t)?)
        .u(u(g.s[0])?)
        .u(u(g.s[1])?)
        .u(u(g.c)?)
        .u(u(c_out)?)
        .u(u(g.to)?)
        .u(u(g.o[0])?)
        .u(u(g.o[1])?)
        .u(u(frames_per_split.max(1))?)
        .u(0)
        .u(0))
}

/// Direct forward convolution (see [`conv_causal`]).
fn direct_forward(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, g: &Geometry, spec: &ConvSpec) -> Result<Tensor> {
    let c_out = w.shape()[1];
    let y = Tensor::empty(x.gpu(), &g.out_shape(c_out), DType::F32)?;
    let ov = overrides(g, spec);
    let mut consts = ov.to_vec();
    consts.push(("HAS_BIAS", bias.is_some() as u32 as f64));
    let gpu = x.gpu();
    launch(
        gpu,
        &CONV_CAUSAL,
        "conv_fwd",
        &consts,
        &[(0, x), (1, &y), (2, w), (3, bias.unwrap_or(w))],
        &direct_imm(g, c_out, 1)?,
        gpu.grid_1d((g.out_rows() * c_out.div_ceil(4)) as u64, 64),
    )?;
    Ok(y)
}

/// Direct input gradient of a convolution.
fn direct_dx(w: &Tensor, dy: &Tensor, x_shape: &[usize], g: &Geometry, spec: &ConvSpec) -> Result<Tensor> {
    let gpu = w.gpu();
    let c_out = w.shape()[1];
    let dx = Tensor::empty(gpu, x_shape, DType::F32)?;
    launch(
        gpu,
        &CONV_CAUSAL,
        "conv_dx",
        &overrides(g, spec),
        &[(0, dy), (1, &dx), (2, w)],
        &direct_imm(g, c_out, 1)?,
        gpu.grid_1d((dx.numel() / g.c.max(1) * g.c.div_ceil(4)) as u64, 64),
    )?;
    Ok(dx)
}

/// Direct weight gradient of a convolution.
fn direct_dw(x: &Tensor, dy: &Tensor, rows: usize, c_out: usize, g: &Geometry, spec: &ConvSpec) -> Result<Tensor> {
    let gpu = x.gpu();
    // dw sums over every output frame; split the frames so that enough invocations run (a
    // CPU adapter needs a few per core, a GPU tens of thousands), then add the partial sums
    let frames = g.b * g.to;
    let lanes = rows * c_out.div_ceil(4);
    let want: usize = if gpu.is_cpu() { 256 } else { 65536 };
    let splits = want.div_ceil(lanes).clamp(1, frames.max(1));
    // and few enough frames per invocation for the loop budget (a frame loops over o0·(o1 + 1))
    let per = frames.div_ceil(splits).min(LOOP_BUDGET / (g.o[0] * (g.o[1] + 1) + 2)).max(1);
    let splits = frames.div_ceil(per).max(1);
    let part = Tensor::empty(gpu, &[splits, rows, c_out], DType::F32)?;
    launch(
        gpu,
        &CONV_CAUSAL,
        "conv_dw",
        &overrides(g, spec),
        &[(0, x), (1, &part), (2, dy)],
        &direct_imm(g, c_out, per)?,
        gpu.grid_1d((splits * lanes) as u64, 64),
    )?;
    add_parts(&part)
}

/// The subgroup size of the implicit kernels on this adapter: one fixed size from 8 to 64 lanes.
/// The kernels are written for 4 lanes too, but the one 4-lane adapter we can run (SwiftShader)
/// takes 15 s to compile the forward with rows = channels and more than 8 minutes for the weight
/// gradient with rows = taps, so 4-lane adapters keep im2col and the direct kernels.
fn implicit_lanes(gpu: &Gpu) -> Option<usize> {
    super::matmul::subgroup_lanes(gpu).filter(|&s| s >= 8).map(|s| s as usize)
}

fn lanes(gpu: &Gpu) -> Result<usize> {
    implicit_lanes(gpu).ok_or_else(|| {
        Error::invalid("conv_causal", "the implicit kernels need subgroups of one size from 8 to 64 lanes")
    })
}

/// The fewest result channels for which the implicit kernels give each lane columns of channels
/// (`conv_rows`, `conv_wgrad_rows`) rather than positions: enough to keep half the lanes busy.
/// Measured on lavapipe: at 8 lanes 16 channels still run faster that way (1.3× for a forward,
/// 1.9× for a weight gradient); at 16 lanes, where 16 channels leave 12 of 16 lanes idle, the
/// positions layout is faster (fwd+bwd of a 16-channel 3×3 layer: 146 against 222 ms).
fn min_row_channels(sg: usize) -> usize {
    (2 * sg).max(16)
}

/// Immediates of the implicit kernels: the geometry, the result's channels `n` and positions
/// `m`, and the outer rows per workgroup of the weight gradient.
fn implicit_imm(g: &Geometry, n: usize, m: usize, split: usize) -> Result<Imm> {
    let u = |v: usize| u32::try_from(v).map_err(|_| Error::invalid("conv_causal", "sizes too large"));
    let mut imm = Imm::default();
    for v in [g.b, g.t, g.s[0], g.s[1], g.to, g.o[0], g.o[1], n, m, split, 0, 0] {
        imm = imm.u(u(v)?);
    }
    Ok(imm)
}

/// Blocks along the long axis of a dispatch, spread over y and z (at most 65,535 each).
fn long_groups(gx: usize, blocks: usize) -> Result<[u32; 3]> {
    let y = blocks.clamp(1, 65535);
    let z = blocks.div_ceil(y).max(1);
    let u = |v: usize| u32::try_from(v).map_err(|_| Error::invalid("conv_causal", "too many workgroups"));
    Ok([u(gx)?, u(y)?, u(z)?])
}

/// Groups of 4 per lane (1 or 2) for `quads` groups spread over the `sg` lanes of a subgroup: 2
/// unless that leaves more lanes idle.
fn lane_groups(quads: usize, sg: usize) -> usize {
    let waste = |cn: usize| quads.div_ceil(sg * cn) * sg * cn - quads;
    if waste(2) <= waste(1) { 2 } else { 1 }
}

/// The forward (`dx` false: `src` = x, result [B, To, O.., C_out]) or input-gradient (`dx`
/// true: `src` = dy, result [B, T, S.., C_in]) product of the implicit kernels (the subgroup
/// ones, or with `tiled` the workgroup-memory one), into `out`.
#[allow(clippy::too_many_arguments)]
fn implicit_product(
    src: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    out: &Tensor,
    g: &Geometry,
    spec: &ConvSpec,
    gathered: usize,
    dx: bool,
    tiled: bool,
) -> Result<()> {
    let gpu = src.gpu();
    let n = *out.shape().last().unwrap_or(&0);
    let m = out.numel() / n.max(1);
    if m == 0 || n == 0 {
        return Ok(());
    }
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let mut consts = overrides(g, spec).to_vec();
    consts.extend([("CG", gathered as f64), ("DX", flag(dx)), ("HAS_BIAS", flag(bias.is_some()))]);
    if tiled {
        let bindings = [(0, src), (1, w), (2, bias.unwrap_or(w)), (3, out)];
        let imm = implicit_imm(g, n, m, 0)?;
        return launch(gpu, &CONV_CAUSAL_TILED, "conv_tiled", &consts, &bindings, &imm, tiled_groups(n, m, 1)?);
    }
    let sg = lanes(gpu)?;
    consts.push(("SG", sg as f64));
    let bias_t = bias.unwrap_or(w);
    if n.is_multiple_of(4) && n >= min_row_channels(sg) {
        // rows = positions: each lane owns 4·cn of the result's channels
        let cn = lane_groups(n / 4, sg);
        consts.extend([("CN", cn as f64), ("RB", 2.0)]);
        let groups = long_groups((n / 4).div_ceil(sg * cn), m.div_ceil(16))?;
        let bindings = [(0, src), (1, w), (2, bias_t), (3, out)];
        launch(gpu, &CONV_CAUSAL_SUBGROUP, "conv_rows", &consts, &bindings, &implicit_imm(g, n, m, 0)?, groups)
    } else {
        // rows = channels: each lane owns 8 positions
        let rb = if n <= 8 { 1 } else { 2 };
        consts.extend([("CN", 2.0), ("RB", rb as f64)]);
        let groups = long_groups(n.div_ceil(8 * rb), m.div_ceil(8 * sg))?;
        let bindings = [(0, src), (1, w), (2, bias_t), (4, w), (5, out)];
        launch(gpu, &CONV_CAUSAL_SUBGROUP, "conv_cols", &consts, &bindings, &implicit_imm(g, n, m, 0)?, groups)
    }
}

/// The weight gradient `[kt·ks^ns·C_in, C_out]` by the implicit kernel: partial sums over
/// ranges of outer rows (frames, and the first spatial axis in 2D), added in a fixed order.
fn implicit_dw(x: &Tensor, dy: &Tensor, c_out: usize, g: &Geometry, spec: &ConvSpec) -> Result<Tensor> {
    let gpu = x.gpu();
    let sg = lanes(gpu)?;
    let rows = spec.weight_rows(g.c, g.ns);
    let kq = rows / 4;
    let by_rows = c_out.is_multiple_of(4) && c_out >= min_row_channels(sg);
    let rb = if c_out <= 8 { 1 } else { 2 };
    let cn = if by_rows { lane_groups(c_out / 4, sg) } else { lane_groups(kq, sg) };
    let (gx, gy) = if by_rows {
        ((c_out / 4).div_ceil(sg * cn), rows.div_ceil(16))
    } else {
        (kq.div_ceil(sg * cn), c_out.div_ceil(8 * rb))
    };
    let outer = g.b * g.to * if g.ns == 2 { g.o[0] } else { 1 };
    // a row loops over its inner positions in fours
    let inner = if g.ns == 2 { g.o[1] } else { g.o[0] };
    let (per, splits) = wgrad_split(gpu, outer, gx * gy, LOOP_BUDGET / (inner.div_ceil(4) + 2));
    let part = Tensor::empty(gpu, &[splits, rows, c_out], DType::F32)?;
    let mut consts = overrides(g, spec).to_vec();
    consts.extend([("CG", g.c as f64), ("CN", cn as f64), ("RB", rb as f64), ("SG", sg as f64)]);
    let groups = [gx, gy, splits].map(|v| v as u32);
    let imm = implicit_imm(g, c_out, 0, per)?;
    if by_rows {
        let bindings = [(3, &part), (7, x), (8, dy)];
        launch(gpu, &CONV_CAUSAL_SUBGROUP, "conv_wgrad_rows", &consts, &bindings, &imm, groups)?;
    } else {
        let bindings = [(0, x), (5, &part), (6, dy)];
        launch(gpu, &CONV_CAUSAL_SUBGROUP, "conv_wgrad", &consts, &bindings, &imm, groups)?;
    }
    add_parts(&part)
}

/// How the workgroup kernels split a weight gradient's sum over `n` items (outer rows or
/// positions) into partial sums, for `blocks` workgroups per partial sum: enough workgroups for
/// every core (CPU adapters) or the whole device, at most `cap` items each (the loop budget),
/// at most 65,535 partial sums (the grid). Returns (items per partial sum, partial sums).
fn wgrad_split(gpu: &Gpu, n: usize, blocks: usize, cap: usize) -> (usize, usize) {
    let want: usize = if gpu.is_cpu() { 64 } else { 2048 };
    let per = n.div_ceil((want / blocks.max(1)).clamp(1, n.max(1))).min(cap).max(n.div_ceil(65535)).max(1);
    (per, n.div_ceil(per).max(1))
}

/// The weight gradient `[rows, C_out]` from partial sums `[splits, rows, C_out]`, added in a
/// fixed order.
fn add_parts(part: &Tensor) -> Result<Tensor> {
    if part.shape()[0] == 1 { part.reshape(&part.shape()[1..]) } else { super::sum(part, 0, false) }
}

/// The tiled kernel's grid: 64 × 64 blocks of a `rows` × `cols` result, `z` deep.
fn tiled_groups(cols: usize, rows: usize, z: usize) -> Result<[u32; 3]> {
    let groups = [cols.div_ceil(64), rows.div_ceil(64), z];
    if groups.iter().any(|&v| v > 65535) {
        return Err(Error::invalid(
            "conv_causal",
            format!("the tiled kernel's grid {groups:?} exceeds 65,535 workgroups per axis; use ConvMethod::Auto"),
        ));
    }
    Ok(groups.map(|v| v as u32))
}

/// The weight gradient by the tiled kernel: partial sums over ranges of output positions, added
/// in a fixed order.
fn tiled_dw(x: &Tensor, dy2: &Tensor, c_out: usize, g: &Geometry, spec: &ConvSpec) -> Result<Tensor> {
    let gpu = x.gpu();
    let rows = spec.weight_rows(g.c, g.ns);
    let m = g.out_rows();
    // 8 positions a pass
    let (per, splits) = wgrad_split(gpu, m, c_out.div_ceil(64) * rows.div_ceil(64), LOOP_BUDGET);
    let part = Tensor::empty(gpu, &[splits, rows, c_out], DType::F32)?;
    let mut consts = overrides(g, spec).to_vec();
    consts.extend([("CG", g.c as f64), ("WGRAD", 1.0)]);
    let bindings = [(0, x), (1, dy2), (2, x), (3, &part)];
    let imm = implicit_imm(g, c_out, m, per)?;
    launch(gpu, &CONV_CAUSAL_TILED, "conv_tiled", &consts, &bindings, &imm, tiled_groups(c_out, rows, splits)?)?;
    add_parts(&part)
}

/// Largest im2col chunk, in bytes (the matrix of a chunk of output rows).
const CHUNK_BYTES: usize = 32 << 20;

impl Geometry {
    /// `[B, To, O.., c_out]`.
    fn out_shape(&self, c_out: usize) -> Vec<usize> {
        let mut shape = vec![self.b, self.to];
        shape.extend(&self.o[..self.ns]);
        shape.push(c_out);
        shape
    }

    fn out_rows(&self) -> usize {
        self.b * self.to * self.o[0] * self.o[1]
    }

    /// Chunks of at most `per` output rows.
    fn chunks(&self, per: usize) -> Vec<(usize, usize)> {
        let total = self.out_rows();
        let per = per.max(1);
        (0..total.div_ceil(per)).map(|i| (i * per, per.min(total - i * per))).collect()
    }
}

/// Output rows per chunk so that a chunk's im2col matrix of `cols` columns stays under
/// `CHUNK_BYTES`.
fn default_rows(cols: usize) -> usize {
    // a multiple of 64 keeps the chunks' products on the fast matmul paths
    ((CHUNK_BYTES / (4 * cols.max(1))) / 64 * 64).max(64)
}

/// The im2col matrix of output rows `row0 .. row0 + rows`: `[rows, kt·ks^ns·C]`.
fn im2col_rows(x: &Tensor, g: &Geometry, spec: &ConvSpec, row0: usize, rows: usize) -> Result<Tensor> {
    let cols = spec.weight_rows(g.c, g.ns);
    let col = Tensor::empty(x.gpu(), &[rows, cols], DType::F32)?;
    let gpu = x.gpu();
    launch(
        gpu,
        &CONV_CAUSAL,
        "im2col",
        &overrides(g, spec),
        &[(0, x), (1, &col)],
        &imm(g, spec, row0, rows)?,
        gpu.grid_1d((rows * (cols / g.c.max(1))) as u64, 256),
    )?;
    Ok(col)
}

/// Forward convolution on tensors: `x` `[B, T, S.., C_in]`, `w` `[kt·ks^ns·C_in, C_out]`,
/// computed the [`ConvMethod::Auto`] way.
pub fn conv_causal(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, spec: &ConvSpec) -> Result<Tensor> {
    conv_causal_with(x, w, bias, spec, ConvMethod::Auto)
}

/// [`conv_causal`] computed with `method`.
pub fn conv_causal_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    spec: &ConvSpec,
    method: ConvMethod,
) -> Result<Tensor> {
    let g = geometry(x, spec)?;
    let rows = spec.weight_rows(g.c, g.ns);
    if w.rank() != 2 || w.shape()[0] != rows {
        return Err(Error::shape(
            "conv_causal",
            w.shape(),
            &[rows, 0],
            format!("weights must be [kt·ks^ns·C_in = {rows}, C_out]"),
        ));
    }
    let c_out = w.shape()[1];
    let out = g.out_shape(c_out);
    let method = method
        .pick(x.gpu(), &g, c_out, spec, Product::Forward, |&m| conv_causal_with(x, w, bias, spec, m).map(drop))?;
    if spec.is_pointwise() && !method.own_kernel() {
        // a 1×1×1 convolution is a matmul on the rows as they are: no im2col
        let x2 = x.reshape(&[g.out_rows(), g.c])?;
        return super::matmul(&x2, w, bias, false, false)?.reshape(&out);
    }
    let chunk_rows = match method {
        ConvMethod::Direct => return direct_forward(x, w, bias, &g, spec),
        ConvMethod::Implicit | ConvMethod::Tiled => {
            let y = Tensor::empty(x.gpu(), &out, DType::F32)?;
            implicit_product(x, w, bias, &y, &g, spec, g.c, false, method == ConvMethod::Tiled)?;
            return Ok(y);
        }
        ConvMethod::Im2col { chunk_rows } => chunk_rows,
        ConvMethod::Auto => unreachable!("resolved"),
    };
    let chunks = g.chunks(chunk_rows.unwrap_or_else(|| default_rows(rows)));
    if chunks.len() == 1 {
        let y = super::matmul(&im2col_rows(x, &g, spec, 0, g.out_rows())?, w, bias, false, false)?;
        return y.reshape(&out);
    }
    let parts: Vec<Tensor> = chunks
        .iter()
        .map(|&(r0, n)| super::matmul(&im2col_rows(x, &g, spec, r0, n)?, w, bias, false, false))
        .collect::<Result<_>>()?;
    super::concat(&parts.iter().collect::<Vec<_>>(), 0)?.reshape(&out)
}

/// Gradients of [`conv_causal`]: (dx, dw, dbias), computed with `method`.
pub fn conv_causal_backward(
    x: &Tensor,
    w: &Tensor,
    has_bias: bool,
    dy: &Tensor,
    spec: &ConvSpec,
    method: ConvMethod,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let (dx, dw, db) = conv_causal_grads(x, w, has_bias, dy, spec, method, true)?;
    let dx = dx.ok_or_else(|| Error::invalid("conv_causal", "no input gradient"))?;
    Ok((dx, dw, db))
}

/// [`conv_causal_backward`], with the input gradient only when `need_dx` (the first layer's
/// input is data: its gradient would be thrown away).
fn conv_causal_grads(
    x: &Tensor,
    w: &Tensor,
    has_bias: bool,
    dy: &Tensor,
    spec: &ConvSpec,
    method: ConvMethod,
    need_dx: bool,
) -> Result<(Option<Tensor>, Tensor, Option<Tensor>)> {
    let g = geometry(x, spec)?;
    let c_out = w.shape()[1];
    let dy2 = dy.reshape(&[g.out_rows(), c_out])?;
    let db = if has_bias { Some(super::sum(&dy2, 0, false)?) } else { None };
    let gpu = x.gpu();
    let dx = if need_dx {
        let m = method.pick(gpu, &g, c_out, spec, Product::InputGrad, |&m| {
            input_grad(x.shape(), w, &dy2, &g, spec, m).map(drop)
        })?;
        Some(input_grad(x.shape(), w, &dy2, &g, spec, m)?)
    } else {
        None
    };
    let m =
        method.pick(gpu, &g, c_out, spec, Product::WeightGrad, |&m| weight_grad(x, w, &dy2, &g, spec, m).map(drop))?;
    Ok((dx, weight_grad(x, w, &dy2, &g, spec, m)?, db))
}

/// The input gradient of a convolution with a resolved `method` (`dy2`: `[rows, C_out]`).
fn input_grad(
    x_shape: &[usize],
    w: &Tensor,
    dy2: &Tensor,
    g: &Geometry,
    spec: &ConvSpec,
    method: ConvMethod,
) -> Result<Tensor> {
    let gpu = w.gpu();
    let (rows, c_out) = (w.shape()[0], w.shape()[1]);
    // a 1×1×1 convolution is a matmul on the rows as they are, where the implicit kernels do not run
    if spec.is_pointwise() && !method.own_kernel() {
        return super::matmul(dy2, w, None, false, true)?.reshape(x_shape);
    }
    Ok(match method {
        ConvMethod::Direct => direct_dx(w, dy2, x_shape, g, spec)?,
        ConvMethod::Implicit | ConvMethod::Tiled => {
            let dx = Tensor::empty(gpu, x_shape, DType::F32)?;
            implicit_product(dy2, w, None, &dx, g, spec, c_out, true, method == ConvMethod::Tiled)?;
            dx
        }
        ConvMethod::Im2col { chunk_rows } => {
            let dx = Tensor::zeros(gpu, x_shape, DType::F32)?;
            for (r0, n) in g.chunks(chunk_rows.unwrap_or_else(|| default_rows(rows))) {
                let dyc = if n == g.out_rows() { dy2.clone() } else { super::slice(dy2, 0, r0, r0 + n)? };
                let dcol = super::matmul(&dyc, w, None, false, true)?;
                launch(
                    gpu,
                    &CONV_CAUSAL,
                    "col2im",
                    &overrides(g, spec),
                    &[(0, &dcol), (1, &dx)],
                    &imm(g, spec, r0, n)?,
                    gpu.grid_1d((dx.numel() / g.c.max(1)) as u64, 256),
                )?;
            }
            dx
        }
        ConvMethod::Auto => return Err(Error::invalid("conv_causal", "internal: unresolved method")),
    })
}

/// The weight gradient of a convolution with a resolved `method`.
fn weight_grad(
    x: &Tensor,
    w: &Tensor,
    dy2: &Tensor,
    g: &Geometry,
    spec: &ConvSpec,
    method: ConvMethod,
) -> Result<Tensor> {
    let (rows, c_out) = (w.shape()[0], w.shape()[1]);
    if spec.is_pointwise() && !method.own_kernel() {
        return super::matmul(&x.reshape(&[g.out_rows(), g.c])?, dy2, None, true, false);
    }
    Ok(match method {
        ConvMethod::Direct => direct_dw(x, dy2, rows, c_out, g, spec)?,
        ConvMethod::Implicit => implicit_dw(x, dy2, c_out, g, spec)?,
        ConvMethod::Tiled => tiled_dw(x, dy2, c_out, g, spec)?,
        ConvMethod::Im2col { chunk_rows } => {
            let mut dw: Option<Tensor> = None;
            for (r0, n) in g.chunks(chunk_rows.unwrap_or_else(|| default_rows(rows))) {
                let col = im2col_rows(x, g, spec, r0, n)?;
                let dyc = if n == g.out_rows() { dy2.clone() } else { super::slice(dy2, 0, r0, r0 + n)? };
                let part = super::matmul(&col, &dyc, None, true, false)?;
                dw = Some(match dw {
                    None => part,
                    Some(acc) => super::add(&acc, &part)?,
                });
            }
            dw.ok_or_else(|| Error::invalid("conv_causal", "empty output"))?
        }
        ConvMethod::Auto => return Err(Error::invalid("conv_causal", "internal: unresolved method")),
    })
}

impl Var {
    /// Differentiable causal convolution: `self` `[B, T, S.., C_in]`, `w` `[kt·ks^ns·C_in, C_out]`,
    /// `bias` `[C_out]` → `[B, T', S'.., C_out]`.
    pub fn conv_causal(&self, w: &Var, bias: Option<&Var>, spec: ConvSpec) -> Result<Var> {
        let y = conv_causal(self.tensor(), w.tensor(), bias.map(|b| b.tensor()), &spec)?;
        let (x, wt) = (self.tensor().clone(), w.tensor().clone());
        let has_bias = bias.is_some();
        let need_dx = self.requires_grad();
        let mut inputs = vec![self, w];
        inputs.extend(bias);
        self.tape().record(y, &inputs, move |dy| {
            let (dx, dw, db) = conv_causal_grads(&x, &wt, has_bias, dy, &spec, ConvMethod::Auto, need_dx)?;
            let mut out = vec![dx, Some(dw)];
            if has_bias {
                out.push(db);
            }
            Ok(out)
        })
    }

    /// Depth to space: `[B, T, X, r·C]` → `[B, T, r·X, C]` (1D) or `[B, T, H, W, r²·C]` →
    /// `[B, T, r·H, r·W, C]` (2D); channel group j = (jy·r + jx) feeds sub-position (jy, jx).
    pub fn depth_to_space(&self, r: usize) -> Result<Var> {
        let s = self.shape().to_vec();
        let c = *s.last().unwrap_or(&0);
        match s.len() {
            4 => {
                check_div("depth_to_space", c, r)?;
                self.reshape(&[s[0], s[1], s[2] * r, c / r])
            }
            5 => {
                check_div("depth_to_space", c, r * r)?;
                let co = c / (r * r);
                // [B, T, H, W, ry, rx, C] → [B, T, H, ry, W, rx, C]
                self.reshape(&[s[0] * s[1], s[2], s[3], r, r, co])?.permute(&[0, 1, 3, 2, 4, 5])?.reshape(&[
                    s[0],
                    s[1],
                    s[2] * r,
                    s[3] * r,
                    co,
                ])
            }
            _ => Err(Error::invalid("depth_to_space", format!("expects [B, T, X, C] or [B, T, H, W, C], got {s:?}"))),
        }
    }

    /// Depth to time: `[B, T, S.., r·C]` → `[B, r·T, S.., C]`; channel group j becomes frame
    /// r·t + j.
    pub fn depth_to_time(&self, r: usize) -> Result<Var> {
        let s = self.shape().to_vec();
        let c = *s.last().unwrap_or(&0);
        check_div("depth_to_time", c, r)?;
        if s.len() < 4 {
            return Err(Error::invalid("depth_to_time", format!("expects [B, T, S.., C], got {s:?}")));
        }
        let space: usize = s[2..s.len() - 1].iter().product();
        let mut out = vec![s[0], s[1] * r];
        out.extend(&s[2..s.len() - 1]);
        out.push(c / r);
        // [B, T, S, r, C] → [B, T, r, S, C]
        self.reshape(&[s[0] * s[1], space, r, c / r])?.permute(&[0, 2, 1, 3])?.reshape(&out)
    }
}

fn check_div(op: &str, c: usize, r: usize) -> Result<()> {
    if r == 0 || !c.is_multiple_of(r) {
        return Err(Error::invalid(op, format!("{c} channels do not split into {r} groups")));
    }
    Ok(())
}
