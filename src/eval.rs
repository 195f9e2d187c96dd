//! Rollouts and their evaluation (MODEL.md §4 protocols, §6 metrics): temporal conditioning on
//! the first L frames, K samples per trajectory generated as one batch, decoded by the VAE.

use crate::autodiff::{ParamStore, Tape};
use crate::data::dataset::Normalization;
use crate::data::hdf5::Trajectories;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::model::Vae;
use crate::model::enma::{GenerateOptions, Generator};
use crate::train::{encode_means, patchify, scatter_trajectories, unpatchify};

/// A trained pipeline: the frozen VAE, the generator, and the latent scale and patch size
/// between them.
pub struct Pipeline<'a> {
    pub vae: &'a Vae,
    pub vae_store: &'a ParamStore,
    pub generator: &'a Generator,
    pub gen_store: &'a ParamStore,
    pub scale: f32,
    pub patch: usize,
}

/// How to roll out.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct RolloutConfig {
    /// Observed physical frames L (odd: (L + 1)/2 latent frames).
    pub context_frames: usize,
    /// IVP with a context trajectory: another trajectory of the same environment is given
    /// whole, as `[BOS; context; BOS; target]` (use with `context_frames = 1`).
    pub context_trajectory: bool,
    /// Samples K per trajectory.
    pub samples: usize,
    /// Sequences per generator call (trajectories × samples).
    pub batch: usize,
    pub temperature: f32,
    pub seed: u64,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            context_frames: 5,
            context_trajectory: false,
            samples: 16,
            batch: 256,
            temperature: 1.0,
            seed: 0,
        }
    }
}

/// Generated latents of a rollout: `[N·K, F', S'.., d]` (trajectory-major, samples inner).
struct Latents {
    data: Vec<f32>,
    shape: Vec<usize>,
}

