//! SwiGLU gate (`shaders/swiglu.wgsl`): `[.., 2H] → [.., H]`, silu(first half) ⊙ second half.

use super::{Imm, launch};
use crate::autodiff::Var;
use crate::error::{Error, Result};
use crate::gpu::kernels::SWIGLU;
use crate::gpu::{DType, Tensor};

fn dims(op: &str, x: &Tensor) -> Result<(Vec<usize>, u32, u32)> {
    x.expect_dtype(op, DType::F32)?;
    let last = *x.shape().last().ok_or_else(|| Error::invalid(op, "needs at least one axis"))?;
    if last % 2 != 0 {
        return Err(Error::invalid(op, format!("the last axis of {:?} must be even (two halves)", x.shape())));
    }
    let mut out = x.shape().to_vec();
    *out.last_mut().expect("rank >= 1") = last / 2;
    let n = u32::try_from(x.numel() / 2).map_err(|_| Error::invalid(op, "too many elements"))?;
    Ok((out, n, (last / 2) as u32))
}

/// Whether the kernels can take four columns per vector (H % 4 == 0, something to compute).
fn vectors(n: u32, h: u32) -> bool {
    n > 0 && h.is_multiple_of(4)
}

/// silu(x[.., :H]) ⊙ x[.., H:].
pub fn swiglu(x: &Tensor) -> Result<Tensor> {
    let (out_shape, n, h) = dims("swiglu", x)?;
    let gpu = x.gpu();
    let y = Tensor::empty(gpu, &out_shape, DType::F32)?;
    let imm = Imm::default().u(n).u(h);
    if vectors(n, h) {
        launch(gpu, &SWIGLU, "swiglu_forward4", &[], &[(4, x), (5, &y)], &imm, gpu.grid_1d(n as u64 / 4, 256))?;
    } else {
        launch(gpu, &SWIGLU, "swiglu_forward", &[], &[(0, x), (1, &y)], &imm, gpu.grid_1d(n as u64, 256))?;
    }
    Ok(y)
}

/// The gradient of [`swiglu`] with respect to its input.
pub fn swiglu_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let (out_shape, n, h) = dims("swiglu_backward", x)?;
    if dy.shape() != out_shape.as_slice() {
        return Err(Error::shape("swiglu_backward", dy.shape(), &out_shape, "gradient and output differ"));
    }
    let gpu = x.gpu();
    let dx = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let imm = Imm::default().u(n).u(h);
    if vectors(n, h) {
        let bindings = [(4, x), (6, dy), (7, &dx)];
        launch(gpu, &SWIGLU, "swiglu_backward4", &[], &bindings, &imm, gpu.grid_1d(n as u64 / 4, 256))?;
    } else {
        let bindings = [(0, x), (2, dy), (3, &dx)];
        launch(gpu, &SWIGLU, "swiglu_backward", &[], &bindings, &imm, gpu.grid_1d(n as u64, 256))?;
    }
    Ok(dx)
}

impl Var {
    /// Differentiable [`swiglu`].
    pub fn swiglu(&self) -> Result<Var> {
        let y = swiglu(self.tensor())?;
        let x = self.tensor().clone();
        self.tape().record(y, &[self], move |g| Ok(vec![Some(swiglu_backward(&x, g)?)]))
    }
}
