//! The ENMA generator (MODEL.md §4): causal transformer → spatial transformer → flow head,
//! trained with teacher forcing and random token masking, sampled frame by frame with the MAR
//! unmasking schedule.

use serde::{Deserialize, Serialize};

use super::causal::CausalTransformer;
use super::flow::{FlowHead, FlowHeadConfig, reveal_order};
use super::spatial::SpatialTransformer;
use crate::autodiff::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::ops::gather::RowIndex;
use crate::ops::random::Philox;

/// Shape and sampling settings of the generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    /// Channels per token (d·p^axes).
    pub token_dim: usize,
    /// Token grid per frame (`[M]` in 1D, `[h, w]` in 2D), for the position encoding.
    pub grid: Vec<usize>,
    pub width: usize,
    pub heads: usize,
    pub causal_depth: usize,
    pub spatial_depth: usize,
    pub mlp_ratio: usize,
    pub flow_width: usize,
    pub flow_depth: usize,
    /// Copies of each masked token in the flow loss, with independent (r, ε).
    pub fm_batch_mul: usize,
    /// Unmasking steps S per frame.
    pub unmask_steps: usize,
    /// Midpoint steps N of the flow ODE.
    pub ode_steps: usize,
    /// Lowest masked fraction per frame in training (the highest is 1).
    pub mask_min: f32,
}

impl GeneratorConfig {
    /// The `advection-tiny` generator: width 64, 4 heads, depth 2 + 2, flow head 2 × 128, S 6, N 5.
    pub fn tiny(token_dim: usize, grid: Vec<usize>) -> GeneratorConfig {
        GeneratorConfig {
            token_dim,
            grid,
            width: 64,
            heads: 4,
            causal_depth: 2,
            spatial_depth: 2,
            mlp_ratio: 2,
            flow_width: 128,
            flow_depth: 2,
            fm_batch_mul: 4,
            unmask_steps: 6,
            ode_steps: 5,
            mask_min: 0.75,
        }
    }

    /// Tokens per frame.
    pub fn tokens(&self) -> usize {
        self.grid.iter().product()
    }

    pub fn validate(&self) -> Result<()> {
        let ok = self.token_dim > 0
            && !self.grid.is_empty()
            && self.grid.len() <= 2
            && self.tokens() > 0
            && self.heads > 0
            && self.width.is_multiple_of(2 * self.grid.len() * self.heads)
            && self.unmask_steps > 0
            && self.ode_steps > 0
            && self.fm_batch_mul > 0
            && (0.0..=1.0).contains(&self.mask_min);
        if !ok {
            return Err(Error::invalid(
                "GeneratorConfig",
                format!("{self:?}: sizes must be positive, width a multiple of 2·axes·heads, mask_min in [0, 1]"),
            ));
        }
        Ok(())
    }
}

/// What [`Generator::generate`] produces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerateOptions<'a> {
    /// In-context prefix (IVP with a context trajectory): one whole trajectory per sequence,
    /// `[B, F_ctx, M, D]`, fed as `[BOS; context]` before the target's own BOS.
    pub prefix: Option<&'a [f32]>,
    /// Frames of each output sequence (context included).
    pub frames: usize,
    /// Scale of the starting noise ε of the flow ODE (1: the trained distribution).
    pub temperature: f32,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct Generator {
    pub config: GeneratorConfig,
    pub causal: CausalTransformer,
    pub spatial: SpatialTransformer,
    pub head: FlowHead,
}

impl Generator {
    pub fn new(store: &mut ParamStore, config: GeneratorConfig) -> Result<Generator> {
        config.validate()?;
        let c = &config;
        let m = c.tokens();
        Ok(Generator {
            causal: CausalTransformer::new(
                store,
                "causal",
                c.token_dim,
                m,
                c.width,
                c.heads,
                c.causal_depth,
                c.mlp_ratio,
            )?,
            spatial: SpatialTransformer::new(
                store,
                "spatial",
                c.token_dim,
                c.width,
                c.heads,
                c.spatial_depth,
                c.mlp_ratio,
            )?,
            head: FlowHead::new(
                store,
                "head",
                FlowHeadConfig { dim: c.token_dim, cond: c.width, width: c.flow_width, depth: c.flow_depth },
            )?,
            config,
        })
    }

    /// Fixed sinusoidal encoding of the token grid, `[M, width]`.
    pub fn positions(&self, tape: &Tape) -> Result<Var> {
        let (g, w) = (&self.config.grid, self.config.width);
        let t = if g.len() == 1 {
            crate::ops::posenc::sinusoidal_1d(&tape.gpu(), g[0], w)?
        } else {
            crate::ops::posenc::sinusoidal_2d(&tape.gpu(), g[0], g[1], w)?
        };
        Ok(tape.constant(t))
    }

