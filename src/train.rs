//! Training loops. Stage 1: the VAE (relative L2 reconstruction + KL, AdamW, cosine schedule).

use crate::autodiff::{ParamStore, Tape};
use crate::data::dataset::{batches, grid_coords, random_points};
use crate::data::hdf5::Trajectories;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::model::{Points, Vae};
use crate::ops::loss::{kl_diag_normal, relative_l2};
use crate::ops::random::Philox;
use crate::optim::{AdamW, AdamWConfig, LrSchedule, check_finite};

/// Options of stage 1.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VaeTrainConfig {
    pub steps: u64,
    pub batch: usize,
    pub lr: f32,
    pub lr_floor: f32,
    pub seed: u64,
}

impl Default for VaeTrainConfig {
    fn default() -> Self {
        VaeTrainConfig { steps: 1200, batch: 32, lr: 1e-3, lr_floor: 1e-7, seed: 0 }
    }
}

/// Trajectories `idx` as a channels-last batch `[B, T, S.., C]`.
pub fn channels_last(tr: &Trajectories, idx: &[usize]) -> Result<(Vec<f32>, Vec<usize>)> {
    let (t, c) = (tr.frames(), tr.channels());
    let points: usize = tr.spatial().iter().product();
    let mut out = Vec::with_capacity(idx.len() * tr.stride());
    for &i in idx {
        if i >= tr.n() {
            return Err(Error::invalid("batch", format!("trajectory {i} of {}", tr.n())));
        }
        let traj = tr.trajectory(i);
        for ti in 0..t {
            for p in 0..points {
                for ci in 0..c {
                    out.push(traj[(ti * c + ci) * points + p]);
                }
            }
        }
    }
    let mut shape = vec![idx.len(), t];
    shape.extend(tr.spatial());
    shape.push(c);
    Ok((out, shape))
}

/// One logged step.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct StepLog {
    pub step: u64,
    pub loss: f32,
    pub lr: f32,
}

/// Trains `vae` on (normalised) `train` trajectories; `on_step` sees every step's loss.
pub fn train_vae(
    gpu: &Gpu,
    vae: &Vae,
    store: &ParamStore,
    train: &Trajectories,
    cfg: &VaeTrainConfig,
    mut on_step: impl FnMut(StepLog),
) -> Result<()> {
    if train.n() == 0 {
        return Err(Error::invalid("train", "the training split is empty"));
    }
    let mut opt = AdamW::new(store, AdamWConfig::default())?;
    let sched = LrSchedule { base: cfg.lr, warmup: 0, total: cfg.steps, floor: cfg.lr_floor };
    let batch = cfg.batch.min(train.n()).max(1);
    let mut epoch = 0;
    let mut queue: Vec<Vec<usize>> = Vec::new();
    for step in 0..cfg.steps {
        if queue.is_empty() {
            queue = batches(train.n(), batch, cfg.seed, epoch, true);
            queue.reverse();
            epoch += 1;
        }
        let idx = queue.pop().expect("a batch");
        let (data, shape) = channels_last(train, &idx)?;
        let tape = Tape::new(gpu);
        let x = tape.constant(Tensor::from_slice(gpu, &data, &shape)?);
        let grid_shape: Vec<usize> = match &vae.config.interp {
            Some(i) => i.grid.clone(),
            None => shape[2..shape.len() - 1].to_vec(),
        };
        let mut lat = vec![shape[0], vae.config.latent_frames(shape[1])];
        lat.extend(grid_shape.iter().map(|&s| vae.config.latent_points(s)));
        lat.push(vae.config.latent_dim);
        let eps = tape.constant(crate::ops::random::normal(gpu, &lat, cfg.seed ^ 0xE95, step)?);
        let (out, target) = if vae.interp.is_some() {
            // a fresh random 20–100 % of the points per sample; the loss is on the full grid
            let mut rng = crate::ops::random::Philox::new(cfg.seed ^ 0x1A7E, step);
            let (pts, target_shape) = sample_points(&data, &shape, &mut rng, None)?;
            let values = tape.constant(Tensor::from_slice(gpu, &pts.values, &pts.shape)?);
            let obs = Points { values: &values, coords: &pts.coords, counts: &pts.counts };
            (vae.forward_points(&tape, store, &obs, &pts.queries, Some(&eps))?, x.reshape(&target_shape)?)
        } else {
            (vae.forward(&tape, store, &x, Some(&eps))?, x.clone())
        };
        let rec = relative_l2(&out.recon, &target, 1e-12)?;
        let loss = rec.add(&kl_diag_normal(&out.mean, &out.logvar)?.scale(vae.config.kl_weight)?)?;
        let grads = loss.backward()?;
        let lr = sched.at(step);
        opt.step(store, &grads, lr)?;
        let l = loss.to_vec()?[0];
        check_finite("VAE loss", l, step)?;
        on_step(StepLog { step, loss: l, lr });
    }
    Ok(())
}

/// A batch observed at random points: values `[B, T, N_max, C]` (padded), coordinates
/// `B·N_max·D`, counts, and the full-grid query coordinates.
pub struct PointBatch {
    pub values: Vec<f32>,
    pub shape: Vec<usize>,
    pub coords: Vec<f32>,
    pub counts: Vec<u32>,
    pub queries: Vec<f32>,
}

