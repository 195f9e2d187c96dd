//! Fused distance-biased cross-attention (`shaders/cross_attention.wgsl`), forward and
//! backward, with key padding and an optional periodic (minimum-image) distance.

use super::{Imm, launch};
use crate::autodiff::Var;
use crate::error::{Error, Result};
use crate::gpu::kernels::CROSS_ATTENTION;
use crate::gpu::{DType, Gpu, Tensor};

/// Largest head dimension of the kernel (`MAX_DH` in the shader).
pub const MAX_HEAD_DIM: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    h: usize,
    nq: usize,
    nk: usize,
    dh: usize,
    dim: usize,
    bq: usize,
    bk: usize,
}

fn dims(q: &Tensor, k: &Tensor, v: &Tensor, qc: &Tensor, kc: &Tensor, slopes: &Tensor) -> Result<Dims> {
    let op = "cross_attention";
    for t in [q, k, v, qc, kc, slopes] {
        t.expect_dtype(op, DType::F32)?;
    }
    if q.rank() != 4 || k.shape() != v.shape() || k.rank() != 4 {
        return Err(Error::shape(op, q.shape(), k.shape(), "q is [B, H, Nq, dh], k and v are [B, H, Nk, dh]"));
    }
    let (b, h, nq, dh) = (q.shape()[0], q.shape()[1], q.shape()[2], q.shape()[3]);
    let nk = k.shape()[2];
    if k.shape()[0] != b || k.shape()[1] != h || k.shape()[3] != dh {
        return Err(Error::shape(op, q.shape(), k.shape(), "batch, heads and head dimension must agree"));
    }
    if dh == 0 || dh > MAX_HEAD_DIM {
        return Err(Error::invalid(op, format!("head dimension {dh} must be in 1..={MAX_HEAD_DIM}")));
    }
    if slopes.shape() != [h] {
        return Err(Error::shape(op, slopes.shape(), &[h], "one slope per head"));
    }
    if qc.rank() != 3 || kc.rank() != 3 || qc.shape()[1] != nq || kc.shape()[1] != nk || qc.shape()[2] != kc.shape()[2]
    {
        return Err(Error::shape(
            op,
            qc.shape(),
            kc.shape(),
            format!("coordinates are [1 or B, Nq={nq}, D] and [1 or B, Nk={nk}, D]"),
        ));
    }
    let dim = qc.shape()[2];
    if !(1..=3).contains(&dim) {
        return Err(Error::invalid(op, format!("coordinates of dimension {dim}: 1, 2 or 3 supported")));
    }
    let (bq, bk) = (qc.shape()[0], kc.shape()[0]);
    if !(bq == 1 || bq == b) || !(bk == 1 || bk == b) {
        return Err(Error::shape(op, qc.shape(), kc.shape(), format!("coordinate batches must be 1 or {b}")));
    }
    Ok(Dims { b, h, nq, nk, dh, dim, bq, bk })
}

/// Loop passes of one invocation: every query (forward, dq) or key (dk/dv) walks all keys
/// (queries) with two loops over the head dimension each, and a few more passes.
fn loop_passes(d: &Dims) -> usize {
    d.nq.max(d.nk) * (2 * d.dh + d.dim + 3)
}

/// Mesa's software drivers stop an invocation's loops after a fixed budget of passes
/// ([`LOOP_BUDGET`](super::LOOP_BUDGET)): refuse shapes that would exceed it there.
fn check_loop_budget(gpu: &Gpu, d: &Dims) -> Result<()> {
    if gpu.loop_capped() && loop_passes(d) > super::LOOP_BUDGET {
        return Err(Error::invalid(
            "cross_attention",
            format!(
                "{} queries and {} keys of head dimension {} need about {} loop passes in one invocation, more \
                 than {} runs (its loops stop silently after 65,535); use fewer points (e.g. a coarser \
                 interpolation grid) or a GPU",
                d.nq,
                d.nk,
                d.dh,
                loop_passes(d),
                gpu.adapter().name
            ),
        ));
    }
    Ok(())
}

