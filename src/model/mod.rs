//! ENMA. Stage 1: the causal space-time VAE (`encoder.rs`, `decoder.rs`).

pub mod config;
pub mod decoder;
pub mod encoder;

pub use config::{Block, VaeConfig};
pub use decoder::Decoder;
pub use encoder::Encoder;

use crate::autodiff::{ParamStore, Tape, Var};
use crate::error::Result;

/// The auto-encoder: encoder and decoder sharing one configuration.
#[derive(Debug, Clone)]
pub struct Vae {
    pub config: VaeConfig,
    pub encoder: Encoder,
    pub decoder: Decoder,
}

/// What one VAE pass returns.
pub struct VaeOutput {
    pub recon: Var,
    pub mean: Var,
    pub logvar: Var,
}

impl Vae {
    pub fn new(store: &mut ParamStore, config: VaeConfig) -> Result<Vae> {
        Ok(Vae { encoder: Encoder::new(store, &config)?, decoder: Decoder::new(store, &config)?, config })
    }

    /// Encodes `x` `[B, T, S.., C]` and decodes a sample of the posterior (`noise` ε, same shape
    /// as the latent) or its mean (`None`).
    pub fn forward(&self, tape: &Tape, store: &ParamStore, x: &Var, noise: Option<&Var>) -> Result<VaeOutput> {
        let t = x.shape()[1];
        let (mean, logvar) = self.encoder.forward(tape, store, x)?;
        let z = match noise {
            Some(eps) => mean.add(&logvar.scale(0.5)?.exp()?.mul(eps)?)?,
            None => mean.clone(),
        };
        let recon = self.decoder.forward(tape, store, &z, t)?;
        Ok(VaeOutput { recon, mean, logvar })
    }
}
