//! RMSNorm and LayerNorm over the last axis (`shaders/norm.wgsl`), with or without affine
//! parameters, forward and backward.

use super::{Imm, launch};
use crate::autodiff::Var;
use crate::error::{Error, Result};
use crate::gpu::kernels::NORM;
use crate::gpu::{DType, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    Rms,
    Layer,
}

struct Plan {
    rows: u32,
    c: u32,
}

fn plan(op: &str, x: &Tensor, gamma: Option<&Tensor>, beta: Option<&Tensor>) -> Result<Plan> {
    x.expect_dtype(op, DType::F32)?;
    let c = *x.shape().last().ok_or_else(|| Error::invalid(op, "needs at least one axis"))?;
    for p in [gamma, beta].into_iter().flatten() {
        p.expect_dtype(op, DType::F32)?;
        if p.shape() != [c] {
            return Err(Error::shape(op, x.shape(), p.shape(), format!("the affine parameters must be [{c}]")));
        }
    }
    let u = |v: usize| u32::try_from(v).map_err(|_| Error::invalid(op, format!("shape {:?} is too large", x.shape())));
    u(x.numel())?;
    Ok(Plan { rows: u(x.numel().checked_div(c).unwrap_or(0))?, c: u(c)? })
}

fn overrides(kind: NormKind, affine: bool) -> [(&'static str, f64); 2] {
    [("LAYER", if kind == NormKind::Layer { 1.0 } else { 0.0 }), ("AFFINE", if affine { 1.0 } else { 0.0 })]
}

/// Normalises `x` over its last axis; returns the output and the per-row (mean, 1/σ) statistics
/// that the backward pass needs.
pub fn norm_forward(
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    kind: NormKind,
    eps: f32,
) -> Result<(Tensor, Tensor)> {
    if kind == NormKind::Rms && beta.is_some() {
        return Err(Error::invalid("rms_norm", "RMSNorm has no shift (beta)"));
    }
    if beta.is_some() && gamma.is_none() {
        return Err(Error::invalid("layer_norm", "a shift (beta) needs a scale (gamma)"));
    }
    let pl = plan("norm", x, gamma, beta)?;
    let gpu = x.gpu();
    let y = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let stats = Tensor::empty(gpu, &[pl.rows as usize, 2], DType::F32)?;
    if pl.rows == 0 || pl.c == 0 {
        return Ok((y, stats));
    }
    // The shader always declares γ and β; unused ones are bound to `x` and never read.
    let affine = gamma.is_some();
    let g = gamma.unwrap_or(x);
    let b = beta.unwrap_or(g);
    let ov = overrides(kind, affine);
    let imm = Imm::default().u(pl.rows).u(pl.c).f(eps);
    let grid = gpu.grid_1d(pl.rows as u64, 256);
    if pl.c.is_multiple_of(4) {
        let bindings = [(9, x), (10, g), (11, b), (12, &y), (4, &stats)];
        launch(gpu, &NORM, "norm_forward4", &ov, &bindings, &imm, grid)?;
    } else {
        let bindings = [(0, x), (1, g), (2, b), (3, &y), (4, &stats)];
        launch(gpu, &NORM, "norm_forward", &ov, &bindings, &imm, grid)?;
    }
    Ok((y, stats))
}

/// Gradients of [`norm_forward`]: (dx, dγ, dβ) — dγ and dβ when `gamma` is given.
pub fn norm_backward(
    x: &Tensor,
    gamma: Option<&Tensor>,
    has_beta: bool,
    stats: &Tensor,
    dy: &Tensor,
    kind: NormKind,
) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
    if dy.shape() != x.shape() {
        return Err(Error::shape("norm_backward", x.shape(), dy.shape(), "gradient and input differ"));
    }
    let pl = plan("norm_backward", x, gamma, None)?;
    let gpu = x.gpu();
    let dx = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let affine = gamma.is_some();
    // (without γ, one vector that the kernel never writes)
    let dgx = Tensor::empty(gpu, if affine { x.shape() } else { &[4] }, DType::F32)?;
    if pl.rows > 0 && pl.c > 0 {
        let g = gamma.unwrap_or(x);
        let imm = Imm::default().u(pl.rows).u(pl.c).f(0.0);
        let (ov, grid) = (overrides(kind, affine), gpu.grid_1d(pl.rows as u64, 256));
        if pl.c.is_multiple_of(4) {
            let bindings = [(9, x), (10, g), (5, stats), (13, dy), (14, &dx), (15, &dgx)];
            launch(gpu, &NORM, "norm_backward4", &ov, &bindings, &imm, grid)?;
        } else {
            let bindings = [(0, x), (1, g), (5, stats), (6, dy), (7, &dx), (8, &dgx)];
            launch(gpu, &NORM, "norm_backward", &ov, &bindings, &imm, grid)?;
        }
    }
    if !affine {
        return Ok((dx, None, None));
    }
    let c = pl.c as usize;
    let rows = pl.rows as usize;
    let dgamma = super::sum(&dgx.reshape(&[rows, c])?, 0, false)?;
    let dbeta = if has_beta { Some(super::sum(&dy.reshape(&[rows, c])?, 0, false)?) } else { None };
    Ok((dx, Some(dgamma), dbeta))
}

/// RMSNorm over the last axis: x / sqrt(mean(x²) + eps) (⊙ γ).
pub fn rms_norm(x: &Tensor, gamma: Option<&Tensor>, eps: f32) -> Result<Tensor> {
    Ok(norm_forward(x, gamma, None, NormKind::Rms, eps)?.0)
}

/// LayerNorm over the last axis: (x − μ)/sqrt(var + eps) (⊙ γ + β).
pub fn layer_norm(x: &Tensor, gamma: Option<&Tensor>, beta: Option<&Tensor>, eps: f32) -> Result<Tensor> {
    Ok(norm_forward(x, gamma, beta, NormKind::Layer, eps)?.0)
}

impl Var {
    fn norm(&self, gamma: Option<&Var>, beta: Option<&Var>, kind: NormKind, eps: f32) -> Result<Var> {
        let (y, stats) = norm_forward(self.tensor(), gamma.map(|v| v.tensor()), beta.map(|v| v.tensor()), kind, eps)?;
        let x = self.tensor().clone();
        let g = gamma.map(|v| v.tensor().clone());
        let has_beta = beta.is_some();
        let mut inputs = vec![self];
        inputs.extend(gamma);
        inputs.extend(beta);
        self.tape().record(y, &inputs, move |dy| {
            let (dx, dg, db) = norm_backward(&x, g.as_ref(), has_beta, &stats, dy, kind)?;
            let mut out = vec![Some(dx)];
            if g.is_some() {
                out.push(dg);
            }
            if has_beta {
                out.push(db);
            }
            Ok(out)
        })
    }

    /// Differentiable RMSNorm over the last axis.
    pub fn rms_norm(&self, gamma: Option<&Var>, eps: f32) -> Result<Var> {
        self.norm(gamma, None, NormKind::Rms, eps)
    }

    /// Differentiable LayerNorm over the last axis.
    pub fn layer_norm(&self, gamma: Option<&Var>, beta: Option<&Var>, eps: f32) -> Result<Var> {
        self.norm(gamma, beta, NormKind::Layer, eps)
    }
}