/// Rolls out every trajectory of `data` (normalised) K times in latent space: encodes the first
/// L frames (and the context trajectory for the IVP protocol) and generates the rest;
/// `progress(n)` hears of every `n` trajectories done.
fn generate_latents(
    gpu: &Gpu,
    p: &Pipeline,
    data: &Trajectories,
    cfg: &RolloutConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<Latents> {
    let t = data.frames();
    if cfg.context_frames == 0 || cfg.context_frames.is_multiple_of(2) || cfg.context_frames >= t {
        return Err(Error::invalid(
            "rollout",
            format!("{} context frames: use an odd number below the {t} frames of a trajectory", cfg.context_frames),
        ));
    }
    if cfg.samples == 0 {
        return Err(Error::invalid("rollout", "at least one sample per trajectory"));
    }
    let (means, shape) = encode_means(gpu, p.vae, p.vae_store, data, 16)?;
    let tokens = patchify(&means, &shape, p.patch, p.scale)?;
    let [n, frames, m, d] = tokens.shape;
    let per_frame = m * d;
    let lc = cfg.context_frames.div_ceil(2);
    let k = cfg.samples;
    let per_call = (cfg.batch / k).max(1);
    let all: Vec<usize> = (0..n).collect();
    let mut rng = crate::ops::random::Philox::new(cfg.seed ^ 0xC0DE, 0);
    let partners: Vec<usize> = if cfg.context_trajectory {
        (0..n)
            .map(|i| {
                crate::data::dataset::context_for(data, i, &mut rng).ok_or_else(|| {
                    Error::invalid("rollout", format!("trajectory {i} has no other trajectory in its environment"))
                })
            })
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    let mut lat_all = Vec::with_capacity(means.len() * k);
    for (ci, chunk) in all.chunks(per_call).enumerate() {
        let mut ctx = Vec::with_capacity(chunk.len() * k * lc * per_frame);
        let mut prefix = Vec::new();
        for &i in chunk {
            let seq = &tokens.data[i * frames * per_frame..][..lc * per_frame];
            for _ in 0..k {
                ctx.extend_from_slice(seq);
                if let Some(&j) = partners.get(i) {
                    prefix.extend_from_slice(&tokens.data[j * frames * per_frame..(j + 1) * frames * per_frame]);
                }
            }
        }
        let opts = GenerateOptions {
            prefix: if cfg.context_trajectory { Some(&prefix) } else { None },
            frames,
            temperature: cfg.temperature,
            seed: cfg.seed.wrapping_add(ci as u64).wrapping_mul(0x2545_F491),
        };
        let generated = p.generator.generate(gpu, p.gen_store, &ctx, chunk.len() * k, &opts)?;
        let mut lshape = shape.clone();
        lshape[0] = chunk.len() * k;
        lat_all.extend(unpatchify(&generated, &lshape, p.patch, p.scale)?);
        progress(chunk.len());
    }
    let mut lshape = shape;
    lshape[0] = n * k;
    Ok(Latents { data: lat_all, shape: lshape })
}

/// Decodes latents in groups of at most 32 sequences; `sink(first sequence, fields)` gets each
/// group's fields `[g, T, S.., C]` (channels last, normalised) on the GPU.
fn decode(
    gpu: &Gpu,
    p: &Pipeline,
    lat: &Latents,
    t: usize,
    mut sink: impl FnMut(usize, Tensor) -> Result<()>,
) -> Result<()> {
    let seqs = lat.shape[0];
    let per = lat.data.len() / seqs.max(1);
    for start in (0..seqs).step_by(32) {
        let end = (start + 32).min(seqs);
        let mut ls = lat.shape.clone();
        ls[0] = end - start;
        let tape = Tape::no_grad(gpu);
        let z = tape.constant(Tensor::from_slice(gpu, &lat.data[start * per..end * per], &ls)?);
        sink(start, p.vae.decoder.forward(&tape, p.vae_store, &z, t)?.tensor().clone())?;
    }
    Ok(())
}

/// Rolls out every trajectory of `data` (normalised) K times from its first L frames: returns
/// `[N, K, T, C, S..]` (normalised), the observed frames being the VAE's reconstructions.
pub fn rollout(gpu: &Gpu, p: &Pipeline, data: &Trajectories, cfg: &RolloutConfig) -> Result<Vec<f32>> {
    rollout_with_progress(gpu, p, data, cfg, &mut |_| {})
}

/// [`rollout`], calling `progress(n)` after every `n` trajectories generated (for progress bars).
pub fn rollout_with_progress(
    gpu: &Gpu,
    p: &Pipeline,
    data: &Trajectories,
    cfg: &RolloutConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<f32>> {
    let (t, c) = (data.frames(), data.channels());
    let points: usize = data.spatial().iter().product();
    let lat = generate_latents(gpu, p, data, cfg, progress)?;
    let mut out = vec![0f32; lat.shape[0] * t * c * points];
    decode(gpu, p, &lat, t, |start, fields| {
        let rec = fields.to_vec()?;
        let idx: Vec<usize> = (start..start + fields.shape()[0]).collect();
        scatter_trajectories(&rec, &idx, &mut out, t, c, points);
        Ok(())
    })?;
    Ok(out)
}

/// [`rollout`] into one tensor that stays on the GPU: `[N·K, T, S.., C]` (trajectory-major,
/// channels last, normalised: multiply by the run's std and add its mean per channel for
/// physical units). For hosts that process rollouts with their own kernels (embedding).
pub fn rollout_fields(gpu: &Gpu, p: &Pipeline, data: &Trajectories, cfg: &RolloutConfig) -> Result<Tensor> {
    let t = data.frames();
    let lat = generate_latents(gpu, p, data, cfg, &mut |_| {})?;
    let mut shape = vec![lat.shape[0], t];
    shape.extend(data.spatial());
    shape.push(data.channels());
    let out = Tensor::empty(gpu, &shape, crate::gpu::DType::F32)?;
    decode(gpu, p, &lat, t, |start, fields| crate::ops::layout::write_into(&fields, &out, 0, start))?;
    Ok(out)
}

/// Scores of a rollout on the predicted frames (L..T), in physical units.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RolloutScores {
    /// Relative L2 of each sample, averaged over samples and trajectories.
    pub rel_l2: f64,
    /// Relative L2 of the ensemble mean.
    pub rel_l2_mean: f64,
    /// Relative L2 of repeating the last observed frame (the naive baseline).
    pub rel_l2_repeat_last: f64,
    pub crps: f64,
    pub rmsce: f64,
    pub trajectories: usize,
    pub samples: usize,
    /// Relative L2 of the ensemble mean per predicted frame (L, L + 1, …, T − 1), averaged
    /// over trajectories: the error over the rollout horizon.
    pub horizon: Vec<f64>,
}

/// Predictions `[N, K, T, C, S..]` (normalised, from [`rollout`]) in physical units.
pub fn physical(pred: &[f32], truth: &Trajectories, norm: &Normalization, samples: usize) -> Result<Vec<f32>> {
    let n = truth.n();
    if pred.len() != n * samples * truth.stride() {
        return Err(Error::invalid(
            "rollout",
            format!("{} predicted values for {n} × {samples} trajectories", pred.len()),
        ));
    }
    let mut phys = Trajectories { data: pred.to_vec(), ..truth.clone() };
    phys.shape[0] = n * samples;
    phys.env = truth.env.iter().flat_map(|&e| std::iter::repeat_n(e, samples)).collect();
    norm.invert(&mut phys)?;
    Ok(phys.data)
}

/// Scores `pred` `[N, K, T, C, S..]` (normalised, from [`rollout`]) against `truth` (physical)
/// on frames `context_frames..T`.
pub fn score(pred: &[f32], truth: &Trajectories, norm: &Normalization, cfg: &RolloutConfig) -> Result<RolloutScores> {
    let (n, t) = (truth.n(), truth.frames());
    let stride = truth.stride();
    let k = cfg.samples;
    let phys = physical(pred, truth, norm, k)?;
    let from = cfg.context_frames * stride / t;
    let horizon = stride - from;
    let frame = stride / t;
    let (mut rel, mut rel_mean, mut rel_last, mut crps, mut rmsce) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut per_frame = vec![0f64; horizon / frame.max(1)];
    for i in 0..n {
        let y = &truth.data[i * stride + from..(i + 1) * stride];
        let members: Vec<f32> =
            (0..k).flat_map(|j| phys[(i * k + j) * stride + from..(i * k + j + 1) * stride].iter().copied()).collect();
        rel += crate::metrics::relative_l2(&members, &y.repeat(k), horizon);
        let mean: Vec<f32> =
            (0..horizon).map(|e| (0..k).map(|j| members[j * horizon + e]).sum::<f32>() / k as f32).collect();
        rel_mean += crate::metrics::relative_l2(&mean, y, horizon);
        for (f, e) in per_frame.iter_mut().enumerate() {
            let r = f * frame..(f + 1) * frame;
            *e += crate::metrics::relative_l2(&mean[r.clone()], &y[r], frame);
        }
        let last = &truth.data[i * stride + from - frame..i * stride + from];
        let repeat: Vec<f32> = (0..horizon / frame).flat_map(|_| last.iter().copied()).collect();
        rel_last += crate::metrics::relative_l2(&repeat, y, horizon);
        crps += crate::metrics::crps(&members, y);
        rmsce += if k > 1 { crate::metrics::rmsce(&members, y) } else { f64::NAN };
    }
    let nf = n.max(1) as f64;
    Ok(RolloutScores {
        rel_l2: rel / nf,
        rel_l2_mean: rel_mean / nf,
        rel_l2_repeat_last: rel_last / nf,
        crps: crps / nf,
        rmsce: rmsce / nf,
        trajectories: n,
        samples: k,
        horizon: per_frame.into_iter().map(|e| e / nf).collect(),
    })
}
