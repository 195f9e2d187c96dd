//! Training loops. Stage 1: the VAE (relative L2 reconstruction + KL, AdamW, cosine schedule).

use crate::autodiff::{ParamStore, Tape};
use crate::data::dataset::{batches, grid_coords, random_points};
use crate::data::hdf5::Trajectories;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::model::{Points, Vae};
use crate::ops::loss::{kl_diag_normal, relative_l2};
use crate::ops::random::Philox;
use crate::optim::{AdamW, AdamWConfig, LrSchedule, OptimState, check_finite};

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

/// What a training loop reports to its caller: every step, and resumable checkpoints.
/// A closure `FnMut(StepLog)` is a monitor that takes no checkpoints.
pub trait Monitor {
    /// After every optimiser step.
    fn step(&mut self, log: StepLog);

    /// After `steps_done` steps, every `checkpoint_every` steps and after the last: the
    /// optimiser's state, to save with the parameters (see [`crate::checkpoint::save_training`]).
    fn checkpoint(&mut self, steps_done: u64, opt: &AdamW) -> Result<()> {
        let _ = (steps_done, opt);
        Ok(())
    }
}

impl<F: FnMut(StepLog)> Monitor for F {
    fn step(&mut self, log: StepLog) {
        self(log)
    }
}

/// Where a training loop starts: fresh, or from a checkpoint's optimiser state (the steps taken
/// so far are `state.step`; batches, masks and noise depend only on the seed and the step, so a
/// resumed run gives the numbers of an uninterrupted one).
#[derive(Debug, Clone, Default)]
pub struct Start {
    pub resume: Option<OptimState>,
    /// Call [`Monitor::checkpoint`] every this many steps (0: only after the last).
    pub checkpoint_every: u64,
    /// Stop (with a checkpoint) once this many steps of the schedule are done; continue later
    /// by resuming. `None`: run the whole schedule.
    pub stop_at: Option<u64>,
}

impl Start {
    /// Restores the optimiser and returns the first step to take.
    fn apply(&self, opt: &mut AdamW, steps: u64) -> Result<u64> {
        let Some(state) = &self.resume else { return Ok(0) };
        if state.step > steps {
            return Err(Error::invalid(
                "resume",
                format!("the checkpoint has taken {} steps, more than the {steps} of the schedule", state.step),
            ));
        }
        opt.restore(state)?;
        Ok(state.step)
    }

    fn after(&self, step: u64, steps: u64, opt: &AdamW, monitor: &mut impl Monitor) -> Result<()> {
        let done = step + 1;
        let every = self.checkpoint_every > 0 && done.is_multiple_of(self.checkpoint_every);
        if done == steps || Some(done) == self.stop_at || every {
            monitor.checkpoint(done, opt)?;
        }
        Ok(())
    }
}

/// The next batch of a shuffled epoch over `n` items (a new epoch when the last is used up).
fn next_batch(queue: &mut Vec<Vec<usize>>, epoch: &mut u64, n: usize, batch: usize, seed: u64) -> Vec<usize> {
    if queue.is_empty() {
        *queue = batches(n, batch, seed, *epoch, true);
        queue.reverse();
        *epoch += 1;
    }
    queue.pop().unwrap_or_default()
}

/// Backward, one optimiser step at the scheduled rate, and the loss read back (an error when it
/// is not finite).
fn optimize(
    opt: &mut AdamW,
    store: &ParamStore,
    loss: &crate::autodiff::Var,
    lr: f32,
    step: u64,
    what: &str,
) -> Result<StepLog> {
    let grads = loss.backward()?;
    opt.step(store, &grads, lr)?;
    let l = loss.to_vec()?[0];
    check_finite(what, l, step)?;
    Ok(StepLog { step, loss: l, lr })
}

