//! Causal space-time convolution (`shaders/conv_causal.wgsl`): im2col, then the matmul kernels;
//! backward through col2im (the adjoint gather) and the matmul backward. Data are channels-last
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

fn imm(g: &Geometry, spec: &ConvSpec) -> Result<Imm> {
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
        .u(u(g.o[1])?))
}

/// The im2col matrix `[B·T'·S'.., kt·ks^ns·C]` of `x`.
pub fn im2col(x: &Tensor, spec: &ConvSpec) -> Result<Tensor> {
    let g = geometry(x, spec)?;
    let rows = g.b * g.to * g.o[0] * g.o[1];
    let cols = spec.weight_rows(g.c, g.ns);
    let col = Tensor::empty(x.gpu(), &[rows, cols], DType::F32)?;
    let n = rows * cols;
    u32::try_from(n).map_err(|_| {
        Error::invalid("conv_causal", format!("an im2col matrix of {n} values is too large; use smaller batches"))
    })?;
    let gpu = x.gpu();
    launch(gpu, &CONV_CAUSAL, "im2col", &[], &[(0, x), (1, &col)], &imm(&g, spec)?, gpu.grid_1d(n as u64, 256))?;
    Ok(col)
}

/// The adjoint of [`im2col`]: the gradient of `x` (of shape `x_shape`) from that of the matrix.
pub fn col2im(dcol: &Tensor, x_shape: &[usize], spec: &ConvSpec) -> Result<Tensor> {
    let dx = Tensor::empty(dcol.gpu(), x_shape, DType::F32)?;
    let g = geometry(&dx, spec)?;
    let n = dx.numel();
    let gpu = dcol.gpu();
    launch(gpu, &CONV_CAUSAL, "col2im", &[], &[(0, dcol), (1, &dx)], &imm(&g, spec)?, gpu.grid_1d(n as u64, 256))?;
    Ok(dx)
}

impl Var {
    /// Differentiable causal convolution: `self` `[B, T, S.., C_in]`, `w` `[kt·ks^ns·C_in, C_out]`,
    /// `bias` `[C_out]` → `[B, T', S'.., C_out]`.
    pub fn conv_causal(&self, w: &Var, bias: Option<&Var>, spec: ConvSpec) -> Result<Var> {
        let g = geometry(self.tensor(), &spec)?;
        let rows = spec.weight_rows(g.c, g.ns);
        if w.shape().len() != 2 || w.shape()[0] != rows {
            return Err(Error::shape(
                "conv_causal",
                w.shape(),
                &[rows, 0],
                format!("weights must be [kt·ks^ns·C_in = {rows}, C_out]"),
            ));
        }
        let c_out = w.shape()[1];
        let x_shape = self.shape().to_vec();
        let col = self
            .tape()
            .record(im2col(self.tensor(), &spec)?, &[self], move |d| Ok(vec![Some(col2im(d, &x_shape, &spec)?)]))?;
        let y = col.matmul(w, bias, false, false)?;
        let mut out = vec![g.b, g.to];
        out.extend(&g.o[..g.ns]);
        out.push(c_out);
        y.reshape(&out)
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
