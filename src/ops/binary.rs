//! Element-wise binary ops with NumPy broadcasting (`shaders/binary.wgsl`).

use super::{Imm, check_u32_len, launch};
use crate::autodiff::Var;
use crate::error::{Error, Result};
use crate::gpu::kernels::BINARY;
use crate::gpu::{DType, Tensor};

/// Highest rank the broadcasting kernel handles.
pub const MAX_RANK: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    /// `a^b` (WGSL `pow`: undefined for a < 0).
    Pow,
}

impl BinaryOp {
    pub(crate) fn code(self) -> u32 {
        self as u32
    }

    fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Max => "maximum",
            BinaryOp::Min => "minimum",
            BinaryOp::Pow => "pow",
        }
    }
}

/// The broadcast shape of `a` and `b` (trailing dimensions aligned; 1 stretches).
pub fn broadcast_shape(op: &str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i < rank - a.len() { 1 } else { a[i - (rank - a.len())] };
        let db = if i < rank - b.len() { 1 } else { b[i - (rank - b.len())] };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::shape(op, a, b, format!("dimension {i} differs ({da} vs {db}) and neither is 1")));
            }
        };
    }
    Ok(out)
}

/// Element strides of `shape` seen through the broadcast `out` shape (0 where broadcast).
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<u32> {
    let offset = out.len() - shape.len();
    let mut strides = vec![0u32; out.len()];
    let mut s = 1usize;
    for i in (0..shape.len()).rev() {
        strides[i + offset] = if shape[i] == 1 && out[i + offset] != 1 { 0 } else { s as u32 };
        s *= shape[i];
    }
    strides
}

/// `op(a, b)` with broadcasting, on f32 tensors.
pub fn binary(a: &Tensor, b: &Tensor, op: BinaryOp) -> Result<Tensor> {
    let name = op.name();
    a.expect_dtype(name, DType::F32)?;
    b.expect_dtype(name, DType::F32)?;
    let out_shape = broadcast_shape(name, a.shape(), b.shape())?;
    if out_shape.len() > MAX_RANK {
        return Err(Error::invalid(name, format!("rank {} exceeds the supported {MAX_RANK}", out_shape.len())));
    }
    let gpu = a.gpu();
    let y = Tensor::empty(gpu, &out_shape, DType::F32)?;
    let n = check_u32_len(name, &y)?;
    let ov = [("OP", op.code() as f64)];
    if a.shape() == b.shape() && n % 4 == 0 {
        let imm = Imm::default().u(n / 4).u(0).u(0).u(0);
        launch(gpu, &BINARY, "binary_vec4", &ov, &[(3, a), (4, b), (5, &y)], &imm, gpu.grid_1d((n / 4) as u64, 256))?;
        return Ok(y);
    }
    let (shape, sa, sb) = collapsed(a.shape(), b.shape(), &out_shape);
    // one side a vector repeated along the rows of the other: the row-vector kernel
    if let ([_, k], [ka, 1], [0, 1]) | ([_, k], [0, 1], [ka, 1]) = (shape.as_slice(), sa.as_slice(), sb.as_slice()) {
        let (k, ka) = (*k, *ka);
        if k % 4 == 0 && (ka == k) {
            let side = if sa[0] == 0 { 1.0 } else { 0.0 };
            let ov = [("OP", op.code() as f64), ("SIDE", side)];
            let imm = Imm::default().u(n / 4).u(0).u(k / 4).u(0);
            let groups = gpu.grid_1d((n / 4) as u64, 256);
            launch(gpu, &BINARY, "binary_rowvec", &ov, &[(3, a), (4, b), (5, &y)], &imm, groups)?;
            return Ok(y);
        }
    }
    // both operands full, columns, rows or rows per batch of a result that collapses to
    // [R, K] or [B, M, K]: the 2-D kernel
    if let Some((k, m, ka, kb)) = two_d(&shape, &sa, &sb) {
        let ov = [("OP", op.code() as f64), ("SA", ka), ("SB", kb)];
        let imm = Imm::default().u(n / 4).u(0).u(k / 4).u(m);
        let bind = [(0, a), (1, b), (3, a), (4, b), (5, &y)];
        launch(gpu, &BINARY, "binary_2d4", &ov, &bind, &imm, gpu.grid_1d((n / 4) as u64, 256))?;
        return Ok(y);
    }
    let imm = bcast_imm(a, b, &out_shape, n);
    launch(gpu, &BINARY, "binary_bcast", &ov, &[(0, a), (1, b), (2, &y)], &imm, gpu.grid_1d(n as u64, 256))?;
    Ok(y)
}