fn imm(d: &Dims) -> Result<Imm> {
    let u = |v: usize| u32::try_from(v).map_err(|_| Error::invalid("cross_attention", "sizes too large"));
    u(d.b * d.h * d.nq.max(d.nk) * d.dh)?;
    Ok(Imm::default()
        .u(u(d.b)?)
        .u(u(d.h)?)
        .u(u(d.nq)?)
        .u(u(d.nk)?)
        .u(u(d.dh)?)
        .u(u(d.dim)?)
        .u(if d.bq == 1 { 0 } else { u(d.nq * d.dim)? })
        .u(if d.bk == 1 { 0 } else { u(d.nk * d.dim)? })
        .u(u(d.bq * d.nq * d.dim)?)
        .f(1.0 / (d.dh as f32).sqrt()))
}

fn flat(t: &Tensor) -> Result<Tensor> {
    t.reshape(&[t.numel()])
}

/// [coords, meta] packed for the kernel.
fn pack(gpu: &Gpu, qc: &Tensor, kc: &Tensor, slopes: &Tensor, nvalid: &[u32], d: &Dims) -> Result<(Tensor, Tensor)> {
    let coords = super::concat(&[&flat(qc)?, &flat(kc)?], 0)?;
    let counts: Vec<f32> = nvalid.iter().map(|&c| c.min(d.nk as u32) as f32).collect();
    let meta = super::concat(&[slopes, &Tensor::from_slice(gpu, &counts, &[d.b])?], 0)?;
    Ok((coords, meta))
}

fn groups(gpu: &Gpu, n: usize) -> [u32; 3] {
    gpu.grid_1d(n as u64, 64)
}

fn overrides(periodic: bool) -> [(&'static str, f64); 1] {
    [("PERIODIC", if periodic { 1.0 } else { 0.0 })]
}

/// Forward pass on tensors: `(output [B, H, Nq, dh], stats)`; `nvalid[b]` keys of batch b are
/// used (all when `None`).
#[allow(clippy::too_many_arguments)]
pub fn cross_attention_forward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    qc: &Tensor,
    kc: &Tensor,
    slopes: &Tensor,
    nvalid: Option<&[u32]>,
    periodic: bool,
) -> Result<(Tensor, Tensor)> {
    let d = dims(q, k, v, qc, kc, slopes)?;
    let all = vec![d.nk as u32; d.b];
    let nvalid = nvalid.unwrap_or(&all);
    if nvalid.len() != d.b {
        return Err(Error::invalid("cross_attention", format!("{} key counts for a batch of {}", nvalid.len(), d.b)));
    }
    let gpu = q.gpu();
    check_loop_budget(gpu, &d)?;
    let (coords, meta) = pack(gpu, qc, kc, slopes, nvalid, &d)?;
    let n = d.b * d.h * d.nq;
    let o = Tensor::empty(gpu, q.shape(), DType::F32)?;
    let stats = Tensor::empty(gpu, &[2 * n], DType::F32)?;
    let bindings = [(0, q), (1, k), (2, v), (3, &coords), (4, &meta), (5, &o), (6, &stats)];
    launch(gpu, &CROSS_ATTENTION, "xattn_forward", &overrides(periodic), &bindings, &imm(&d)?, groups(gpu, n))?;
    Ok((o, stats))
}

/// Sums a per-(batch, head, point) coordinate gradient `[B, H, N, D]` to the coordinates'
/// shape `[1 or B, N, D]`.
fn coord_grad(part: Tensor, b: usize, h: usize, n: usize, dim: usize, shared: bool) -> Result<Tensor> {
    let g = super::sum(&part.reshape(&[b, h, n, dim])?, 1, false)?;
    if shared { super::sum(&g, 0, true) } else { Ok(g) }
}

