//! Global gradient norm (`shaders/clip.wgsl`), computed on the GPU so clipping needs no sync.

use crate::error::{Error, Result};
use crate::gpu::kernels::CLIP;
use crate::gpu::{DType, Tensor};
use crate::ops::{Imm, launch};

/// Elements per workgroup of the first pass (matches `CHUNK` in the shader).
const CHUNK: usize = 256 * 16;

/// sqrt(Σ x²) of the first `n` elements of a flat tensor, as a `[1]` tensor (not downloaded).
pub fn global_norm(x: &Tensor, n: usize) -> Result<Tensor> {
    x.expect_dtype("global_norm", DType::F32)?;
    if n > x.numel() {
        return Err(Error::invalid("global_norm", format!("{n} elements asked of a tensor of {}", x.numel())));
    }
    let n32 = u32::try_from(n).map_err(|_| Error::invalid("global_norm", "too many elements"))?;
    let gpu = x.gpu();
    let blocks = n.div_ceil(CHUNK).max(1);
    let partial = Tensor::empty(gpu, &[blocks], DType::F32)?;
    launch(
        gpu,
        &CLIP,
        "sumsq_partial",
        &[],
        &[(0, x), (1, &partial)],
        &Imm::default().u(n32),
        gpu.grid_1d(blocks as u64, 1),
    )?;
    let out = Tensor::empty(gpu, &[1], DType::F32)?;
    launch(gpu, &CLIP, "sumsq_final", &[], &[(0, &partial), (1, &out)], &Imm::default().u(blocks as u32), [1, 1, 1])?;
    Ok(out)
}
