//! Reductions along one axis (`shaders/reduce.wgsl`).

use super::{Imm, LOOP_BUDGET, launch};
use crate::autodiff::Var;
use crate::error::{Error, Result};
use crate::gpu::kernels::REDUCE;
use crate::gpu::tune::bucket;
use crate::gpu::{DType, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
}

/// Axis length from which a row reduction (inner size 1) uses a workgroup per row.
const ROW_KERNEL_MIN_LEN: usize = 64;
/// On CPU adapters barriers are expensive: with at least this many rows, one invocation per row
/// is faster (3.6× for 4096 × 4096 on lavapipe).
const CPU_THREAD_PER_ROW_MIN_ROWS: usize = 64;

/// Column reductions with fewer outputs than this (fewer than 16 workgroups of the one-pass
/// kernel) and at least 2·[`CHUNK`] rows reduce chunks of rows first (`reduce_cols_chunks`),
/// with the same result bits: the bias gradients of a training step (a few hundred columns,
/// thousands of rows) otherwise ran on one workgroup.
const FEW_OUTPUTS: usize = 4096;
/// Rows per chunk: the innermost block of the one-pass kernel's blocked sum.
const CHUNK: usize = 64;

/// A reduction of an axis longer than [`LOOP_BUDGET`](super::LOOP_BUDGET) (where one invocation
/// would own the whole axis): partial results over chunks of `LOOP_BUDGET`, then over the partial results (the sum
/// of a mean, scaled at the end).
fn two_stage(x: &Tensor, op: ReduceOp, out_shape: &[usize], outer: usize, len: usize, inner: usize) -> Result<Tensor> {
    let inner_op = if op == ReduceOp::Mean { ReduceOp::Sum } else { op };
    let main = len / LOOP_BUDGET * LOOP_BUDGET;
    let x3 = x.reshape(&[outer, len, inner])?;
    let head = if main == len { x3.clone() } else { super::slice(&x3, 1, 0, main)? };
    let mut parts = reduce(&head.reshape(&[outer, main / LOOP_BUDGET, LOOP_BUDGET, inner])?, 2, inner_op, false)?;
    if main < len {
        let tail = reduce(&super::slice(&x3, 1, main, len)?, 1, inner_op, true)?;
        parts = super::concat(&[&parts, &tail], 1)?;
    }
    let mut y = reduce(&parts, 1, inner_op, false)?;
    if op == ReduceOp::Mean {
        y = super::scale(&y, 1.0 / len as f32)?;
    }
    y.reshape(out_shape)
}

