//! The flow-matching head (MODEL.md §4): a per-token MLP with adaLN modulation that predicts
//! the velocity z − ε of the path z_r = r·z + (1 − r)·ε from the token's condition z̃ and r;
//! its loss, the midpoint sampler, and the MAR unmasking schedule.

use crate::autodiff::{Init, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::tune::bucket;
use crate::gpu::{Gpu, Tensor};
use crate::nn::{LayerNorm, Linear};
use crate::ops::random::Philox;

/// Sinusoidal channels of the time embedding of r.
const TIME_CHANNELS: usize = 64;

/// Shape of the head.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlowHeadConfig {
    /// Token dimension (d·p²).
    pub dim: usize,
    /// Width of the conditions z̃.
    pub cond: usize,
    /// Width W of the MLP.
    pub width: usize,
    /// Residual blocks.
    pub depth: usize,
}

/// adaLN modulation from SiLU(y): shift, scale (and gate), each its own zero-initialised
/// linear map (one W → 3W map cut in three, without the slicing copies).
#[derive(Debug, Clone)]
struct Modulation {
    maps: Vec<Linear>,
}

impl Modulation {
    fn new(store: &mut ParamStore, name: &str, w: usize, parts: &[&str]) -> Result<Modulation> {
        let maps = parts
            .iter()
            .map(|p| Linear::with_init(store, &format!("{name}.{p}"), w, w, true, Init::Zeros))
            .collect::<Result<_>>()?;
        Ok(Modulation { maps })
    }

    fn part(&self, tape: &Tape, store: &ParamStore, y: &Var, i: usize) -> Result<Var> {
        self.maps[i].forward(tape, store, y)
    }

    /// `h·(1 + scale) + shift`.
    fn apply(&self, tape: &Tape, store: &ParamStore, h: &Var, y: &Var) -> Result<Var> {
        let (shift, scale) = (self.part(tape, store, y, 0)?, self.part(tape, store, y, 1)?);
        h.modulate(&scale, &shift)
    }
}

#[derive(Debug, Clone)]
struct AdaBlock {
    norm: LayerNorm,
    /// (shift, scale, gate); zero at init.
    ada: Modulation,
    fc1: Linear,
    fc2: Linear,
}

/// The adaLN MLP of MAR.
#[derive(Debug, Clone)]
pub struct FlowHead {
    pub config: FlowHeadConfig,
    input: Linear,
    cond: Linear,
    time1: Linear,
    time2: Linear,
    blocks: Vec<AdaBlock>,
    final_norm: LayerNorm,
    final_ada: Modulation,
    out: Linear,
}

