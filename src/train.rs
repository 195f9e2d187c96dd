//! Training loops. Stage 1: the VAE (relative L2 reconstruction + KL, AdamW, cosine schedule).

use crate::autodiff::{ParamStore, Tape};
use crate::data::dataset::batches;
use crate::data::hdf5::Trajectories;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::model::Vae;
use crate::ops::loss::{kl_diag_normal, relative_l2};
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
        let mut lat = vec![shape[0], vae.config.latent_frames(shape[1])];
        lat.extend(shape[2..shape.len() - 1].iter().map(|&s| vae.config.latent_points(s)));
        lat.push(vae.config.latent_dim);
        let eps = tape.constant(crate::ops::random::normal(gpu, &lat, cfg.seed ^ 0xE95, step)?);
        let out = vae.forward(&tape, store, &x, Some(&eps))?;
        let rec = relative_l2(&out.recon, &x, 1e-12)?;
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
        for (k, &i) in chunk.iter().enumerate() {
            let dst = &mut out[i * data.stride()..(i + 1) * data.stride()];
            for ti in 0..t {
                for p in 0..points {
                    for ci in 0..c {
                        dst[(ti * c + ci) * points + p] = r[((k * t + ti) * points + p) * c + ci];
                    }
                }
            }
        }
    }
    Ok(out)
}