/// Reduces `x` along `axis` (negative counts from the end). With `keepdim` the axis stays with
/// size 1, otherwise it is removed.
pub fn reduce(x: &Tensor, axis: isize, op: ReduceOp, keepdim: bool) -> Result<Tensor> {
    x.expect_dtype("reduce", DType::F32)?;
    let rank = x.rank() as isize;
    let ax = if axis < 0 { axis + rank } else { axis };
    if ax < 0 || ax >= rank {
        return Err(Error::invalid("reduce", format!("axis {axis} is out of range for shape {:?}", x.shape())));
    }
    let ax = ax as usize;
    let shape = x.shape();
    let len = shape[ax];
    if len == 0 {
        return Err(Error::invalid("reduce", format!("cannot reduce the empty axis {ax} of shape {shape:?}")));
    }
    let outer: usize = shape[..ax].iter().product();
    let inner: usize = shape[ax + 1..].iter().product();
    let mut out_shape = shape.to_vec();
    if keepdim {
        out_shape[ax] = 1;
    } else {
        out_shape.remove(ax);
    }
    let too_big =
        |v: usize| u32::try_from(v).map_err(|_| Error::invalid("reduce", format!("shape {shape:?} is too large")));
    too_big(x.numel())?;
    let (o, l, i) = (too_big(outer)?, too_big(len)?, too_big(inner)?);
    let gpu = x.gpu();
    // a workgroup per row (contiguous rows of at least ROW_KERNEL_MIN_LEN), or one invocation
    // per output (built-in rule: the group kernel on GPUs and for few rows on CPU adapters)
    let rule = inner == 1 && len >= ROW_KERNEL_MIN_LEN && (!gpu.is_cpu() || outer < CPU_THREAD_PER_ROW_MIN_ROWS);
    if len > LOOP_BUDGET && !(rule && len / 256 < LOOP_BUDGET) {
        // one invocation would loop over more than LOOP_BUDGET elements: reduce in two stages
        return two_stage(x, op, &out_shape, outer, len, inner);
    }
    let y = Tensor::empty(gpu, &out_shape, DType::F32)?;
    let ov = [("OP", op as u32 as f64)];
    let imm = Imm::default().u(o).u(l).u(i).u(l);
    if inner > 1 && outer * inner < FEW_OUTPUTS && len >= 2 * CHUNK {
        // few columns: partial results over chunks of 64 rows first, spread over the device
        let chunks = len.div_ceil(CHUNK);
        let parts = Tensor::empty(gpu, &[outer, chunks, inner], DType::F32)?;
        // four columns per invocation as one vector load where rows are whole vectors
        let vec = inner.is_multiple_of(4);
        let ov = [("OP", op as u32 as f64), ("VEC", if vec { 1.0 } else { 0.0 })];
        let grid = gpu.grid_1d((outer * chunks * inner / if vec { 4 } else { 1 }) as u64, 256);
        launch(gpu, &REDUCE, "reduce_cols_chunks", &ov, &[(0, x), (1, &parts), (2, x)], &imm, grid)?;
        let imm = Imm::default().u(o).u(too_big(chunks)?).u(i).u(l);
        let grid = gpu.grid_1d((outer * inner) as u64, 256);
        launch(gpu, &REDUCE, "reduce_cols", &ov[..1], &[(0, &parts), (1, &y)], &imm, grid)?;
        return Ok(y);
    }
    let run = |group: bool| {
        if group {
            launch(gpu, &REDUCE, "reduce_rows", &ov, &[(0, x), (1, &y)], &imm, gpu.grid_1d(outer as u64, 1))
        } else {
            launch(gpu, &REDUCE, "reduce_cols", &ov, &[(0, x), (1, &y)], &imm, gpu.grid_1d((outer * inner) as u64, 256))
        }
    };
    // a workgroup per row, or (rows of at most LOOP_BUDGET) one invocation per row: measured
    let group = if inner == 1 && (ROW_KERNEL_MIN_LEN..=LOOP_BUDGET).contains(&len) {
        let candidates = [("thread".to_string(), false), ("group".to_string(), true)];
        let class = format!("{}x{}", bucket(outer), bucket(len));
        gpu.tune("reduce", &class, &candidates, usize::from(rule), |&g| run(g))?
    } else {
        rule
    };
    run(group)?;
    Ok(y)
}

pub fn sum(x: &Tensor, axis: isize, keepdim: bool) -> Result<Tensor> {
    reduce(x, axis, ReduceOp::Sum, keepdim)
}
pub fn mean(x: &Tensor, axis: isize, keepdim: bool) -> Result<Tensor> {
    reduce(x, axis, ReduceOp::Mean, keepdim)
}
pub fn max(x: &Tensor, axis: isize, keepdim: bool) -> Result<Tensor> {
    reduce(x, axis, ReduceOp::Max, keepdim)
}
pub fn min(x: &Tensor, axis: isize, keepdim: bool) -> Result<Tensor> {
    reduce(x, axis, ReduceOp::Min, keepdim)
}

impl Var {
    /// Differentiable sum or mean along `axis` (max and min are not differentiable here).
    pub fn reduce(&self, axis: isize, op: ReduceOp, keepdim: bool) -> Result<Var> {
        if matches!(op, ReduceOp::Max | ReduceOp::Min) && self.requires_grad() {
            return Err(Error::invalid("reduce", "max and min reductions have no backward; use them on constants"));
        }
        let y = reduce(self.tensor(), axis, op, keepdim)?;
        let in_shape = self.shape().to_vec();
        let rank = in_shape.len() as isize;
        let ax = (if axis < 0 { axis + rank } else { axis }) as usize;
        let len = in_shape[ax];
        self.tape().record(y, &[self], move |g| {
            let mut kept = in_shape.clone();
            kept[ax] = 1;
            let g = super::expand(&g.reshape(&kept)?, &in_shape)?;
            let g = if op == ReduceOp::Mean { super::scale(&g, 1.0 / len as f32)? } else { g };
            Ok(vec![Some(g)])
        })
    }

    pub fn sum(&self, axis: isize, keepdim: bool) -> Result<Var> {
        self.reduce(axis, ReduceOp::Sum, keepdim)
    }

    pub fn mean(&self, axis: isize, keepdim: bool) -> Result<Var> {
        self.reduce(axis, ReduceOp::Mean, keepdim)
    }

    /// Sum of every element, as a tensor of shape `[1]`.
    pub fn sum_all(&self) -> Result<Var> {
        self.reshape(&[self.tensor().numel()])?.sum(0, true)
    }

    /// Mean of every element, as a tensor of shape `[1]`.
    pub fn mean_all(&self) -> Result<Var> {
        self.reshape(&[self.tensor().numel()])?.mean(0, true)
    }
}
