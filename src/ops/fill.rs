//! Fill and copy (`shaders/fill.wgsl`).

use super::{Imm, launch};
use crate::error::{Error, Result};
use crate::gpu::kernels::FILL;
use crate::gpu::{DType, Tensor};

fn words(t: &Tensor) -> Result<u32> {
    u32::try_from(t.bytes().div_ceil(4))
        .map_err(|_| Error::invalid("fill", format!("tensor of {} bytes is too large to index", t.bytes())))
}

/// Writes the 32-bit `pattern` into every word of `t`.
pub(crate) fn fill_bits(t: &Tensor, pattern: u32) -> Result<()> {
    let n = words(t)?;
    let gpu = t.gpu();
    launch(gpu, &FILL, "fill", &[], &[(1, t)], &Imm::default().u(n).u(pattern), gpu.grid_1d(n as u64, 256))
}

/// Sets every element of an f32 or f16 tensor to `value`.
pub fn fill(t: &Tensor, value: f32) -> Result<()> {
    match t.dtype() {
        DType::F32 => fill_bits(t, value.to_bits()),
        DType::F16 => {
            let h = half::f16::from_f32(value).to_bits() as u32;
            fill_bits(t, h | (h << 16))
        }
        DType::U32 => Err(Error::Dtype {
            op: "fill".into(),
            dtype: "u32".into(),
            message: "use fill_u32 for integer tensors".into(),
        }),
    }
}

/// Sets every element of a u32 tensor to `value`.
pub fn fill_u32(t: &Tensor, value: u32) -> Result<()> {
    t.expect_dtype("fill_u32", DType::U32)?;
    fill_bits(t, value)
}

/// Copies `src` into `dst` (same shape and dtype, different storage).
pub fn copy_into(src: &Tensor, dst: &Tensor) -> Result<()> {
    if src.shape() != dst.shape() {
        return Err(Error::shape("copy_into", src.shape(), dst.shape(), "shapes must be equal"));
    }
    if src.dtype() != dst.dtype() {
        return Err(Error::invalid("copy_into", format!("dtypes differ: {} and {}", src.dtype(), dst.dtype())));
    }
    if src.same_storage(dst) {
        return Ok(());
    }
    let n = words(src)?;
    let gpu = src.gpu();
    launch(gpu, &FILL, "copy", &[], &[(0, src), (1, dst)], &Imm::default().u(n), gpu.grid_1d(n as u64, 256))
}

/// A new tensor with the contents of `src`.
pub fn copy(src: &Tensor) -> Result<Tensor> {
    let dst = Tensor::empty(src.gpu(), src.shape(), src.dtype())?;
    copy_into(src, &dst)?;
    Ok(dst)
}
