//! Element-wise unary ops (`shaders/unary.wgsl`).

use super::{Imm, check_u32_len, launch};
use crate::autodiff::Var;
use crate::error::Result;
use crate::gpu::kernels::UNARY;
use crate::gpu::{DType, Tensor};

/// A unary function. Parameters travel with the variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Recip,
    Square,
    Sigmoid,
    Tanh,
    Relu,
    Silu,
    /// GELU, tanh approximation: 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))).
    Gelu,
    Sin,
    Cos,
    /// `alpha * x + beta`.
    Affine {
        alpha: f32,
        beta: f32,
    },
    /// `x` for x ≥ 0, `slope * x` otherwise.
    LeakyRelu {
        slope: f32,
    },
    /// `x` for x > 0, `alpha (eˣ − 1)` otherwise.
    Elu {
        alpha: f32,
    },
    Clamp {
        min: f32,
        max: f32,
    },
}

impl UnaryOp {
    /// The op code of `shaders/unary.wgsl` and the two scalar parameters.
    pub(crate) fn code(self) -> (u32, f32, f32) {
        use UnaryOp::*;
        match self {
            Neg => (0, 0.0, 0.0),
            Abs => (1, 0.0, 0.0),
            Exp => (2, 0.0, 0.0),
            Log => (3, 0.0, 0.0),
            Sqrt => (4, 0.0, 0.0),
            Rsqrt => (5, 0.0, 0.0),
            Recip => (6, 0.0, 0.0),
            Square => (7, 0.0, 0.0),
            Sigmoid => (8, 0.0, 0.0),
            Tanh => (9, 0.0, 0.0),
            Relu => (10, 0.0, 0.0),
            Silu => (11, 0.0, 0.0),
            Gelu => (12, 0.0, 0.0),
            Sin => (13, 0.0, 0.0),
            Cos => (14, 0.0, 0.0),
            Affine { alpha, beta } => (15, alpha, beta),
            LeakyRelu { slope } => (16, slope, 0.0),
            Elu { alpha } => (17, alpha, 0.0),
            Clamp { min, max } => (18, min, max),
        }
    }
}

/// `op` applied to every element of an f32 tensor.
pub fn unary(x: &Tensor, op: UnaryOp) -> Result<Tensor> {
    x.expect_dtype("unary", DType::F32)?;
    let n = check_u32_len("unary", x)?;
    let gpu = x.gpu();
    let y = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let (code, alpha, beta) = op.code();
    let ov = [("OP", code as f64)];
    if n % 4 == 0 {
        let imm = Imm::default().u(n / 4).f(alpha).f(beta);
        launch(gpu, &UNARY, "unary_vec4", &ov, &[(2, x), (3, &y)], &imm, gpu.grid_1d((n / 4) as u64, 256))?;
    } else {
        let imm = Imm::default().u(n).f(alpha).f(beta);
        launch(gpu, &UNARY, "unary", &ov, &[(0, x), (1, &y)], &imm, gpu.grid_1d(n as u64, 256))?;
    }
    Ok(y)
}

/// `s * x`.
pub fn scale(x: &Tensor, s: f32) -> Result<Tensor> {
    unary(x, UnaryOp::Affine { alpha: s, beta: 0.0 })
}

/// `alpha * x + beta`.
pub fn affine(x: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
    unary(x, UnaryOp::Affine { alpha, beta })
}

/// dx = dy · f'(x) for `op` (the backward kernel of [`unary`]).
pub fn unary_backward(x: &Tensor, dy: &Tensor, op: UnaryOp) -> Result<Tensor> {
    if x.shape() != dy.shape() {
        return Err(crate::Error::shape("unary_backward", x.shape(), dy.shape(), "gradient and input differ"));
    }
    let n = check_u32_len("unary_backward", x)?;
    let gpu = x.gpu();
    let dx = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let (code, alpha, beta) = op.code();
    let imm = Imm::default().u(n).f(alpha).f(beta);
    launch(
        gpu,
        &UNARY,
        "unary_backward",
        &[("OP", code as f64)],
        &[(0, x), (4, dy), (5, &dx)],
        &imm,
        gpu.grid_1d(n as u64, 256),
    )?;
    Ok(dx)
}

impl Var {
    /// Differentiable [`unary`].
    pub fn unary(&self, op: UnaryOp) -> Result<Var> {
        let y = unary(self.tensor(), op)?;
        let x = self.tensor().clone();
        self.tape().record(y, &[self], move |g| Ok(vec![Some(unary_backward(&x, g, op)?)]))
    }

    pub fn exp(&self) -> Result<Var> {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Result<Var> {
        self.unary(UnaryOp::Log)
    }
    pub fn sqrt(&self) -> Result<Var> {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn square(&self) -> Result<Var> {
        self.unary(UnaryOp::Square)
    }
    pub fn sigmoid(&self) -> Result<Var> {
        self.unary(UnaryOp::Sigmoid)
    }
    pub fn tanh(&self) -> Result<Var> {
        self.unary(UnaryOp::Tanh)
    }
    pub fn relu(&self) -> Result<Var> {
        self.unary(UnaryOp::Relu)
    }
    pub fn silu(&self) -> Result<Var> {
        self.unary(UnaryOp::Silu)
    }
    pub fn gelu(&self) -> Result<Var> {
        self.unary(UnaryOp::Gelu)
    }
    pub fn elu(&self, alpha: f32) -> Result<Var> {
        self.unary(UnaryOp::Elu { alpha })
    }
    pub fn leaky_relu(&self, slope: f32) -> Result<Var> {
        self.unary(UnaryOp::LeakyRelu { slope })
    }
    /// `s · x`.
    pub fn scale(&self, s: f32) -> Result<Var> {
        self.unary(UnaryOp::Affine { alpha: s, beta: 0.0 })
    }
    /// `alpha · x + beta`.
    pub fn affine(&self, alpha: f32, beta: f32) -> Result<Var> {
        self.unary(UnaryOp::Affine { alpha, beta })
    }
}