/// How the 2-D kernel (`binary_2d4`) reads each operand of a collapsed broadcast: `(K, M,
/// kind of a, kind of b)` with kinds 0 full, 1 a column (one value per row), 2 a row, 3 a row
/// per batch of M rows; `None` where the result is not [R, K] or [B, M, K] with K % 4 == 0 or
/// an operand is none of these.
fn two_d(shape: &[u32], sa: &[u32], sb: &[u32]) -> Option<(u32, u32, f64, f64)> {
    let (m, k) = match *shape {
        [r, k] => (r, k),
        [_, m, k] => (m, k),
        _ => return None,
    };
    let kind = |s: &[u32]| match *s {
        [x, 1] if x == k => Some(0.0),
        [1, 0] => Some(1.0),
        [0, 1] => Some(2.0),
        [x, y, 1] if x == m * k && y == k => Some(0.0),
        [x, 1, 0] if x == m => Some(1.0),
        [0, 0, 1] => Some(2.0),
        [x, 0, 1] if x == k => Some(3.0),
        _ => None,
    };
    if !k.is_multiple_of(4) {
        return None;
    }
    Some((k, m, kind(sa)?, kind(sb)?))
}

/// The broadcast of `a` and `b` onto `out` with as few dimensions as possible: extents of 1
/// dropped and neighbours merged where both operands step through them alike (both broadcast,
/// or both contiguous across the pair). The kernel divides once per dimension and element, and
/// integer division is slow on CPU adapters. Returns (shape, strides of a, strides of b).
fn collapsed(a: &[usize], b: &[usize], out: &[usize]) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let sa = broadcast_strides(a, out);
    let sb = broadcast_strides(b, out);
    let (mut shape, mut ra, mut rb): (Vec<u32>, Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..out.len() {
        if out[i] == 1 {
            continue;
        }
        let (e, x, y) = (out[i] as u32, sa[i], sb[i]);
        if let (Some(&lx), Some(&ly)) = (ra.last(), rb.last()) {
            // the previous (outer) dimension continues this one for both operands
            let joins = |outer: u32, inner: u32| (outer == 0 && inner == 0) || (inner != 0 && outer == inner * e);
            if joins(lx, x) && joins(ly, y) {
                let n = shape.len();
                shape[n - 1] *= e;
                ra[n - 1] = x;
                rb[n - 1] = y;
                continue;
            }
        }
        shape.push(e);
        ra.push(x);
        rb.push(y);
    }
    (shape, ra, rb)
}

/// Immediates of the broadcasting entries: n, rank, output shape, strides of a and b.
fn bcast_imm(a: &Tensor, b: &Tensor, out_shape: &[usize], n: u32) -> Imm {
    let (shape, sa, sb) = collapsed(a.shape(), b.shape(), out_shape);
    let mut imm = Imm::default().u(n).u(shape.len() as u32).u(0).u(0);
    for arr in [&shape, &sa, &sb] {
        for i in 0..MAX_RANK {
            imm = imm.u(arr.get(i).copied().unwrap_or(0));
        }
    }
    imm
}

/// The gradient of `op(a, b)` for one side (`0` = a, `1` = b), summed down to that side's shape.
pub fn binary_backward(a: &Tensor, b: &Tensor, dy: &Tensor, op: BinaryOp, side: u32) -> Result<Tensor> {
    let name = op.name();
    let out_shape = broadcast_shape(name, a.shape(), b.shape())?;
    if dy.shape() != out_shape.as_slice() {
        return Err(Error::shape(name, dy.shape(), &out_shape, "gradient shape differs from the output"));
    }
    let gpu = a.gpu();
    let g = Tensor::empty(gpu, &out_shape, DType::F32)?;
    let n = check_u32_len(name, &g)?;
    let ov = [("OP", op.code() as f64), ("SIDE", side as f64)];
    let imm = bcast_imm(a, b, &out_shape, n);
    launch(gpu, &BINARY, "binary_grad", &ov, &[(0, a), (1, b), (2, &g), (6, dy)], &imm, gpu.grid_1d(n as u64, 256))?;
    super::sum_to_shape(&g, if side == 0 { a.shape() } else { b.shape() })
}

