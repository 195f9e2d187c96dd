//! The fused flow-matching sampler (`shaders/flow_sample.wgsl`): the whole midpoint ODE of the
//! adaLN MLP head for a batch of tokens in one dispatch, activations in workgroup memory, the
//! head's weights read straight from the parameter store's flat buffer. Inference only.

use super::{Imm, launch};
use crate::error::{Error, Result};
use crate::gpu::kernels::FLOW_SAMPLE;
use crate::gpu::{DType, Tensor};

/// Tokens per workgroup at most, and the workgroup-memory capacities (floats) of the kernel.
const TMAX: usize = 8;
const ACT: usize = 768; // T·W (the kernel's ACT4 = 192 channel quads)
const ZCAP: usize = 256;

/// Where the head's weights sit in the flat parameter buffer (element offsets), in the order
/// the kernel reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowWeights {
    /// `[input.w, input.b, final shift.w, .b, final scale.w, .b, out.w, out.b]`, then per block
    /// `[shift.w, .b, scale.w, .b, gate.w, .b, fc1.w, .b, fc2.w, .b]`.
    pub offsets: Vec<u32>,
    pub dim: usize,
    pub width: usize,
    pub depth: usize,
}

impl FlowWeights {
    /// Whether the fused kernel can sample with this head in `steps` midpoint steps: a tile
    /// exists and one invocation stays within the loop budget of software drivers
    /// ([`LOOP_BUDGET`](super::LOOP_BUDGET)).
    pub fn fits(&self, steps: usize) -> bool {
        self.tile().is_some_and(|t| self.loop_passes(steps, t) <= super::LOOP_BUDGET)
    }

    /// Loop passes of one invocation for `steps` midpoint steps with `tile` tokens per
    /// workgroup (about: 2 evaluations per step, each 2 products per block and 3 more, each
    /// product ⌈W/4 / WG⌉ × W/4 × (T + 1) passes).
    fn loop_passes(&self, steps: usize, tile: usize) -> usize {
        let w4 = self.width / 4;
        2 * steps * (2 * self.depth + 3) * w4.div_ceil(workgroup(self.width)) * w4 * (tile + 1)
    }

    /// Tokens per workgroup for this head, or `None` when the kernel cannot run it: width over
    /// 768, token dimension over 256, either not a multiple of 4 (vec4 weights), or a weight
    /// not 16-byte aligned in the flat buffer.
    pub fn tile(&self) -> Option<usize> {
        let t = TMAX.min(ACT / self.width.max(1)).min(ZCAP / self.dim.max(1));
        let aligned = self.offsets.iter().all(|o| o.is_multiple_of(4));
        (t > 0 && self.width.is_multiple_of(4) && self.dim.is_multiple_of(4) && aligned).then_some(t)
    }
}

/// Samples `[N, D]` from `temperature`·`noise` `[N, D]` by `steps` midpoint steps of the head
/// whose weights are `weights` in `params` (the store's flat buffer), with condition
/// projections `cy` `[N, W]` (cond·W_c + b_c) and time embeddings `temb` `[2·steps, W]` (rows
/// r = s/steps and r = (s + ½)/steps).
#[allow(clippy::too_many_arguments)]
pub fn flow_sample(
    params: &Tensor,
    weights: &FlowWeights,
    cy: &Tensor,
    temb: &Tensor,
    noise: &Tensor,
    steps: usize,
    temperature: f32,
    eps: f32,
) -> Result<Tensor> {
    let FlowWeights { offsets, dim, width, depth } = weights;
    let (d, w) = (*dim, *width);
    let n = noise.shape().first().copied().unwrap_or(0);
    let tile = weights.tile().ok_or_else(|| {
        Error::invalid(
            "flow_sample",
            format!("width {w} / token dimension {d}: the fused kernel takes multiples of 4 up to 768 / 256"),
        )
    })?;
    if !weights.fits(steps) {
        return Err(Error::invalid(
            "flow_sample",
            format!(
                "width {w}, depth {depth}, {steps} steps: one invocation would loop {} times, more than software \
                 drivers run ({}); use the composed sampler",
                weights.loop_passes(steps, tile),
                super::LOOP_BUDGET
            ),
        ));
    }
    if n == 0
        || steps == 0
        || noise.shape() != [n, d]
        || cy.shape() != [n, w]
        || temb.shape() != [2 * steps, w]
        || offsets.len() != 8 + 10 * depth
    {
        return Err(Error::invalid(
            "flow_sample",
            format!(
                "noise {:?}, conditions {:?}, time embeddings {:?}, {} offsets for D {d}, W {w}, depth {depth}, {steps} steps",
                noise.shape(),
                cy.shape(),
                temb.shape(),
                offsets.len()
            ),
        ));
    }
    for t in [params, cy, temb, noise] {
        t.expect_dtype("flow_sample", DType::F32)?;
    }
    let gpu = noise.gpu();
    let offs = Tensor::from_u32(gpu, offsets, &[offsets.len()])?;
    let out = Tensor::empty(gpu, &[n, d], DType::F32)?;
    let imm = Imm::default()
        .u(u32::try_from(n).map_err(|_| Error::invalid("flow_sample", "too many tokens"))?)
        .u(d as u32)
        .u(w as u32)
        .u(*depth as u32)
        .u(steps as u32)
        .f(temperature)
        .f(eps);
    let groups = u32::try_from(n.div_ceil(tile)).map_err(|_| Error::invalid("flow_sample", "too many tokens"))?;
    let wg = workgroup(w) as f64;
    launch(
        gpu,
        &FLOW_SAMPLE,
        "sample",
        &[("T", tile as f64), ("WG", wg)],
        &[(0, params), (1, &offs), (2, cy), (3, temb), (4, noise), (5, &out)],
        &imm,
        [groups, 1, 1],
    )?;
    Ok(out)
}

/// Invocations per workgroup for width `w`: an invocation owns 4 channels.
fn workgroup(w: usize) -> usize {
    (w / 4).clamp(8, 64)
}
