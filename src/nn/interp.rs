//! The interpolation module (MODEL.md §2): scattered observations → features on a learned grid
//! Ξ by distance-biased cross-attention, then Physics Attention; and its mirror, the output
//! cross-attention from the grid to any coordinates.

use super::physics_attention::TransolverBlock;
use super::{Embedding, Linear, nerf_encoding};
use crate::autodiff::{Init, Param, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::Tensor;

/// Hidden width and heads of the cross-attention (paper: 16 = 4 heads of 4).
pub const HIDDEN: usize = 16;
pub const HEADS: usize = 4;
/// NeRF features per coordinate.
pub const NERF: usize = 24;

/// Regular grid coordinates in [0, 1)^D for `sides` points per axis (row-major).
pub fn regular_grid(sides: &[usize]) -> Vec<f32> {
    let n: usize = sides.iter().product();
    (0..n)
        .flat_map(|i| {
            let mut rem = i;
            let mut c = vec![0f32; sides.len()];
            for a in (0..sides.len()).rev() {
                c[a] = (rem % sides[a]) as f32 / sides[a] as f32;
                rem /= sides[a];
            }
            c
        })
        .collect()
}

/// The distance slopes of the heads, 1, 2, .., HEADS at init (MODEL.md §2).
fn slopes_param(store: &mut ParamStore, name: &str) -> Result<Param> {
    store.add(&format!("{name}.slopes"), &[HEADS], Init::Values((1..=HEADS).map(|h| h as f32).collect()), false)
}

/// Splits `[B, N, HIDDEN]` into heads `[B, HEADS, N, HIDDEN/HEADS]`.
fn heads(v: &Var) -> Result<Var> {
    let s = v.shape().to_vec();
    v.reshape(&[s[0], s[1], HEADS, HIDDEN / HEADS])?.permute(&[0, 2, 1, 3])
}

fn merge(v: &Var) -> Result<Var> {
    let s = v.shape().to_vec();
    v.permute(&[0, 2, 1, 3])?.reshape(&[s[0], s[2], HIDDEN])
}

/// Scattered values → features on the learned grid Ξ.
#[derive(Debug, Clone)]
pub struct Interpolation {
    pub dims: usize,
    pub grid: Vec<usize>,
    pub channels: usize,
    pub out_channels: usize,
    pub keys: Linear,
    pub values: Linear,
    pub queries: Embedding,
    /// Learned query coordinates ξ `[1, M, D]`, initialised on the regular grid.
    pub xi: Param,
    /// Distance slopes per head (1, 2, 3, 4 at init).
    pub slopes: Param,
    pub out: Linear,
    pub blocks: Vec<TransolverBlock>,
    pub periodic: bool,
}

impl Interpolation {
    /// `channels` physical channels onto a grid of `grid` points per axis with `out_channels`
    /// features, followed by `layers` Physics Attention blocks of `slices` slices.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        channels: usize,
        grid: &[usize],
        out_channels: usize,
        layers: usize,
        slices: usize,
        periodic: bool,
    ) -> Result<Interpolation> {
        let dims = grid.len();
        let m: usize = grid.iter().product();
        let mut blocks = Vec::new();
        for l in 0..layers {
            blocks.push(TransolverBlock::new(
                store,
                &format!("{name}.physics{l}"),
                out_channels,
                HEADS.min(out_channels),
                slices,
            )?);
        }
        Ok(Interpolation {
            dims,
            grid: grid.to_vec(),
            channels,
            out_channels,
            keys: Linear::new(store, &format!("{name}.keys"), NERF * dims, HIDDEN, true)?,
            values: Linear::new(store, &format!("{name}.values"), channels, HIDDEN, true)?,
            queries: Embedding::new(store, &format!("{name}.queries"), m, HIDDEN, 0.02)?,
            xi: store.add(&format!("{name}.xi"), &[1, m, dims], Init::Values(regular_grid(grid)), false)?,
            slopes: slopes_param(store, name)?,
            out: Linear::new(store, &format!("{name}.out"), HIDDEN, out_channels, true)?,
            blocks,
            periodic,
        })
    }

    /// `values` `[B, N, C]` observed at `coords` (`B·N·D` values in [0, 1), padded rows beyond
    /// `counts[b]` are ignored) → grid features `[B, M, out_channels]`.
    pub fn forward(
        &self,
        tape: &Tape,
        store: &ParamStore,
        values: &Var,
        coords: &[f32],
        counts: &[u32],
    ) -> Result<Var> {
        let s = values.shape().to_vec();
        if s.len() != 3 || s[2] != self.channels || coords.len() != s[0] * s[1] * self.dims || counts.len() != s[0] {
            return Err(Error::invalid(
                "Interpolation",
                format!(
                    "values [B, N, {}] with B·N·{} coordinates and B counts; got {s:?}, {} coordinates, {} counts",
                    self.channels,
                    self.dims,
                    coords.len(),
                    counts.len()
                ),
            ));
        }
        let (b, n) = (s[0], s[1]);
        let gpu = values.gpu().clone();
        let nerf =
            tape.constant(Tensor::from_slice(&gpu, &nerf_encoding(coords, self.dims), &[b, n, NERF * self.dims])?);
        let k = heads(&self.keys.forward(tape, store, &nerf)?)?;
        let v = heads(&self.values.forward(tape, store, values)?)?;
        let m: usize = self.grid.iter().product();
        let q = self.queries.all(tape, store)?.reshape(&[1, m, HIDDEN])?.expand(&[b, m, HIDDEN])?;
        let q = heads(&q)?;
        let kc = tape.constant(Tensor::from_slice(&gpu, coords, &[b, n, self.dims])?);
        let xi = tape.param(store, &self.xi)?;
        let slopes = tape.param(store, &self.slopes)?;
        let att = q.cross_attention(&k, &v, &xi, &kc, &slopes, Some(counts), self.periodic)?;
        let mut h = self.out.forward(tape, store, &merge(&att)?)?;
        for blk in &self.blocks {
            h = blk.forward(tape, store, &h)?;
        }
        Ok(h)
    }
}

