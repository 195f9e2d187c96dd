//! Layout ops on f32 tensors: permute / transpose, expand (broadcast), slice, concat, and
//! `sum_to_shape` (the gradient of a broadcast), through one strided-copy kernel
//! (`shaders/layout.wgsl`).

use super::{Imm, launch};
use crate::autodiff::Var;
use crate::error::{Error, Result};
use crate::gpu::kernels::LAYOUT;
use crate::gpu::{DType, Tensor};

const MAX_RANK: usize = 8;

fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Records `dst[dst_off + Σ c·ds] = src[src_off + Σ c·ss]` over `shape`.
#[allow(clippy::too_many_arguments)]
fn strided_copy(
    op: &str,
    src: &Tensor,
    src_off: usize,
    ss: &[usize],
    dst: &Tensor,
    dst_off: usize,
    ds: &[usize],
    shape: &[usize],
) -> Result<()> {
    if shape.len() > MAX_RANK {
        return Err(Error::invalid(op, format!("rank {} exceeds the supported {MAX_RANK}", shape.len())));
    }
    let n: usize = shape.iter().product();
    if n == 0 {
        return Ok(());
    }
    // size-1 axes dropped, neighbours merged where both sides continue across them
    let (mut sh, mut s2, mut d2): (Vec<usize>, Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..shape.len() {
        if shape[i] == 1 {
            continue;
        }
        match (sh.last_mut(), s2.last_mut(), d2.last_mut()) {
            (Some(e), Some(so), Some(dd)) if *so == ss[i] * shape[i] && *dd == ds[i] * shape[i] => {
                *e *= shape[i];
                *so = ss[i];
                *dd = ds[i];
            }
            _ => {
                sh.push(shape[i]);
                s2.push(ss[i]);
                d2.push(ds[i]);
            }
        }
    }
    if sh.is_empty() {
        (sh, s2, d2) = (vec![1], vec![1], vec![1]);
    }
    const CHUNK: usize = 16; // as in layout.wgsl
    let inner = *sh.last().unwrap_or(&1);
    let chunks = inner.div_ceil(CHUNK);
    let invocations = n / inner * chunks;
    let u = |v: usize| u32::try_from(v).map_err(|_| Error::invalid(op, format!("index {v} is too large")));
    let mut imm = Imm::default().u(u(invocations)?).u(sh.len() as u32).u(u(src_off)?).u(u(dst_off)?);
    imm = imm.u(u(chunks)?).u(0).u(0).u(0);
    for arr in [&sh, &s2, &d2] {
        for i in 0..MAX_RANK {
            imm = imm.u(u(arr.get(i).copied().unwrap_or(0))?);
        }
    }
    let gpu = src.gpu();
    launch(gpu, &LAYOUT, "strided_copy", &[], &[(0, src), (1, dst)], &imm, gpu.grid_1d(invocations as u64, 256))
}

fn check_f32(op: &str, t: &Tensor) -> Result<()> {
    t.expect_dtype(op, DType::F32)
}

/// Reorders the axes: output axis i is input axis `perm[i]`.
pub fn permute(x: &Tensor, perm: &[usize]) -> Result<Tensor> {
    check_f32("permute", x)?;
    let rank = x.rank();
    let mut seen = vec![false; rank];
    if perm.len() != rank || perm.iter().any(|&p| p >= rank || std::mem::replace(&mut seen[p], true)) {
        return Err(Error::invalid(
            "permute",
            format!("{perm:?} is not a permutation of the {rank} axes of {:?}", x.shape()),
        ));
    }
    let out_shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    // moving only size-1 axes leaves the memory order as it is
    let moved: Vec<usize> = perm.iter().copied().filter(|&p| x.shape()[p] != 1).collect();
    if moved.windows(2).all(|w| w[0] < w[1]) {
        return x.reshape(&out_shape);
    }
    let in_strides = contiguous_strides(x.shape());
    let ss: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let y = Tensor::empty(x.gpu(), &out_shape, DType::F32)?;
    strided_copy("permute", x, 0, &ss, &y, 0, &contiguous_strides(&out_shape), &out_shape)?;
    Ok(y)
}

/// Swaps two axes.
pub fn transpose(x: &Tensor, a: usize, b: usize) -> Result<Tensor> {
    let mut perm: Vec<usize> = (0..x.rank()).collect();
    if a >= perm.len() || b >= perm.len() {
        return Err(Error::invalid("transpose", format!("axes {a}, {b} out of range for {:?}", x.shape())));
    }
    perm.swap(a, b);
    permute(x, &perm)
}

/// Broadcasts `x` to `shape` (trailing axes aligned, size-1 axes stretched).
pub fn expand(x: &Tensor, shape: &[usize]) -> Result<Tensor> {
    check_f32("expand", x)?;
    let out = super::broadcast_shape("expand", x.shape(), shape)?;
    if out != shape {
        return Err(Error::shape("expand", x.shape(), shape, "cannot broadcast to the target"));
    }
    let offset = shape.len() - x.rank();
    let xs = contiguous_strides(x.shape());
    let ss: Vec<usize> =
        (0..shape.len()).map(|i| if i < offset || x.shape()[i - offset] == 1 { 0 } else { xs[i - offset] }).collect();
    let y = Tensor::empty(x.gpu(), shape, DType::F32)?;
    strided_copy("expand", x, 0, &ss, &y, 0, &contiguous_strides(shape), shape)?;
    Ok(y)
}

/// Sums `g` down to `shape` (the gradient of broadcasting a tensor of `shape`).
pub fn sum_to_shape(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let extra = g
        .rank()
        .checked_sub(shape.len())
        .ok_or_else(|| Error::shape("sum_to_shape", g.shape(), shape, "target has more axes"))?;
    let mut t = g.clone();
    for _ in 0..extra {
        t = super::sum(&t, 0, false)?;
    }
    for (i, &d) in shape.iter().enumerate() {
        if d == 1 && t.shape()[i] != 1 {
            t = super::sum(&t, i as isize, true)?;
        }
    }
    if t.shape() != shape {
        return Err(Error::shape("sum_to_shape", g.shape(), shape, "shapes are not broadcast-compatible"));
    }
    Ok(t)
}

/// Elements `start..end` along `axis`.
pub fn slice(x: &Tensor, axis: usize, start: usize, end: usize) -> Result<Tensor> {
    check_f32("slice", x)?;
    if axis >= x.rank() || start > end || end > x.shape()[axis] {
        return Err(Error::invalid(
            "slice",
            format!("{start}..{end} along axis {axis} does not fit shape {:?}", x.shape()),
        ));
    }
    let mut out_shape = x.shape().to_vec();
    out_shape[axis] = end - start;
    let xs = contiguous_strides(x.shape());
    // a block that is contiguous in memory and suitably aligned is a view, not a copy
    if x.shape()[..axis].iter().all(|&d| d == 1) {
        if let Ok(v) = x.view(start * xs[axis], &out_shape) {
            return Ok(v);
        }
    }
    let y = Tensor::empty(x.gpu(), &out_shape, DType::F32)?;
    strided_copy("slice", x, start * xs[axis], &xs, &y, 0, &contiguous_strides(&out_shape), &out_shape)?;
    Ok(y)
}

/// Writes `src` into `dst` at `start` along `axis`, in place (the rest of `dst` is kept); all
/// other dimensions must agree. Used to append rows to a KV cache.
pub fn write_into(src: &Tensor, dst: &Tensor, axis: usize, start: usize) -> Result<()> {
    check_f32("write_into", src)?;
    check_f32("write_into", dst)?;
    let fits = src.rank() == dst.rank()
        && axis < dst.rank()
        && start + src.shape()[axis] <= dst.shape()[axis]
        && (0..dst.rank()).all(|i| i == axis || src.shape()[i] == dst.shape()[i]);
    if !fits {
        return Err(Error::shape("write_into", src.shape(), dst.shape(), format!("at {start} along axis {axis}")));
    }
    if src.numel() == 0 {
        return Ok(());
    }
    write_slice(src, dst, axis, start)
}

/// Writes `src` into `dst` at `start` along `axis` (the rest of `dst` is kept).
fn write_slice(src: &Tensor, dst: &Tensor, axis: usize, start: usize) -> Result<()> {
    let ds = contiguous_strides(dst.shape());
    strided_copy("concat", src, 0, &contiguous_strides(src.shape()), dst, start * ds[axis], &ds, src.shape())
}

/// Joins tensors along `axis` (all other dimensions equal).
pub fn concat(parts: &[&Tensor], axis: usize) -> Result<Tensor> {
    let first = parts.first().ok_or_else(|| Error::invalid("concat", "no tensors to join"))?;
    for p in parts {
        check_f32("concat", p)?;
        let same_rank = p.rank() == first.rank() && axis < p.rank();
        let same_rest = same_rank && (0..p.rank()).all(|i| i == axis || p.shape()[i] == first.shape()[i]);
        if !same_rest {
            return Err(Error::shape("concat", first.shape(), p.shape(), format!("only axis {axis} may differ")));
        }
    }
    let mut out_shape = first.shape().to_vec();
    out_shape[axis] = parts.iter().map(|p| p.shape()[axis]).sum();
    let y = Tensor::empty(first.gpu(), &out_shape, DType::F32)?;
    let mut at = 0;
    for p in parts {
        if p.numel() > 0 {
            write_slice(p, &y, axis, at)?;
        }
        at += p.shape()[axis];
    }
    Ok(y)
}

fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

impl Var {
    /// Differentiable [`permute`].
    pub fn permute(&self, perm: &[usize]) -> Result<Var> {
        let y = permute(self.tensor(), perm)?;
        let inv = inverse(perm);
        self.tape().record(y, &[self], move |g| Ok(vec![Some(permute(g, &inv)?)]))
    }

    /// Differentiable [`transpose`].
    pub fn transpose(&self, a: usize, b: usize) -> Result<Var> {
        let mut perm: Vec<usize> = (0..self.shape().len()).collect();
        if a >= perm.len() || b >= perm.len() {
            return Err(Error::invalid("transpose", format!("axes {a}, {b} out of range for {:?}", self.shape())));
        }
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Differentiable [`expand`].
    pub fn expand(&self, shape: &[usize]) -> Result<Var> {
        let y = expand(self.tensor(), shape)?;
        let in_shape = self.shape().to_vec();
        self.tape().record(y, &[self], move |g| Ok(vec![Some(sum_to_shape(g, &in_shape)?)]))
    }

    /// Differentiable [`slice()`].
    pub fn slice(&self, axis: usize, start: usize, end: usize) -> Result<Var> {
        let y = slice(self.tensor(), axis, start, end)?;
        let in_shape = self.shape().to_vec();
        self.tape().record(y, &[self], move |g| {
            let dx = Tensor::zeros(g.gpu(), &in_shape, DType::F32)?;
            if g.numel() > 0 {
                write_slice(g, &dx, axis, start)?;
            }
            Ok(vec![Some(dx)])
        })
    }

    /// Differentiable [`concat()`].
    pub fn concat(parts: &[&Var], axis: usize) -> Result<Var> {
        let first = parts.first().ok_or_else(|| Error::invalid("concat", "no tensors to join"))?;
        let tensors: Vec<&Tensor> = parts.iter().map(|v| v.tensor()).collect();
        let y = concat(&tensors, axis)?;
        let sizes: Vec<usize> = parts.iter().map(|v| v.shape()[axis]).collect();
        first.tape().record(y, parts, move |g| {
            let mut at = 0;
            let mut out = Vec::with_capacity(sizes.len());
            for &s in &sizes {
                out.push(Some(slice(g, axis, at, at + s)?));
                at += s;
            }
            Ok(out)
        })
    }
}