    /// Teacher-forced flow-matching loss of token sequences `z` `[B, F, M, D]` (scaled latents):
    /// per frame a random U[mask_min, 1] fraction of its tokens (at least one) is masked, and
    /// the loss is on the masked tokens of every frame. Randomness from `(seed, step)`.
    pub fn loss(&self, tape: &Tape, store: &ParamStore, z: &Var, seed: u64, step: u64) -> Result<Var> {
        self.loss_with_context(tape, store, z, None, seed, step)
    }

    /// [`Generator::loss`], or with `context` `[B, F, M, D]` (another trajectory of the same
    /// environment) the in-context sequence `[BOS; context; BOS; target]`: the loss then covers
    /// the frames of both trajectories.
    pub fn loss_with_context(
        &self,
        tape: &Tape,
        store: &ParamStore,
        z: &Var,
        context: Option<&Var>,
        seed: u64,
        step: u64,
    ) -> Result<Var> {
        let s = z.shape().to_vec();
        let (m, d) = (self.config.tokens(), self.config.token_dim);
        if s.len() != 4 || s[2] != m || s[3] != d || context.is_some_and(|c| c.shape() != z.shape()) {
            return Err(Error::invalid(
                "Generator::loss",
                format!("expects tokens [B, F, {m}, {d}] (and a context of the same shape), got {s:?}"),
            ));
        }
        let pos = self.positions(tape)?;
        let (z, zdyn) = match context {
            None => (z.clone(), self.causal.forward(tape, store, z, &pos)?),
            Some(c) => {
                // blocks BOS, c0..c_{F−1}, BOS, t0..t_{F−2}; the output after c_{F−1} (which would
                // predict the second BOS) has no target
                let f = s[1];
                let all = Var::concat(&[c, z], 1)?;
                let blocks: Vec<Option<usize>> = std::iter::once(None)
                    .chain((0..f).map(Some))
                    .chain(std::iter::once(None))
                    .chain((f..2 * f - 1).map(Some))
                    .collect();
                let out = self.causal.forward_blocks(tape, store, &all, &blocks, &pos)?;
                let zdyn = Var::concat(&[&out.slice(1, 0, f)?, &out.slice(1, f + 1, 2 * f + 1)?], 1)?;
                (all, zdyn)
            }
        };
        let s = z.shape().to_vec();
        let frames = s[0] * s[1];
        let zdyn = zdyn.reshape(&[frames, m, self.config.width])?;
        let mut rng = Philox::new(seed ^ 0x3A5C, step);
        let mut mask = vec![0f32; frames * m];
        let mut rows = Vec::new();
        for f in 0..frames {
            let frac = self.config.mask_min + (1.0 - self.config.mask_min) * rng.uniform();
            let n = ((frac * m as f32).round() as usize).clamp(1, m);
            let order = reveal_order(m, 1, &mut rng).concat();
            for &p in &order[..n] {
                mask[f * m + p] = 1.0;
            }
        }
        for (i, &v) in mask.iter().enumerate() {
            if v == 1.0 {
                rows.push(i as u32);
            }
        }
        let masked = tape.constant(Tensor::from_slice(&tape.gpu(), &mask, &[frames, m, 1])?);
        let tokens = z.reshape(&[frames, m, d])?;
        let cond = self.spatial.forward(tape, store, &zdyn, &tokens, &masked, &pos)?;
        let reps: Vec<u32> = (0..self.config.fm_batch_mul).flat_map(|_| rows.iter().copied()).collect();
        let index = RowIndex::new(&tape.gpu(), &reps, frames * m)?;
        let target = tokens.reshape(&[frames * m, d])?.gather_rows(&index)?;
        let cond = cond.reshape(&[frames * m, self.config.width])?.gather_rows(&index)?;
        self.head.loss(tape, store, &target, &cond, seed, step)
    }

