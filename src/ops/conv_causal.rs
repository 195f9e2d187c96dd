//! Causal space-time convolution (`shaders/conv_causal.wgsl`): im2col, then the matmul kernels,
//! backward through col2im (the adjoint gather) and the matmul backward; or, for layers with
//! few channels, direct kernels for the forward, dx and dw (see [`ConvMethod`]). Data are channels-last
//! `[B, T, S.., C]` with one or two spatial axes; weights `[kt·ks^ns·C_in, C_out]`.

use super::{Imm, launch};
use crate::autodiff::Var;
use crate::error::{Error, Result};
use crate::gpu::kernels::CONV_CAUSAL;
use crate::gpu::{DType, Tensor};

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
    /// Direct when the output has fewer than 4 channels (the im2col products would be too thin
    /// to use the matmul tiles), im2col otherwise. On lavapipe the direct kernels lose to im2col
    /// everywhere else (`cargo bench --bench kernels -- conv`). `ENMA_CONV=direct|im2col`
    /// forces one (for benchmarks).
    Auto,
    /// The im2col matrix, built and multiplied on the matmul kernels in chunks of at most
    /// `chunk_rows` output rows (`None`: 32 MiB of matrix).
    Im2col { chunk_rows: Option<usize> },
    /// Direct kernels: no im2col matrix.
    Direct,
}