impl Var {
    /// Differentiable fused distance-biased cross-attention. `self` is q `[B, H, Nq, dh]`;
    /// `qc` `[1 or B, Nq, D]` and `kc` `[1 or B, Nk, D]` are coordinates in [0, 1]^D; `slopes`
    /// `[H]`; `nvalid` the number of valid keys per batch (key padding).
    #[allow(clippy::too_many_arguments)]
    pub fn cross_attention(
        &self,
        k: &Var,
        v: &Var,
        qc: &Var,
        kc: &Var,
        slopes: &Var,
        nvalid: Option<&[u32]>,
        periodic: bool,
    ) -> Result<Var> {
        let (q_t, k_t, v_t) = (self.tensor().clone(), k.tensor().clone(), v.tensor().clone());
        let (qc_t, kc_t, sl_t) = (qc.tensor().clone(), kc.tensor().clone(), slopes.tensor().clone());
        let (o, stats) = cross_attention_forward(&q_t, &k_t, &v_t, &qc_t, &kc_t, &sl_t, nvalid, periodic)?;
        let d = dims(&q_t, &k_t, &v_t, &qc_t, &kc_t, &sl_t)?;
        let counts = nvalid.map(|c| c.to_vec()).unwrap_or_else(|| vec![d.nk as u32; d.b]);
        let o_saved = o.clone();
        self.tape().record(o, &[self, k, v, qc, kc, slopes], move |dout| {
            let gpu = q_t.gpu();
            let (coords, meta) = pack(gpu, &qc_t, &kc_t, &sl_t, &counts, &d)?;
            let n = d.b * d.h * d.nq;
            let nkt = d.b * d.h * d.nk;
            let im = imm(&d)?;
            let ov = overrides(periodic);
            launch(
                gpu,
                &CROSS_ATTENTION,
                "xattn_backward_prep",
                &ov,
                &[(6, &stats), (7, dout), (10, &o_saved)],
                &im,
                groups(gpu, n),
            )?;
            let gq = Tensor::empty(gpu, &[n * d.dh + n + n * d.dim], DType::F32)?;
            let common = [(0, &q_t), (1, &k_t), (2, &v_t), (3, &coords), (4, &meta), (7, dout), (11, &stats)];
            let mut b = common.to_vec();
            b.push((8, &gq));
            launch(gpu, &CROSS_ATTENTION, "xattn_backward_q", &ov, &b, &im, groups(gpu, n))?;
            let gkv = Tensor::empty(gpu, &[2 * nkt * d.dh + nkt * d.dim], DType::F32)?;
            let mut b = common.to_vec();
            b.push((9, &gkv));
            launch(gpu, &CROSS_ATTENTION, "xattn_backward_kv", &ov, &b, &im, groups(gpu, nkt))?;
            let dq = super::slice(&gq, 0, 0, n * d.dh)?.reshape(q_t.shape())?;
            let dm = super::slice(&gq, 0, n * d.dh, n * d.dh + n)?.reshape(&[d.b, d.h, d.nq])?;
            let dm = super::sum(&super::sum(&dm, 2, false)?, 0, false)?;
            let dqc = coord_grad(super::slice(&gq, 0, n * d.dh + n, gq.numel())?, d.b, d.h, d.nq, d.dim, d.bq == 1)?;
            let dk = super::slice(&gkv, 0, 0, nkt * d.dh)?.reshape(k_t.shape())?;
            let dv = super::slice(&gkv, 0, nkt * d.dh, 2 * nkt * d.dh)?.reshape(v_t.shape())?;
            let dkc =
                coord_grad(super::slice(&gkv, 0, 2 * nkt * d.dh, gkv.numel())?, d.b, d.h, d.nk, d.dim, d.bk == 1)?;
            Ok(vec![
                Some(dq),
                Some(dk),
                Some(dv),
                Some(dqc.reshape(qc_t.shape())?),
                Some(dkc.reshape(kc_t.shape())?),
                Some(dm),
            ])
        })
    }
}
