//! Operations on tensors. One file per op family, launching the kernels of
//! `shaders/<same name>.wgsl`. Every op checks its inputs and returns `enma::Error` for bad
//! shapes or dtypes; none of them waits for the GPU.

pub mod binary;
pub mod cast;
pub mod conv_causal;
pub mod cross_attention;
pub mod fill;
pub mod flash_attention;
pub mod flow_sample;
pub mod gather;
pub mod layout;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod posenc;
pub mod random;
pub mod reduce;
pub mod softmax;
pub mod swiglu;
pub mod unary;

pub use binary::{BinaryOp, add, binary, binary_backward, broadcast_shape, div, maximum, minimum, mul, pow, sub};
pub use cast::{to_f16, to_f32};
pub use fill::{copy, copy_into, fill};
pub use gather::{RowIndex, gather_rows, scatter_add_rows};
pub use layout::{concat, expand, permute, slice, sum_to_shape, transpose};
pub use matmul::{MatmulKernel, MatmulTiles, matmul, matmul_with};
pub use norm::{NormKind, layer_norm, rms_norm};
pub use reduce::{ReduceOp, max, mean, min, reduce, sum};
pub use softmax::softmax;
pub use swiglu::swiglu;
pub use unary::{UnaryOp, affine, scale, unary, unary_backward};

use crate::error::Result;
use crate::gpu::kernels::Shader;
use crate::gpu::{Gpu, Tensor};

/// The most loop iterations one invocation of a kernel may run, all its loops together. Mesa's
/// software drivers (lavapipe, llvmpipe through GL) count every pass of every loop of an
/// invocation against one budget of 65,535 and silently stop every loop once it is spent, so
/// a longer sum drops its tail and a later store loop may never run. Launchers split work
/// (more invocations, partial results added by the host in a fixed order) to stay under half
/// of that on every adapter.
pub(crate) const LOOP_BUDGET: usize = 32768;

/// Immediate data for a kernel: 32-bit words, built in the order of the shader's `Params`.
#[derive(Default)]
pub(crate) struct Imm(Vec<u32>);

impl Imm {
    pub(crate) fn u(mut self, v: u32) -> Self {
        self.0.push(v);
        self
    }
    pub(crate) fn f(mut self, v: f32) -> Self {
        self.0.push(v.to_bits());
        self
    }
    pub(crate) fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// Compiles (cached) and records one dispatch.
pub(crate) fn launch(
    gpu: &Gpu,
    shader: &Shader,
    entry: &'static str,
    overrides: &[(&'static str, f64)],
    bindings: &[(u32, &Tensor)],
    imm: &Imm,
    groups: [u32; 3],
) -> Result<()> {
    let pipeline = gpu.pipeline(shader, entry, overrides)?;
    gpu.dispatch(&pipeline, bindings, imm.bytes(), groups)
}

/// Fails when the element count does not fit the u32 indices of the kernels.
pub(crate) fn check_u32_len(op: &str, t: &Tensor) -> Result<u32> {
    u32::try_from(t.numel())
        .map_err(|_| crate::Error::invalid(op, format!("{} elements exceed the 2^32 a kernel can index", t.numel())))
}