impl ConvMethod {
    fn resolve(self, c_out: usize) -> ConvMethod {
        if self != ConvMethod::Auto {
            return self;
        }
        match std::env::var("ENMA_CONV").as_deref() {
            Ok("direct") => ConvMethod::Direct,
            Ok("im2col") => ConvMethod::Im2col { chunk_rows: None },
            _ if c_out < 4 => ConvMethod::Direct,
            _ => ConvMethod::Im2col { chunk_rows: None },
        }
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
    let mut shape = vec![g.b, g.to];
    shape.extend(&g.o[..g.ns]);
    shape.push(c_out);
    let y = Tensor::empty(x.gpu(), &shape, DType::F32)?;
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

/// Direct gradients (dx, dw) of a convolution.
fn direct_backward(x: &Tensor, w: &Tensor, dy: &Tensor, g: &Geometry, spec: &ConvSpec) -> Result<(Tensor, Tensor)> {
    let gpu = x.gpu();
    let (rows, c_out) = (w.shape()[0], w.shape()[1]);
    let ov = overrides(g, spec);
    let dx = Tensor::empty(gpu, x.shape(), DType::F32)?;
    launch(
        gpu,
        &CONV_CAUSAL,
        "conv_dx",
        &ov,
        &[(0, dy), (1, &dx), (2, w)],
        &direct_imm(g, c_out, 1)?,
        gpu.grid_1d((x.numel() / g.c.max(1) * g.c.div_ceil(4)) as u64, 64),
    )?;
    // dw sums over every output frame; split the frames so that enough invocations run (a
    // CPU adapter needs a few per core, a GPU tens of thousands), then add the partial sums
    let frames = g.b * g.to;
    let lanes = rows * c_out.div_ceil(4);
    let want: usize = if gpu.is_cpu() { 256 } else { 65536 };
    let splits = want.div_ceil(lanes).clamp(1, frames.max(1));
    let per = frames.div_ceil(splits).max(1);
    let splits = frames.div_ceil(per).max(1);
    let part = Tensor::empty(gpu, &[splits, rows, c_out], DType::F32)?;
    launch(
        gpu,
        &CONV_CAUSAL,
        "conv_dw",
        &ov,
        &[(0, x), (1, &part), (2, dy)],
        &direct_imm(g, c_out, per)?,
        gpu.grid_1d((splits * lanes) as u64, 64),
    )?;
    let dw = if splits == 1 { part.reshape(&[rows, c_out])? } else { super::sum(&part, 0, false)? };
    Ok((dx, dw))
}

/// Largest im2col chunk, in bytes (the matrix of a chunk of output rows).
const CHUNK_BYTES: usize = 32 << 20;

impl Geometry {
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
    let mut out = vec![g.b, g.to];
    out.extend(&g.o[..g.ns]);
    out.push(c_out);
    if spec.is_pointwise() {
        // a 1×1×1 convolution is a matmul on the rows as they are: no im2col
        let x2 = x.reshape(&[g.out_rows(), g.c])?;
        return super::matmul(&x2, w, bias, false, false)?.reshape(&out);
    }
    let chunk_rows = match method.resolve(c_out) {
        ConvMethod::Direct => return direct_forward(x, w, bias, &g, spec),
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
    let g = geometry(x, spec)?;
    let (rows, c_out) = (w.shape()[0], w.shape()[1]);
    let dy2 = dy.reshape(&[g.out_rows(), c_out])?;
    let gpu = x.gpu();
    if spec.is_pointwise() {
        let x2 = x.reshape(&[g.out_rows(), g.c])?;
        let dx = super::matmul(&dy2, w, None, false, true)?.reshape(x.shape())?;
        let dw = super::matmul(&x2, &dy2, None, true, false)?;
        let db = if has_bias { Some(super::sum(&dy2, 0, false)?) } else { None };
        return Ok((dx, dw, db));
    }
    let chunk_rows = match method.resolve(c_out) {
        ConvMethod::Direct => {
            let (dx, dw) = direct_backward(x, w, &dy2, &g, spec)?;
            let db = if has_bias { Some(super::sum(&dy2, 0, false)?) } else { None };
            return Ok((dx, dw, db));
        }
        ConvMethod::Im2col { chunk_rows } => chunk_rows,
        ConvMethod::Auto => unreachable!("resolved"),
    };
    let dx = Tensor::zeros(gpu, x.shape(), DType::F32)?;
    let mut dw: Option<Tensor> = None;
    for (r0, n) in g.chunks(chunk_rows.unwrap_or_else(|| default_rows(rows))) {
        let col = im2col_rows(x, &g, spec, r0, n)?;
        let dyc = if n == g.out_rows() { dy2.clone() } else { super::slice(&dy2, 0, r0, r0 + n)? };
        let part = super::matmul(&col, &dyc, None, true, false)?;
        dw = Some(match dw {
            None => part,
            Some(acc) => super::add(&acc, &part)?,
        });
        let dcol = super::matmul(&dyc, w, None, false, true)?;
        launch(
            gpu,
            &CONV_CAUSAL,
            "col2im",
            &overrides(&g, spec),
            &[(0, &dcol), (1, &dx)],
            &imm(&g, spec, r0, n)?,
            gpu.grid_1d((dx.numel() / g.c.max(1)) as u64, 256),
        )?;
    }
    let dw = dw.ok_or_else(|| Error::invalid("conv_causal", "empty output"))?;
    let db = if has_bias { Some(super::sum(&dy2, 0, false)?) } else { None };
    Ok((dx, dw, db))
}

impl Var {
    /// Differentiable causal convolution: `self` `[B, T, S.., C_in]`, `w` `[kt·ks^ns·C_in, C_out]`,
    /// `bias` `[C_out]` → `[B, T', S'.., C_out]`.
    pub fn conv_causal(&self, w: &Var, bias: Option<&Var>, spec: ConvSpec) -> Result<Var> {
        let y = conv_causal(self.tensor(), w.tensor(), bias.map(|b| b.tensor()), &spec)?;
        let (x, wt) = (self.tensor().clone(), w.tensor().clone());
        let has_bias = bias.is_some();
        let mut inputs = vec![self, w];
        inputs.extend(bias);
        self.tape().record(y, &inputs, move |dy| {
            let (dx, dw, db) = conv_causal_backward(&x, &wt, has_bias, dy, &spec, ConvMethod::Auto)?;
            let mut out = vec![Some(dx), Some(dw)];
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
