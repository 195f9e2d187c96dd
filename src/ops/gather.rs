//! Gather rows by index and scatter-add rows back (`shaders/gather.wgsl`): how masked tokens
//! are picked and how their gradients return. Deterministic: the scatter uses a CSR inverse of
//! the index built when the [`RowIndex`] is made.

use super::{Imm, launch};
use crate::autodiff::Var;
use crate::error::{Error, Result};
use crate::gpu::kernels::GATHER;
use crate::gpu::{DType, Gpu, Tensor};

/// Indices into the rows of a `[rows, ..]` tensor, with their inverse for scatter-add.
#[derive(Clone, Debug)]
pub struct RowIndex {
    idx: Tensor,
    off: Tensor,
    items: Tensor,
    rows: usize,
    len: usize,
}

impl RowIndex {
    /// `indices` into a tensor of `rows` rows; every index must be `< rows` (repeats allowed).
    pub fn new(gpu: &Gpu, indices: &[u32], rows: usize) -> Result<RowIndex> {
        if let Some((i, &bad)) = indices.iter().enumerate().find(|(_, v)| **v as usize >= rows) {
            return Err(Error::invalid("RowIndex", format!("index {i} is {bad}, but there are only {rows} rows")));
        }
        let mut count = vec![0u32; rows + 1];
        for &v in indices {
            count[v as usize + 1] += 1;
        }
        for r in 0..rows {
            count[r + 1] += count[r];
        }
        let mut fill = count.clone();
        let mut items = vec![0u32; indices.len()];
        for (i, &v) in indices.iter().enumerate() {
            items[fill[v as usize] as usize] = i as u32;
            fill[v as usize] += 1;
        }
        let pad = |v: Vec<u32>| if v.is_empty() { vec![0] } else { v };
        Ok(RowIndex {
            idx: Tensor::from_u32(gpu, &pad(indices.to_vec()), &[indices.len().max(1)])?,
            off: Tensor::from_u32(gpu, &count, &[rows + 1])?,
            items: Tensor::from_u32(gpu, &pad(items), &[indices.len().max(1)])?,
            rows,
            len: indices.len(),
        })
    }

    /// Number of indices.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows of the indexed tensor.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

fn row_width(op: &str, x: &Tensor) -> Result<usize> {
    x.expect_dtype(op, DType::F32)?;
    if x.rank() == 0 {
        return Err(Error::invalid(op, "needs at least one axis"));
    }
    Ok(x.shape()[1..].iter().product())
}

/// `y[i] = x[index[i]]` along the first axis.
pub fn gather_rows(x: &Tensor, index: &RowIndex) -> Result<Tensor> {
    let c = row_width("gather_rows", x)?;
    if x.shape()[0] != index.rows {
        return Err(Error::invalid(
            "gather_rows",
            format!("index made for {} rows, tensor {:?}", index.rows, x.shape()),
        ));
    }
    let mut shape = x.shape().to_vec();
    shape[0] = index.len;
    let gpu = x.gpu();
    let y = Tensor::empty(gpu, &shape, DType::F32)?;
    let n = u32::try_from(y.numel()).map_err(|_| Error::invalid("gather_rows", "too many elements"))?;
    launch(
        gpu,
        &GATHER,
        "gather_rows",
        &[],
        &[(0, x), (1, &index.idx), (2, &y)],
        &Imm::default().u(n).u(c as u32),
        gpu.grid_1d(n as u64, 256),
    )?;
    Ok(y)
}

/// `y[r] = Σ_{i: index[i] = r} src[i]`: a `[rows, ..]` tensor (rows never indexed are zero).
pub fn scatter_add_rows(src: &Tensor, index: &RowIndex) -> Result<Tensor> {
    let c = row_width("scatter_add_rows", src)?;
    if src.shape()[0] != index.len {
        return Err(Error::invalid("scatter_add_rows", format!("{} indices for {:?}", index.len, src.shape())));
    }
    let mut shape = src.shape().to_vec();
    shape[0] = index.rows;
    let gpu = src.gpu();
    let y = Tensor::empty(gpu, &shape, DType::F32)?;
    let n = u32::try_from(y.numel()).map_err(|_| Error::invalid("scatter_add_rows", "too many elements"))?;
    let bindings = [(0, src), (2, &y), (3, &index.off), (4, &index.items)];
    launch(gpu, &GATHER, "scatter_rows", &[], &bindings, &Imm::default().u(n).u(c as u32), gpu.grid_1d(n as u64, 256))?;
    Ok(y)
}

impl Var {
    /// Differentiable [`gather_rows`] (its backward is a scatter-add).
    pub fn gather_rows(&self, index: &RowIndex) -> Result<Var> {
        let y = gather_rows(self.tensor(), index)?;
        let index = index.clone();
        self.tape().record(y, &[self], move |g| Ok(vec![Some(scatter_add_rows(g, &index)?)]))
    }

    /// Differentiable [`scatter_add_rows`] (its backward is a gather).
    pub fn scatter_add_rows(&self, index: &RowIndex) -> Result<Var> {
        let y = scatter_add_rows(self.tensor(), index)?;
        let index = index.clone();
        self.tape().record(y, &[self], move |g| Ok(vec![Some(gather_rows(g, &index)?)]))
    }
}
