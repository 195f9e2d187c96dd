//! AdamW as one fused kernel over every parameter of a [`ParamStore`] (`shaders/adamw.wgsl`).

use crate::autodiff::param::PARAM_ALIGN;
use crate::autodiff::{Gradients, ParamStore};
use crate::error::{Error, Result};
use crate::gpu::kernels::ADAMW;
use crate::gpu::{DType, Tensor};
use crate::ops::{Imm, launch};

/// AdamW hyper-parameters (the learning rate comes per step, from a schedule).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Global gradient-norm clipping threshold (`None`: no clipping).
    pub clip_norm: Option<f32>,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, clip_norm: None }
    }
}

/// The saved state of an [`AdamW`]: steps taken and both moments (flat, padding included).
#[derive(Debug, Clone, PartialEq)]
pub struct OptimState {
    pub step: u64,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
}

/// Optimiser state: first and second moments and a flat gradient buffer laid out like the
/// store's parameters.
pub struct AdamW {
    pub config: AdamWConfig,
    m: Tensor,
    v: Tensor,
    grad: Tensor,
    decay: Tensor,
    norm: Option<Tensor>,
    used: usize,
    num_params: usize,
    step: u64,
}

impl AdamW {
    /// State for every parameter of `store` (add parameters before creating the optimiser).
    pub fn new(store: &ParamStore, config: AdamWConfig) -> Result<AdamW> {
        let (flat, used) = store.flat().ok_or_else(|| Error::invalid("AdamW::new", "the parameter store is empty"))?;
        let cap = flat.numel();
        let gpu = store.gpu();
        let blocks = cap.div_ceil(PARAM_ALIGN);
        let mut flags = vec![0u32; blocks];
        for p in store.params() {
            let (offset, numel, decay) = store.layout(&p)?;
            if decay {
                for f in &mut flags[offset / PARAM_ALIGN..(offset + numel).div_ceil(PARAM_ALIGN)] {
                    *f = 1;
                }
            }
        }
        Ok(AdamW {
            config,
            m: Tensor::zeros(gpu, &[cap], DType::F32)?,
            v: Tensor::zeros(gpu, &[cap], DType::F32)?,
            grad: Tensor::zeros(gpu, &[cap], DType::F32)?,
            decay: Tensor::from_u32(gpu, &flags, &[blocks])?,
            norm: None,
            used,
            num_params: store.len(),
            step: 0,
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The moments and step count, for a resumable checkpoint (downloads both moments).
    pub fn state(&self) -> Result<OptimState> {
        Ok(OptimState { step: self.step, m: self.m.to_vec()?, v: self.v.to_vec()? })
    }

    /// Continues from a saved [`AdamW::state`] of an optimiser over the same parameters.
    pub fn restore(&mut self, state: &OptimState) -> Result<()> {
        let n = self.m.numel();
        if state.m.len() != n || state.v.len() != n {
            return Err(Error::invalid(
                "AdamW::restore",
                format!(
                    "optimiser state of {} / {} values for {n} parameter values: the checkpoint is of another model",
                    state.m.len(),
                    state.v.len()
                ),
            ));
        }
        self.m.write(&state.m)?;
        self.v.write(&state.v)?;
        self.step = state.step;
        Ok(())
    }

    /// The global gradient norm of the last step, before clipping (downloads one value).
    pub fn last_grad_norm(&self) -> Result<Option<f32>> {
        self.norm.as_ref().map(|n| n.to_vec().map(|v| v[0])).transpose()
    }

    /// One update of every parameter with learning rate `lr`. Parameters without a gradient
    /// (unused in the loss) get a zero gradient. Records kernels; does not wait.
    pub fn step(&mut self, store: &ParamStore, grads: &Gradients, lr: f32) -> Result<()> {
        let (flat, used) = store.flat().ok_or_else(|| Error::invalid("AdamW::step", "the parameter store is empty"))?;
        if used != self.used || store.len() != self.num_params || flat.numel() != self.m.numel() {
            return Err(Error::invalid(
                "AdamW::step",
                "parameters were added after the optimiser was created; create it after the model",
            ));
        }
        crate::ops::fill(&self.grad, 0.0)?;
        let params = store.params();
        for (id, g) in grads.params() {
            let p = params.get(id).ok_or_else(|| Error::invalid("AdamW::step", "a gradient of another store"))?;
            let (offset, numel, _) = store.layout(p)?;
            if g.numel() != numel {
                return Err(Error::shape("AdamW::step", g.shape(), store.shape(p)?, "gradient and parameter differ"));
            }
            crate::ops::copy_into(&g.reshape(&[numel])?, &self.grad.view(offset, &[numel])?)?;
        }
        let norm = super::global_norm(&self.grad, used)?;
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let imm = Imm::default()
            .u(u32::try_from(used).map_err(|_| Error::invalid("AdamW::step", "too many parameters"))?)
            .f(lr)
            .f(c.beta1)
            .f(c.beta2)
            .f(c.eps)
            .f(c.weight_decay)
            .f(1.0 - c.beta1.powi(t))
            .f(1.0 - c.beta2.powi(t))
            .f(c.clip_norm.unwrap_or(0.0));
        let gpu = store.gpu();
        let bindings = [(0, flat), (1, &self.grad), (2, &self.m), (3, &self.v), (4, &self.decay), (5, &norm)];
        launch(gpu, &ADAMW, "adamw", &[], &bindings, &imm, gpu.grid_1d(used as u64, 256))?;
        self.norm = Some(norm);
        Ok(())
    }
}