impl Var {
    /// Differentiable [`binary`].
    pub fn binary(&self, other: &Var, op: BinaryOp) -> Result<Var> {
        let y = binary(self.tensor(), other.tensor(), op)?;
        let (a, b) = (self.tensor().clone(), other.tensor().clone());
        let (need_a, need_b) = (self.requires_grad(), other.requires_grad());
        self.tape().record(y, &[self, other], move |g| {
            // sums, differences and products need no kernel of their own for the gradient
            let side = |need: bool, k: u32, own: &Tensor, other: &Tensor| -> Result<Option<Tensor>> {
                if !need {
                    return Ok(None);
                }
                let d = match (op, k) {
                    (BinaryOp::Add, _) | (BinaryOp::Sub, 0) => g.clone(),
                    (BinaryOp::Sub, _) => super::scale(g, -1.0)?,
                    (BinaryOp::Mul, _) => mul(g, other)?,
                    _ => return binary_backward(&a, &b, g, op, k).map(Some),
                };
                super::sum_to_shape(&d, own.shape()).map(Some)
            };
            Ok(vec![side(need_a, 0, &a, &b)?, side(need_b, 1, &b, &a)?])
        })
    }

    pub fn add(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Add)
    }
    pub fn sub(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Sub)
    }
    pub fn mul(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Mul)
    }
    pub fn div(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Div)
    }
    pub fn maximum(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Max)
    }
    pub fn minimum(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Min)
    }
    pub fn pow(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Pow)
    }
}

/// Whether `a`, `b` and `c` take the one-pass modulation kernels (f32, a multiple of 4
/// elements); an error unless they have one shape.
fn modulation_fits(a: &Tensor, b: &Tensor, c: &Tensor) -> Result<bool> {
    if a.shape() != b.shape() || a.shape() != c.shape() {
        return Err(Error::shape("modulate", a.shape(), b.shape(), "a, scale and shift must have one shape"));
    }
    Ok([a, b, c].iter().all(|x| x.dtype() == DType::F32) && a.numel().is_multiple_of(4))
}

/// One pass of `entry` (`modulate_vec4`: a·(1 + b) + c; `scale1p_vec4`: a·(1 + b)).
fn modulation_kernel(entry: &'static str, inputs: &[&Tensor]) -> Result<Tensor> {
    let a = inputs[0];
    let gpu = a.gpu();
    let y = Tensor::empty(gpu, a.shape(), DType::F32)?;
    let n = check_u32_len(entry, &y)?;
    let mut bind = vec![(3, a), (4, inputs[1]), (5, &y)];
    if let Some(c) = inputs.get(2) {
        bind.push((7, *c));
    }
    let imm = Imm::default().u(n / 4).u(0).u(0).u(0);
    launch(gpu, &BINARY, entry, &[], &bind, &imm, gpu.grid_1d((n / 4) as u64, 256))?;
    Ok(y)
}

/// adaLN modulation `a·(1 + b) + c` of tensors of one shape: one pass where the size is a
/// multiple of 4, else the three element-wise ops.
pub fn modulate(a: &Tensor, b: &Tensor, c: &Tensor) -> Result<Tensor> {
    if modulation_fits(a, b, c)? {
        return modulation_kernel("modulate_vec4", &[a, b, c]);
    }
    add(&add(a, &mul(a, b)?)?, c)
}

impl Var {
    /// Differentiable adaLN modulation `self·(1 + scale) + shift` (one shape): one pass
    /// forward and two backward where the size is a multiple of 4, instead of three and four.
    pub fn modulate(&self, scale: &Var, shift: &Var) -> Result<Var> {
        if !modulation_fits(self.tensor(), scale.tensor(), shift.tensor())? {
            return self.add(&self.mul(scale)?)?.add(shift);
        }
        let y = modulation_kernel("modulate_vec4", &[self.tensor(), scale.tensor(), shift.tensor()])?;
        let (a, b) = (self.tensor().clone(), scale.tensor().clone());
        let need = [self.requires_grad(), scale.requires_grad(), shift.requires_grad()];
        self.tape().record(y, &[self, scale, shift], move |g| {
            Ok(vec![
                if need[0] { Some(modulation_kernel("scale1p_vec4", &[g, &b])?) } else { None },
                if need[1] { Some(mul(g, &a)?) } else { None },
                if need[2] { Some(g.clone()) } else { None },
            ])
        })
    }
}

pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Add)
}
pub fn sub(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Sub)
}
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Mul)
}
pub fn div(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Div)
}
pub fn maximum(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Max)
}
pub fn minimum(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Min)
}
pub fn pow(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Pow)
}