/// Grid features → values at any coordinates (NeRF-encoded queries, the same distance bias).
#[derive(Debug, Clone)]
pub struct OutputAttention {
    pub dims: usize,
    pub in_channels: usize,
    pub channels: usize,
    pub queries: Linear,
    pub keys: Linear,
    pub values: Linear,
    pub slopes: Param,
    pub out: Linear,
    pub periodic: bool,
}

impl OutputAttention {
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        dims: usize,
        in_channels: usize,
        channels: usize,
        periodic: bool,
    ) -> Result<OutputAttention> {
        Ok(OutputAttention {
            dims,
            in_channels,
            channels,
            queries: Linear::new(store, &format!("{name}.queries"), NERF * dims, HIDDEN, true)?,
            keys: Linear::new(store, &format!("{name}.keys"), in_channels, HIDDEN, true)?,
            values: Linear::new(store, &format!("{name}.values"), in_channels, HIDDEN, true)?,
            slopes: slopes_param(store, name)?,
            out: Linear::new(store, &format!("{name}.out"), HIDDEN, channels, true)?,
            periodic,
        })
    }

    /// `grid` features `[B, M, in_channels]` at `grid_coords` (`[1 or B, M, D]`, learned or fixed)
    /// → values `[B, Q, channels]` at `query_coords` (`Q·D` values, shared by the batch).
    pub fn forward(
        &self,
        tape: &Tape,
        store: &ParamStore,
        grid: &Var,
        grid_coords: &Var,
        query_coords: &[f32],
    ) -> Result<Var> {
        let s = grid.shape().to_vec();
        if s.len() != 3 || s[2] != self.in_channels || !query_coords.len().is_multiple_of(self.dims) {
            return Err(Error::invalid(
                "OutputAttention",
                format!("grid [B, M, {}] and Q·{} query coordinates; got {s:?}", self.in_channels, self.dims),
            ));
        }
        let (b, m) = (s[0], s[1]);
        let nq = query_coords.len() / self.dims;
        let gpu = grid.gpu().clone();
        let nerf = tape.constant(Tensor::from_slice(
            &gpu,
            &nerf_encoding(query_coords, self.dims),
            &[1, nq, NERF * self.dims],
        )?);
        let q = self.queries.forward(tape, store, &nerf)?.expand(&[b, nq, HIDDEN])?;
        let q = heads(&q)?;
        let k = heads(&self.keys.forward(tape, store, grid)?)?;
        let v = heads(&self.values.forward(tape, store, grid)?)?;
        let qc = tape.constant(Tensor::from_slice(&gpu, query_coords, &[1, nq, self.dims])?);
        let slopes = tape.param(store, &self.slopes)?;
        let counts = vec![m as u32; b];
        let att = q.cross_attention(&k, &v, &qc, grid_coords, &slopes, Some(&counts), self.periodic)?;
        self.out.forward(tape, store, &merge(&att)?)
    }
}