/// Trains `vae` on (normalised) `train` trajectories; `on_step` sees every step's loss.
pub fn train_vae(
    gpu: &Gpu,
    vae: &Vae,
    store: &ParamStore,
    train: &Trajectories,
    cfg: &VaeTrainConfig,
    start: &Start,
    monitor: &mut impl Monitor,
) -> Result<()> {
    if train.n() == 0 {
        return Err(Error::invalid("train", "the training split is empty"));
    }
    let mut opt = AdamW::new(store, AdamWConfig::default())?;
    let first = start.apply(&mut opt, cfg.steps)?;
    let sched = LrSchedule { base: cfg.lr, warmup: 0, total: cfg.steps, floor: cfg.lr_floor };
    let batch = cfg.batch.min(train.n()).max(1);
    let (mut epoch, mut queue) = (0, Vec::new());
    for step in 0..cfg.steps {
        let idx = next_batch(&mut queue, &mut epoch, train.n(), batch, cfg.seed);
        if step < first {
            continue;
        }
        if start.stop_at.is_some_and(|s| step >= s) {
            break;
        }
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
        monitor.step(optimize(&mut opt, store, &loss, sched.at(step), step, "VAE loss")?);
        start.after(step, cfg.steps, &opt, monitor)?;
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
pub(crate) fn scatter_trajectories(r: &[f32], idx: &[usize], out: &mut [f32], t: usize, c: usize, points: usize) {
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

/// Options of stage 2 (MODEL.md §5): AdamW (0.9, 0.95), weight decay 1e-4, linear warm-up then
/// cosine to `lr_floor`, global gradient-norm clipping.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GeneratorTrainConfig {
    pub steps: u64,
    pub batch: usize,
    pub lr: f32,
    pub lr_floor: f32,
    /// Warm-up steps (the paper's 500, capped at a fifth of a short run).
    pub warmup: u64,
    /// Probability of an in-context step (`[BOS; context; BOS; target]` with a context from
    /// the same environment; MODEL.md §4).
    pub context_prob: f32,
    pub weight_decay: f32,
    pub clip_norm: f32,
    pub seed: u64,
}

impl Default for GeneratorTrainConfig {
    fn default() -> Self {
        GeneratorTrainConfig {
            steps: 600,
            batch: 32,
            lr: 1e-3,
            lr_floor: 1e-5,
            warmup: 500,
            context_prob: 0.5,
            weight_decay: 1e-4,
            clip_norm: 1.0,
            seed: 0,
        }
    }
}

/// Latents of a dataset as generator tokens: posterior means `[N, F', S'.., d]` of the frozen
/// VAE, times `scale`, patched into `[N, F', M, d·p^axes]`.
#[derive(Debug, Clone)]
pub struct LatentTokens {
    pub data: Vec<f32>,
    /// `[N, F', M, D]`.
    pub shape: [usize; 4],
    /// Environment of each sequence (for in-context training); empty: unknown.
    pub env: Vec<i64>,
}

/// Posterior means of every trajectory (normalised data), `[N, F', S'.., d]`, with their shape.
pub fn encode_means(
    gpu: &Gpu,
    vae: &Vae,
    store: &ParamStore,
    data: &Trajectories,
    batch: usize,
) -> Result<(Vec<f32>, Vec<usize>)> {
    if vae.interp.is_some() {
        return Err(Error::invalid(
            "encode",
            "the generator is trained on the regular-grid VAE (interpolation module off, as on the dynamics benchmarks)",
        ));
    }
    let idx: Vec<usize> = (0..data.n()).collect();
    let mut out = Vec::new();
    let mut shape = Vec::new();
    for chunk in idx.chunks(batch.max(1)) {
        let (x, s) = channels_last(data, chunk)?;
        let tape = Tape::no_grad(gpu);
        let (mean, _) = vae.encoder.forward(&tape, store, &tape.constant(Tensor::from_slice(gpu, &x, &s)?))?;
        shape = mean.shape().to_vec();
        out.extend(mean.to_vec()?);
    }
    if let Some(n) = shape.first_mut() {
        *n = data.n();
    }
    Ok((out, shape))
}

/// 1 / standard deviation of all latent values (MODEL.md §4's latent scaling).
pub fn latent_scale(latents: &[f32]) -> f32 {
    let n = latents.len().max(1) as f64;
    let mean = latents.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = latents.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (1.0 / var.sqrt().max(1e-12)) as f32
}

/// Where each element of latents `[N, F, S.., d]` goes among tokens of p×p (2D) or p (1D)
/// positions: the token-layout index of every latent index, and the token shape `[N, F, M, D]`.
fn patch_map(shape: &[usize], patch: usize) -> Result<(Vec<usize>, [usize; 4])> {
    let sp = shape.get(2..shape.len().saturating_sub(1)).unwrap_or(&[]);
    if shape.len() < 4 || patch == 0 || sp.len() > 2 || sp.iter().any(|s| s % patch != 0) {
        return Err(Error::invalid("patchify", format!("latents {shape:?} do not split into patches of {patch}")));
    }
    let (n, f, d) = (shape[0], shape[1], shape[shape.len() - 1]);
    let (h, w) = if sp.len() == 1 { (1, sp[0]) } else { (sp[0], sp[1]) };
    let (ph, pw) = if sp.len() == 1 { (1, patch) } else { (patch, patch) };
    let (mh, mw) = (h / ph, w / pw);
    let dt = d * ph * pw;
    let mut map = Vec::with_capacity(n * f * h * w * d);
    for nf in 0..n * f {
        for y in 0..h {
            for x in 0..w {
                let tok = (y / ph) * mw + x / pw;
                let sub = (y % ph) * pw + x % pw;
                map.extend((0..d).map(|c| (nf * mh * mw + tok) * dt + sub * d + c));
            }
        }
    }
    Ok((map, [n, f, mh * mw, dt]))
}

/// Patches latents `[N, F, S.., d]` (one or two spatial axes) into tokens of p×p (2D) or p
/// (1D) positions, times `scale`.
pub fn patchify(latents: &[f32], shape: &[usize], patch: usize, scale: f32) -> Result<LatentTokens> {
    let (map, tshape) = patch_map(shape, patch)?;
    if map.len() != latents.len() {
        return Err(Error::invalid("patchify", format!("{} values for latents {shape:?}", latents.len())));
    }
    let mut out = vec![0f32; latents.len()];
    for (&to, &v) in map.iter().zip(latents) {
        out[to] = scale * v;
    }
    Ok(LatentTokens { data: out, shape: tshape, env: Vec::new() })
}

/// The inverse of [`patchify`]: tokens `[N, F, M, D]` back to latents of `shape`.
pub fn unpatchify(tokens: &[f32], shape: &[usize], patch: usize, scale: f32) -> Result<Vec<f32>> {
    let (map, _) = patch_map(shape, patch)?;
    if map.len() != tokens.len() {
        return Err(Error::invalid("unpatchify", format!("{} values for latents {shape:?}", tokens.len())));
    }
    Ok(map.iter().map(|&from| tokens[from] / scale).collect())
}

/// Trains `generator` on latent token sequences `tokens` (teacher forcing; random masking per
/// frame; flow-matching loss on the masked tokens); `on_step` sees every step's loss.
pub fn train_generator(
    gpu: &Gpu,
    generator: &crate::model::enma::Generator,
    store: &ParamStore,
    tokens: &LatentTokens,
    cfg: &GeneratorTrainConfig,
    start: &Start,
    monitor: &mut impl Monitor,
) -> Result<()> {
    let [n, f, m, d] = tokens.shape;
    if n == 0 {
        return Err(Error::invalid("train", "no training sequences"));
    }
    let opt_cfg = AdamWConfig {
        beta1: 0.9,
        beta2: 0.95,
        weight_decay: cfg.weight_decay,
        clip_norm: Some(cfg.clip_norm),
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::new(store, opt_cfg)?;
    let first = start.apply(&mut opt, cfg.steps)?;
    let warmup = cfg.warmup.min(cfg.steps / 5);
    let sched = LrSchedule { base: cfg.lr, warmup, total: cfg.steps, floor: cfg.lr_floor };
    let batch = cfg.batch.min(n).max(1);
    let per = f * m * d;
    let (mut epoch, mut queue) = (0, Vec::new());
    for step in 0..cfg.steps {
        let idx = next_batch(&mut queue, &mut epoch, n, batch, cfg.seed ^ 0x6E);
        if step < first {
            continue;
        }
        if start.stop_at.is_some_and(|s| step >= s) {
            break;
        }
        let mut x = Vec::with_capacity(idx.len() * per);
        for &i in &idx {
            x.extend_from_slice(&tokens.data[i * per..(i + 1) * per]);
        }
        let tape = Tape::new(gpu);
        let z = tape.constant(Tensor::from_slice(gpu, &x, &[idx.len(), f, m, d])?);
        // with probability context_prob, every sequence of the batch gets a context trajectory
        let mut rng = Philox::new(cfg.seed ^ 0xC7C7, step);
        let partners: Option<Vec<usize>> = (rng.uniform() < cfg.context_prob && tokens.env.len() == n)
            .then(|| {
                idx.iter()
                    .map(|&i| {
                        let others: Vec<usize> = (0..n).filter(|&j| j != i && tokens.env[j] == tokens.env[i]).collect();
                        (!others.is_empty()).then(|| others[(rng.next_u32() as usize) % others.len()])
                    })
                    .collect()
            })
            .flatten();
        let loss = match partners {
            Some(p) => {
                let mut c = Vec::with_capacity(x.len());
                for &j in &p {
                    c.extend_from_slice(&tokens.data[j * per..(j + 1) * per]);
                }
                let ctx = tape.constant(Tensor::from_slice(gpu, &c, &[idx.len(), f, m, d])?);
                generator.loss_with_context(&tape, store, &z, Some(&ctx), cfg.seed, step)?
            }
            None => generator.loss(&tape, store, &z, cfg.seed, step)?,
        };
        monitor.step(optimize(&mut opt, store, &loss, sched.at(step), step, "generator loss")?);
        start.after(step, cfg.steps, &opt, monitor)?;
    }
    Ok(())
}