/// Picks random points of a channels-last batch `[B, T, S.., C]`: a ratio U[0.2, 1] per sample,
/// or `ratio` for every sample. Also returns the `[B, T, Q, C]` shape of the full-grid target.
pub fn sample_points(
    data: &[f32],
    shape: &[usize],
    rng: &mut Philox,
    ratio: Option<f32>,
) -> Result<(PointBatch, Vec<usize>)> {
    let (b, t, c) = (shape[0], shape[1], shape[shape.len() - 1]);
    let spatial = &shape[2..shape.len() - 1];
    let q: usize = spatial.iter().product();
    let dims = spatial.len();
    let grid = grid_coords(spatial);
    let picks: Vec<Vec<u32>> = (0..b)
        .map(|_| {
            let r = ratio.unwrap_or_else(|| 0.2 + 0.8 * rng.uniform());
            random_points(q, r, rng)
        })
        .collect::<Result<_>>()?;
    let nmax = picks.iter().map(|p| p.len()).max().unwrap_or(1);
    let mut values = vec![0f32; b * t * nmax * c];
    let mut coords = vec![0f32; b * nmax * dims];
    for (bi, p) in picks.iter().enumerate() {
        for (j, &pt) in p.iter().enumerate() {
            let pt = pt as usize;
            coords[(bi * nmax + j) * dims..(bi * nmax + j + 1) * dims]
                .copy_from_slice(&grid[pt * dims..(pt + 1) * dims]);
            for ti in 0..t {
                for ci in 0..c {
                    values[((bi * t + ti) * nmax + j) * c + ci] = data[((bi * t + ti) * q + pt) * c + ci];
                }
            }
        }
    }
    let counts = picks.iter().map(|p| p.len() as u32).collect();
    Ok((PointBatch { values, shape: vec![b, t, nmax, c], coords, counts, queries: grid }, vec![b, t, q, c]))
}

/// Writes a channels-last batch `r` `[B, T, P, C]` of trajectories `idx` into `out`, laid out
/// `[N, T, C, P]` (the inverse of [`channels_last`]).
fn scatter_trajectories(r: &[f32], idx: &[usize], out: &mut [f32], t: usize, c: usize, points: usize) {
    let stride = t * c * points;
    for (k, &i) in idx.iter().enumerate() {
        let dst = &mut out[i * stride..(i + 1) * stride];
        for ti in 0..t {
            for p in 0..points {
                for ci in 0..c {
                    dst[(ti * c + ci) * points + p] = r[((k * t + ti) * points + p) * c + ci];
                }
            }
        }
    }
}

/// Reconstructions (posterior mean) of every trajectory, `[N, T, C, S..]` like the input.
pub fn reconstruct(gpu: &Gpu, vae: &Vae, store: &ParamStore, data: &Trajectories, batch: usize) -> Result<Vec<f32>> {
    let (t, c) = (data.frames(), data.channels());
    let points: usize = data.spatial().iter().product();
    let mut out = vec![0f32; data.data.len()];
    let idx: Vec<usize> = (0..data.n()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let (x, shape) = channels_last(data, chunk)?;
        let tape = Tape::no_grad(gpu);
        let r =
            vae.forward(&tape, store, &tape.constant(Tensor::from_slice(gpu, &x, &shape)?), None)?.recon.to_vec()?;
        scatter_trajectories(&r, chunk, &mut out, t, c, points);
    }
    Ok(out)
}

/// With the interpolation module: reconstructions from a random `ratio` of each trajectory's
/// points (the same draw for a given `seed`), decoded on the data's grid or on `out_grid`
/// (points per axis; twice as fine for super-resolution): `[N, T, C, S_out..]`.
#[allow(clippy::too_many_arguments)]
pub fn reconstruct_points(
    gpu: &Gpu,
    vae: &Vae,
    store: &ParamStore,
    data: &Trajectories,
    ratio: f32,
    seed: u64,
    batch: usize,
    out_grid: Option<&[usize]>,
) -> Result<Vec<f32>> {
    let (t, c) = (data.frames(), data.channels());
    let out_grid = out_grid.unwrap_or(data.spatial()).to_vec();
    let queries = grid_coords(&out_grid);
    let points: usize = out_grid.iter().product();
    let stride = t * c * points;
    let mut out = vec![0f32; data.n() * stride];
    let idx: Vec<usize> = (0..data.n()).collect();
    let mut rng = Philox::new(seed, 0xE7A1);
    for chunk in idx.chunks(batch.max(1)) {
        let (x, shape) = channels_last(data, chunk)?;
        let (pts, _) = sample_points(&x, &shape, &mut rng, Some(ratio))?;
        let tape = Tape::no_grad(gpu);
        let values = tape.constant(Tensor::from_slice(gpu, &pts.values, &pts.shape)?);
        let obs = Points { values: &values, coords: &pts.coords, counts: &pts.counts };
        let r = vae.forward_points(&tape, store, &obs, &queries, None)?.recon.to_vec()?;
        scatter_trajectories(&r, chunk, &mut out, t, c, points);
    }
    Ok(out)
}