    /// Continues `context` `[B, L, M, D]` (L ≥ 0 known frames of scaled latent tokens) to
    /// `frames` frames: returns `[B, frames, M, D]` with the context copied in. Each new frame
    /// gets Z_dyn from the (cached) causal transformer, then S unmasking steps in a random order
    /// per sequence, each sampling its tokens with the flow head.
    pub fn generate(
        &self,
        gpu: &Gpu,
        store: &ParamStore,
        context: &[f32],
        batch: usize,
        opts: &GenerateOptions,
    ) -> Result<Vec<f32>> {
        let GenerateOptions { prefix, frames, temperature, seed } = *opts;
        let (m, d, w) = (self.config.tokens(), self.config.token_dim, self.config.width);
        let per = m * d;
        if batch == 0 || !context.len().is_multiple_of(batch * per) {
            return Err(Error::invalid(
                "Generator::generate",
                format!("{} context values do not make {batch} sequences of frames of {m} × {d}", context.len()),
            ));
        }
        let known = context.len() / (batch * per);
        if known > frames {
            return Err(Error::invalid("Generator::generate", format!("{known} context frames but {frames} wanted")));
        }
        let mut out = vec![0f32; batch * frames * per];
        for b in 0..batch {
            out[b * frames * per..][..known * per].copy_from_slice(&context[b * known * per..][..known * per]);
        }
        let tape = Tape::no_grad(gpu);
        let pos = self.positions(&tape)?;
        let frame_of = |out: &[f32], f: usize| -> Vec<f32> {
            (0..batch).flat_map(|b| out[(b * frames + f) * per..][..per].iter().copied()).collect()
        };
        let ctx_frames = match prefix {
            Some(p) if !p.len().is_multiple_of(batch * per) => {
                return Err(Error::invalid(
                    "Generator::generate",
                    format!("{} prefix values do not make {batch} trajectories of frames of {m} × {d}", p.len()),
                ));
            }
            Some(p) => p.len() / (batch * per),
            None => 0,
        };
        // room for [BOS; context] (when given), then BOS and the frames
        let extra = if ctx_frames > 0 { ctx_frames + 1 } else { 0 };
        let mut caches = self.causal.caches(gpu, batch, frames.max(1) + extra)?;
        if ctx_frames > 0 {
            let p = prefix.unwrap_or_default();
            self.causal.step(&tape, store, None, &pos, &mut caches)?;
            for f in 0..ctx_frames {
                let fr: Vec<f32> =
                    (0..batch).flat_map(|b| p[(b * ctx_frames + f) * per..][..per].iter().copied()).collect();
                let z = tape.constant(Tensor::from_slice(gpu, &fr, &[batch, m, d])?);
                self.causal.step(&tape, store, Some(&z), &pos, &mut caches)?;
            }
        }
        let mut zdyn = self.causal.step(&tape, store, None, &pos, &mut caches)?;
        let mut rng = Philox::new(seed ^ 0x6E4A, 0);
        for f in 0..frames {
            if f >= known {
                let mut tokens = vec![0f32; batch * per];
                let mut masked = vec![1f32; batch * m];
                let orders: Vec<Vec<Vec<usize>>> =
                    (0..batch).map(|_| reveal_order(m, self.config.unmask_steps, &mut rng)).collect();
                for s in 0..orders[0].len() {
                    let t = tape.constant(Tensor::from_slice(gpu, &tokens, &[batch, m, d])?);
                    let mk = tape.constant(Tensor::from_slice(gpu, &masked, &[batch, m, 1])?);
                    let cond = self.spatial.forward(&tape, store, &zdyn, &t, &mk, &pos)?;
                    let rows: Vec<u32> =
                        (0..batch).flat_map(|b| orders[b][s].iter().map(move |&p| (b * m + p) as u32)).collect();
                    if rows.is_empty() {
                        continue;
                    }
                    let index = RowIndex::new(gpu, &rows, batch * m)?;
                    let c = cond.reshape(&[batch * m, w])?.gather_rows(&index)?;
                    let step_seed = seed.wrapping_mul(0x9E37_79B9).wrapping_add((f * 64 + s) as u64);
                    let z = self.head.sample(gpu, store, c.tensor(), self.config.ode_steps, temperature, step_seed)?;
                    let z = z.to_vec()?;
                    for (k, &r) in rows.iter().enumerate() {
                        let r = r as usize;
                        tokens[r * d..(r + 1) * d].copy_from_slice(&z[k * d..(k + 1) * d]);
                        masked[r] = 0.0;
                    }
                }
                for b in 0..batch {
                    out[(b * frames + f) * per..][..per].copy_from_slice(&tokens[b * per..(b + 1) * per]);
                }
            }
            if f + 1 < frames {
                let z = tape.constant(Tensor::from_slice(gpu, &frame_of(&out, f), &[batch, m, d])?);
                zdyn = self.causal.step(&tape, store, Some(&z), &pos, &mut caches)?;
            }
        }
        Ok(out)
    }
}