impl FlowHead {
    pub fn new(store: &mut ParamStore, name: &str, config: FlowHeadConfig) -> Result<FlowHead> {
        let FlowHeadConfig { dim, cond, width: w, depth } = config.clone();
        if dim == 0 || cond == 0 || w == 0 {
            return Err(Error::invalid("FlowHead", format!("{config:?}: every size must be positive")));
        }
        let blocks = (0..depth)
            .map(|i| {
                let n = format!("{name}.block{i}");
                Ok(AdaBlock {
                    norm: LayerNorm::new(store, &format!("{n}.norm"), w, false)?,
                    ada: Modulation::new(store, &format!("{n}.ada"), w, &["shift", "scale", "gate"])?,
                    fc1: Linear::new(store, &format!("{n}.fc1"), w, w, true)?,
                    fc2: Linear::new(store, &format!("{n}.fc2"), w, w, true)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(FlowHead {
            input: Linear::new(store, &format!("{name}.input"), dim, w, true)?,
            cond: Linear::new(store, &format!("{name}.cond"), cond, w, true)?,
            time1: Linear::new(store, &format!("{name}.time1"), TIME_CHANNELS, w, true)?,
            time2: Linear::new(store, &format!("{name}.time2"), w, w, true)?,
            blocks,
            final_norm: LayerNorm::new(store, &format!("{name}.final_norm"), w, false)?,
            final_ada: Modulation::new(store, &format!("{name}.final_ada"), w, &["shift", "scale"])?,
            out: Linear::with_init(store, &format!("{name}.out"), w, dim, true, Init::Zeros)?,
            config,
        })
    }

    /// Velocity `[N, dim]` at points `z` `[N, dim]`, times `r` (one per row) and conditions
    /// `cond` `[N, cond]`.
    pub fn velocity(&self, tape: &Tape, store: &ParamStore, z: &Var, r: &[f32], cond: &Var) -> Result<Var> {
        let n = z.shape()[0];
        if z.shape() != [n, self.config.dim] || cond.shape() != [n, self.config.cond] || r.len() != n {
            return Err(Error::invalid(
                "FlowHead",
                format!(
                    "z {:?}, {} times and conditions {:?} for rows of {} and conditions of {}",
                    z.shape(),
                    r.len(),
                    cond.shape(),
                    self.config.dim,
                    self.config.cond
                ),
            ));
        }
        // DiT's convention: the encoding of 1000·r
        let pos: Vec<f32> = r.iter().map(|&t| 1000.0 * t).collect();
        let temb = tape.constant(crate::ops::posenc::sinusoidal(z.gpu(), &pos, 1, TIME_CHANNELS)?);
        let temb = self.time2.forward(tape, store, &self.time1.forward(tape, store, &temb)?.silu()?)?;
        let y = self.cond.forward(tape, store, cond)?.add(&temb)?.silu()?;
        self.velocity_at(tape, store, z, &y)
    }

    /// The velocity at `z` `[N, dim]` given the modulation input `y` = SiLU(cond map + time
    /// embedding) `[N, W]`.
    fn velocity_at(&self, tape: &Tape, store: &ParamStore, z: &Var, y: &Var) -> Result<Var> {
        let mut x = self.input.forward(tape, store, z)?;
        for b in &self.blocks {
            let h = b.ada.apply(tape, store, &b.norm.forward(tape, store, &x)?, y)?;
            let h = b.fc2.forward(tape, store, &b.fc1.forward(tape, store, &h)?.silu()?)?;
            x = x.add(&h.mul(&b.ada.part(tape, store, y, 2)?)?)?;
        }
        let h = self.final_ada.apply(tape, store, &self.final_norm.forward(tape, store, &x)?, y)?;
        self.out.forward(tape, store, &h)
    }

    /// Flow-matching loss (mean squared velocity error) of targets `z` `[N, dim]` under
    /// conditions `cond`, with r ~ U(0, 1) per row and ε ~ N(0, I) drawn from `(seed, step)`.
    pub fn loss(&self, tape: &Tape, store: &ParamStore, z: &Var, cond: &Var, seed: u64, step: u64) -> Result<Var> {
        let gpu = z.gpu();
        let n = z.shape()[0];
        let mut rng = Philox::new(seed ^ 0xF10E, step);
        let r: Vec<f32> = (0..n).map(|_| rng.uniform()).collect();
        let eps = tape.constant(crate::ops::random::normal(gpu, z.shape(), seed ^ 0xE751, step)?);
        let col = |v: Vec<f32>| -> Result<Var> { Ok(tape.constant(Tensor::from_slice(gpu, &v, &[n, 1])?)) };
        let zr = z.mul(&col(r.clone())?)?.add(&eps.mul(&col(r.iter().map(|t| 1.0 - t).collect())?)?)?;
        let target = z.sub(&eps)?;
        self.velocity(tape, store, &zr, &r, cond)?.sub(&target)?.square()?.mean_all()
    }

    /// Samples `[N, dim]` for conditions `cond` `[N, cond]`: the midpoint method from r = 0 to 1
    /// in `steps` steps (2·steps head evaluations), starting from `temperature`·ε. Runs the
    /// fused kernel ([`crate::ops::flow_sample`], one dispatch instead of ~40 per evaluation)
    /// when the head fits it and the autotuner measures it faster (built-in rule: composed on
    /// CPU adapters, where they were about twice as fast, `cargo bench --bench kernels -- flow`). `ENMA_FLOW_SAMPLER=fused` or
    /// `composed` forces a path.
    pub fn sample(
        &self,
        gpu: &Gpu,
        store: &ParamStore,
        cond: &Tensor,
        steps: usize,
        temperature: f32,
        seed: u64,
    ) -> Result<Tensor> {
        let fits = self.weights(store)?.fits(steps);
        let run = |fused: bool| {
            if fused {
                self.sample_fused(gpu, store, cond, steps, temperature, seed)
            } else {
                self.sample_composed(gpu, store, cond, steps, temperature, seed)
            }
        };
        let fused = match std::env::var("ENMA_FLOW_SAMPLER").as_deref() {
            Ok("fused") => true,
            Ok("composed") => false,
            _ if !fits => false,
            _ => {
                let candidates = [("composed".to_string(), false), ("fused".to_string(), true)];
                let c = &self.config;
                let class = format!("n{} d{} w{}x{} steps{steps}", bucket(cond.shape()[0]), c.dim, c.width, c.depth);
                gpu.tune("flow_sample", &class, &candidates, usize::from(!gpu.is_cpu()), |&f| run(f).map(drop))?
            }
        };
        run(fused && fits)
    }

    /// Where the head's weights sit in the store's flat buffer, for the fused sampler.
    pub fn weights(&self, store: &ParamStore) -> Result<crate::ops::flow_sample::FlowWeights> {
        let mut offsets = Vec::new();
        let mut push = |l: &Linear| -> Result<()> {
            let bias = l.b.as_ref().ok_or_else(|| Error::invalid("FlowHead", "every layer has a bias"))?;
            for p in [&l.w, bias] {
                let (offset, _, _) = store.layout(p)?;
                offsets.push(u32::try_from(offset).map_err(|_| Error::invalid("FlowHead", "parameter offset"))?);
            }
            Ok(())
        };
        push(&self.input)?;
        push(&self.final_ada.maps[0])?;
        push(&self.final_ada.maps[1])?;
        push(&self.out)?;
        for b in &self.blocks {
            for l in [&b.ada.maps[0], &b.ada.maps[1], &b.ada.maps[2], &b.fc1, &b.fc2] {
                push(l)?;
            }
        }
        Ok(crate::ops::flow_sample::FlowWeights {
            offsets,
            dim: self.config.dim,
            width: self.config.width,
            depth: self.config.depth,
        })
    }

    /// The time embeddings `[2·steps, W]` of r = s/steps and (s + ½)/steps.
    fn time_embeddings(&self, tape: &Tape, store: &ParamStore, steps: usize) -> Result<Var> {
        let h = 1.0 / steps as f32;
        let pos: Vec<f32> = (0..steps).flat_map(|s| [1000.0 * s as f32 * h, 1000.0 * (s as f32 + 0.5) * h]).collect();
        let temb = tape.constant(crate::ops::posenc::sinusoidal(&tape.gpu(), &pos, 1, TIME_CHANNELS)?);
        self.time2.forward(tape, store, &self.time1.forward(tape, store, &temb)?.silu()?)
    }

    /// [`FlowHead::sample`] with the fused kernel: one dispatch for the whole ODE.
    pub fn sample_fused(
        &self,
        gpu: &Gpu,
        store: &ParamStore,
        cond: &Tensor,
        steps: usize,
        temperature: f32,
        seed: u64,
    ) -> Result<Tensor> {
        let n = cond.shape().first().copied().unwrap_or(0);
        if steps == 0 || cond.shape() != [n, self.config.cond] {
            return Err(Error::invalid(
                "FlowHead::sample",
                format!(
                    "conditions {:?} of width {} and {steps} ODE steps (at least one)",
                    cond.shape(),
                    self.config.cond
                ),
            ));
        }
        let tape = Tape::no_grad(gpu);
        let cy = self.cond.forward(&tape, store, &tape.constant(cond.clone()))?;
        let temb = self.time_embeddings(&tape, store, steps)?;
        let noise = crate::ops::random::normal(gpu, &[n, self.config.dim], seed, 0x5A3)?;
        let (params, _) = store.flat().ok_or_else(|| Error::invalid("FlowHead::sample", "empty parameter store"))?;
        crate::ops::flow_sample::flow_sample(
            params,
            &self.weights(store)?,
            cy.tensor(),
            temb.tensor(),
            &noise,
            steps,
            temperature,
            self.final_norm.eps,
        )
    }

    /// [`FlowHead::sample`] with composed ops (2·steps evaluations of the head, each the
    /// velocity of [`FlowHead::velocity`] with the condition map and the time embeddings made
    /// once): the reference of the fused kernel, and the path for heads too wide for it.
    pub fn sample_composed(
        &self,
        gpu: &Gpu,
        store: &ParamStore,
        cond: &Tensor,
        steps: usize,
        temperature: f32,
        seed: u64,
    ) -> Result<Tensor> {
        if steps == 0 {
            return Err(Error::invalid("FlowHead::sample", "at least one ODE step"));
        }
        let n = cond.shape()[0];
        if cond.shape() != [n, self.config.cond] {
            return Err(Error::invalid(
                "FlowHead::sample",
                format!("conditions {:?}, expected [N, {}]", cond.shape(), self.config.cond),
            ));
        }
        let tape = Tape::no_grad(gpu);
        // what does not change along the ODE, once: the condition map of every row, and the
        // embeddings of the 2·steps times (one row each, broadcast to the rows)
        let cy = self.cond.forward(&tape, store, &tape.constant(cond.clone()))?;
        let temb = self.time_embeddings(&tape, store, steps)?;
        let y = |i: usize| cy.add(&temb.slice(0, i, i + 1)?)?.silu();
        let eps = crate::ops::random::normal(gpu, &[n, self.config.dim], seed, 0x5A3)?;
        let mut z = tape.constant(crate::ops::scale(&eps, temperature)?);
        let h = 1.0 / steps as f32;
        for s in 0..steps {
            let v1 = self.velocity_at(&tape, store, &z, &y(2 * s)?)?;
            let mid = z.add(&v1.scale(h / 2.0)?)?;
            let v2 = self.velocity_at(&tape, store, &mid, &y(2 * s + 1)?)?;
            z = tape.constant(z.add(&v2.scale(h)?)?.tensor().clone());
        }
        Ok(z.tensor().clone())
    }
}

/// How many of `m` masked tokens each of `steps` steps reveals (MAR's cosine rule): after step
/// s, ⌊m·cos(π/2·(s+1)/S)⌋ stay masked, clipped so that every step reveals at least one token
/// and at least one stays for the next step; the last step reveals the rest. Sums to `m`.
pub fn unmask_counts(m: usize, steps: usize) -> Vec<usize> {
    let steps = steps.clamp(1, m.max(1));
    let mut masked = m;
    let mut out = Vec::with_capacity(steps);
    for s in 0..steps {
        let keep = if s + 1 == steps {
            0
        } else {
            let c = (m as f64 * (std::f64::consts::FRAC_PI_2 * (s + 1) as f64 / steps as f64).cos()).floor() as usize;
            c.max(1).min(masked.saturating_sub(1))
        };
        out.push(masked - keep);
        masked = keep;
    }
    out
}

/// A random order of the `m` positions split into the groups revealed at each step.
pub fn reveal_order(m: usize, steps: usize, rng: &mut Philox) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..m).collect();
    for i in (1..m).rev() {
        let j = (rng.next_u32() as usize) % (i + 1);
        order.swap(i, j);
    }
    let mut at = 0;
    unmask_counts(m, steps)
        .into_iter()
        .map(|c| {
            let g = order[at..at + c].to_vec();
            at += c;
            g
        })
        .collect()
}
