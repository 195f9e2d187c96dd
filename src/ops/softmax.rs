//! Softmax over the last axis (`shaders/softmax.wgsl`), forward and backward.

use super::{Imm, launch};
use crate::autodiff::Var;
use crate::error::{Error, Result};
use crate::gpu::kernels::SOFTMAX;
use crate::gpu::{DType, Gpu, Tensor};

/// (rows, len, workgroup per row?) for a tensor: one invocation per row or a workgroup per row,
/// as the autotuner measures (built-in rule [`use_group`]).
fn plan(op: &str, x: &Tensor) -> Result<(u32, u32, bool)> {
    x.expect_dtype(op, DType::F32)?;
    let len = *x.shape().last().ok_or_else(|| Error::invalid(op, "needs at least one axis"))?;
    let rows = x.numel().checked_div(len).unwrap_or(0);
    let u = |v: usize| u32::try_from(v).map_err(|_| Error::invalid(op, format!("shape {:?} is too large", x.shape())));
    u(x.numel())?;
    let gpu = x.gpu();
    let rule = use_group(gpu, rows, len);
    // one invocation per row loops 3 × len times: past the loop budget only the group kernel
    if len == 0 || 3 * len > super::LOOP_BUDGET {
        return Ok((u(rows)?, u(len)?, rule || len > 0));
    }
    // the autotuner measures both kernels on the forward (the backward has the same shape of work)
    let candidates = [("thread".to_string(), false), ("group".to_string(), true)];
    let class = format!("{}x{}", crate::gpu::tune::bucket(rows), crate::gpu::tune::bucket(len));
    let (r, l) = (u(rows)?, u(len)?);
    let group = gpu.tune("softmax", &class, &candidates, usize::from(rule), |&g| {
        forward(x, &Tensor::empty(gpu, x.shape(), DType::F32)?, r, l, g)
    })?;
    Ok((r, l, group))
}

pub(crate) fn use_group(gpu: &Gpu, rows: usize, len: usize) -> bool {
    if gpu.is_cpu() { rows < 64 && len >= 64 } else { len >= 128 || rows < 1024 }
}

fn grid(gpu: &Gpu, rows: u32, group: bool) -> [u32; 3] {
    if group { gpu.grid_1d(rows as u64, 1) } else { gpu.grid_1d(rows as u64, 256) }
}

/// Softmax over the last axis.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    let (rows, len, group) = plan("softmax", x)?;
    let gpu = x.gpu();
    let y = Tensor::empty(gpu, x.shape(), DType::F32)?;
    if len == 0 {
        return Ok(y);
    }
    forward(x, &y, rows, len, group)?;
    Ok(y)
}

/// Records the softmax of `x` (`rows` × `len`) into `y` with one kernel.
fn forward(x: &Tensor, y: &Tensor, rows: u32, len: u32, group: bool) -> Result<()> {
    let gpu = x.gpu();
    let entry = if group { "softmax_group" } else { "softmax_thread" };
    launch(gpu, &SOFTMAX, entry, &[], &[(0, x), (1, y)], &Imm::default().u(rows).u(len), grid(gpu, rows, group))
}

/// dx = y ⊙ (dy − Σ dy ⊙ y) along the last axis, from the softmax output `y`.
pub fn softmax_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    if y.shape() != dy.shape() {
        return Err(Error::shape("softmax_backward", y.shape(), dy.shape(), "gradient and output differ"));
    }
    let (rows, len, group) = plan("softmax_backward", y)?;
    let gpu = y.gpu();
    let dx = Tensor::empty(gpu, y.shape(), DType::F32)?;
    if len == 0 {
        return Ok(dx);
    }
    let entry = if group { "softmax_back_group" } else { "softmax_back_thread" };
    let bindings = [(2, y), (3, dy), (4, &dx)];
    launch(gpu, &SOFTMAX, entry, &[], &bindings, &Imm::default().u(rows).u(len), grid(gpu, rows, group))?;
    Ok(dx)
}

impl Var {
    /// Differentiable softmax over the last axis.
    pub fn softmax(&self) -> Result<Var> {
        let y = softmax(self.tensor())?;
        let saved = y.clone();
        self.tape().record(y, &[self], move |g| Ok(vec![Some(softmax_backward(&saved, g)?)]))
    }
}
