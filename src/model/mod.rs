//! ENMA. Stage 1: the causal space-time VAE (`encoder.rs`, `decoder.rs`).

pub mod causal;
pub mod config;
pub mod decoder;
pub mod encoder;
pub mod enma;
pub mod flow;
pub mod spatial;

pub use config::{Block, InterpConfig, VaeConfig};
pub use decoder::Decoder;
pub use encoder::Encoder;

use crate::autodiff::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::nn::{Interpolation, OutputAttention};

/// The auto-encoder: encoder and decoder sharing one configuration, with the interpolation
/// module around them when configured.
#[derive(Debug, Clone)]
pub struct Vae {
    pub config: VaeConfig,
    pub encoder: Encoder,
    pub decoder: Decoder,
    pub interp: Option<(Interpolation, OutputAttention)>,
}

/// Observations at scattered points: `values` `[B, T, N, C]` (rows beyond `counts[b]` are
/// padding), `coords` the `B·N·D` coordinates in [0, 1) of each sample's points.
pub struct Points<'a> {
    pub values: &'a Var,
    pub coords: &'a [f32],
    pub counts: &'a [u32],
}

/// What one VAE pass returns.
pub struct VaeOutput {
    pub recon: Var,
    pub mean: Var,
    pub logvar: Var,
}

impl Vae {
    pub fn new(store: &mut ParamStore, config: VaeConfig) -> Result<Vae> {
        config.validate()?;
        let interp = match &config.interp {
            None => None,
            Some(i) => Some((
                Interpolation::new(
                    store,
                    "interp",
                    config.channels,
                    &i.grid,
                    i.features,
                    i.layers,
                    i.slices,
                    i.periodic,
                )?,
                OutputAttention::new(
                    store,
                    "out_attention",
                    config.spatial_axes,
                    i.features,
                    config.channels,
                    i.periodic,
                )?,
            )),
        };
        Ok(Vae { encoder: Encoder::new(store, &config)?, decoder: Decoder::new(store, &config)?, config, interp })
    }

    /// With the interpolation module: encodes observations at scattered points and decodes at
    /// `queries` (`Q·D` coordinates shared by the batch) → `[B, T, Q, C]`.
    pub fn forward_points(
        &self,
        tape: &Tape,
        store: &ParamStore,
        obs: &Points,
        queries: &[f32],
        noise: Option<&Var>,
    ) -> Result<VaeOutput> {
        let (interp, out_att) = self
            .interp
            .as_ref()
            .ok_or_else(|| Error::invalid("Vae", "the interpolation module is off; use `forward`"))?;
        let s = obs.values.shape().to_vec();
        if s.len() != 4 {
            return Err(Error::invalid("Vae", format!("points must be [B, T, N, C], got {s:?}")));
        }
        let (b, t, n, c) = (s[0], s[1], s[2], s[3]);
        let dims = self.config.spatial_axes;
        if obs.coords.len() != b * n * dims || obs.counts.len() != b {
            return Err(Error::invalid(
                "Vae",
                format!(
                    "{} coordinates and {} counts for {b} samples of {n} points",
                    obs.coords.len(),
                    obs.counts.len()
                ),
            ));
        }
        // every frame of a sample sees the same points
        let coords: Vec<f32> = (0..b)
            .flat_map(|bi| (0..t).flat_map(move |_| obs.coords[bi * n * dims..(bi + 1) * n * dims].iter().copied()))
            .collect();
        let counts: Vec<u32> = (0..b).flat_map(|bi| std::iter::repeat_n(obs.counts[bi], t)).collect();
        let grid = interp.forward(tape, store, &obs.values.reshape(&[b * t, n, c])?, &coords, &counts)?;
        let features = grid.shape()[2];
        let mut gshape = vec![b, t];
        gshape.extend(&interp.grid);
        gshape.push(features);
        let out = self.forward(tape, store, &grid.reshape(&gshape)?, noise)?;
        let m: usize = interp.grid.iter().product();
        let dec = out.recon.reshape(&[b * t, m, features])?;
        let xi = tape.param(store, &interp.xi)?;
        let q = queries.len() / dims;
        let recon = out_att.forward(tape, store, &dec, &xi, queries)?.reshape(&[b, t, q, self.config.channels])?;
        Ok(VaeOutput { recon, mean: out.mean, logvar: out.logvar })
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
