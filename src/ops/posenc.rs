//! Fixed sinusoidal position encodings (`shaders/posenc.wgsl`); constants, no gradient.

use super::{Imm, launch};
use crate::error::{Error, Result};
use crate::gpu::kernels::POSENC;
use crate::gpu::{DType, Gpu, Tensor};

/// Encodings `[n, d]` of `n` positions with `dims` coordinates each (`positions` is `n·dims`
/// values, row-major). `d` must be a multiple of `2·dims`.
pub fn sinusoidal(gpu: &Gpu, positions: &[f32], dims: usize, d: usize) -> Result<Tensor> {
    if dims == 0 || !d.is_multiple_of(2 * dims) || !positions.len().is_multiple_of(dims) {
        return Err(Error::invalid(
            "sinusoidal",
            format!(
                "{} positions of {dims} coordinates into {d} channels: d must be a multiple of 2·dims",
                positions.len()
            ),
        ));
    }
    let n = positions.len() / dims;
    let pos = Tensor::from_slice(gpu, positions, &[n, dims])?;
    let out = Tensor::empty(gpu, &[n, d], DType::F32)?;
    let total = u32::try_from(n * d).map_err(|_| Error::invalid("sinusoidal", "too many elements"))?;
    let imm = Imm::default().u(total).u(d as u32).u(dims as u32);
    launch(gpu, &POSENC, "sinusoidal", &[], &[(0, &pos), (1, &out)], &imm, gpu.grid_1d(total as u64, 256))?;
    Ok(out)
}

/// Encodings of positions 0..n on a line.
pub fn sinusoidal_1d(gpu: &Gpu, n: usize, d: usize) -> Result<Tensor> {
    let pos: Vec<f32> = (0..n).map(|i| i as f32).collect();
    sinusoidal(gpu, &pos, 1, d)
}

/// Encodings of an `h × w` grid (row-major), half the channels per axis.
pub fn sinusoidal_2d(gpu: &Gpu, h: usize, w: usize, d: usize) -> Result<Tensor> {
    let pos: Vec<f32> = (0..h * w).flat_map(|i| [(i / w) as f32, (i % w) as f32]).collect();
    sinusoidal(gpu, &pos, 2, d)
}
