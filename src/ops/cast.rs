//! f32 ⇄ f16 conversion (`shaders/cast.wgsl`). Needs the adapter feature `SHADER_F16`.

use super::{Imm, check_u32_len, launch};
use crate::error::Result;
use crate::gpu::kernels::CAST;
use crate::gpu::{DType, Tensor};

/// An f16 copy of an f32 tensor (round to nearest even).
pub fn to_f16(x: &Tensor) -> Result<Tensor> {
    x.expect_dtype("to_f16", DType::F32)?;
    let n = check_u32_len("to_f16", x)?;
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F16)?;
    let gpu = x.gpu();
    launch(
        gpu,
        &CAST,
        "f32_to_f16",
        &[],
        &[(0, x), (1, &y)],
        &Imm::default().u(n),
        gpu.grid_1d(n.div_ceil(2) as u64, 256),
    )?;
    Ok(y)
}

/// An f32 copy of an f16 tensor (exact).
pub fn to_f32(x: &Tensor) -> Result<Tensor> {
    x.expect_dtype("to_f32", DType::F16)?;
    let n = check_u32_len("to_f32", x)?;
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let gpu = x.gpu();
    launch(
        gpu,
        &CAST,
        "f16_to_f32",
        &[],
        &[(2, x), (3, &y)],
        &Imm::default().u(n),
        gpu.grid_1d(n.div_ceil(2) as u64, 256),
    )?;
    Ok(y)
}
