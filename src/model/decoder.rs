//! The mirrored decoder: causal input convolution (k = 7) from d channels → the blocks in
//! reverse, upsampling by 1×1 conv + SiLU + depth to space / time → causal output convolution
//! to the physical channels. Latent 0 gives frame 0 and latent k frames 2k − 1 and 2k (the
//! first of the 2T' upsampled frames is dropped), and a padded frame is removed at the end.

use super::config::{Block, VaeConfig};
use crate::autodiff::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::nn::{CausalConv, ResBlock, Up};
use crate::ops::conv_causal::ConvSpec;

#[derive(Debug, Clone)]
enum Layer {
    Res(Box<ResBlock>),
    Up(Up),
}

#[derive(Debug, Clone)]
pub struct Decoder {
    conv_in: CausalConv,
    layers: Vec<Layer>,
    conv_out: CausalConv,
    latent_dim: usize,
}

impl Decoder {
    pub fn new(store: &mut ParamStore, cfg: &VaeConfig) -> Result<Decoder> {
        cfg.validate()?;
        let ns = cfg.spatial_axes;
        let w = cfg.widths();
        let last = *w.last().expect("widths");
        let conv_in = CausalConv::new(store, "decoder.conv_in", cfg.latent_dim, last, ConvSpec::new(7, 7, 1, 1), ns)?;
        let mut layers = Vec::new();
        for (i, b) in cfg.blocks.iter().enumerate().rev() {
            let name = format!("decoder.block{i}");
            layers.push(match b {
                Block::Res => Layer::Res(Box::new(ResBlock::new(store, &name, w[i + 1], w[i], ns)?)),
                Block::Space => Layer::Up(Up::space(store, &name, w[i + 1], w[i], ns)?),
                Block::Time => Layer::Up(Up::time(store, &name, w[i + 1], w[i], ns)?),
            });
        }
        let conv_out =
            CausalConv::new(store, "decoder.conv_out", w[0], cfg.cnn_channels(), ConvSpec::new(7, 7, 1, 1), ns)?;
        Ok(Decoder { conv_in, layers, conv_out, latent_dim: cfg.latent_dim })
    }

    /// `z` `[B, T', S'.., d]` → `[B, t, S.., C]` for a trajectory of `t` frames.
    pub fn forward(&self, tape: &Tape, store: &ParamStore, z: &Var, t: usize) -> Result<Var> {
        if z.shape().last() != Some(&self.latent_dim) {
            return Err(Error::invalid(
                "Decoder",
                format!("expects {} latent channels, got {:?}", self.latent_dim, z.shape()),
            ));
        }
        let mut h = self.conv_in.forward(tape, store, z)?;
        for l in &self.layers {
            h = match l {
                Layer::Res(r) => r.forward(tape, store, &h)?,
                Layer::Up(u) => {
                    let y = u.forward(tape, store, &h)?;
                    if u.time {
                        let frames = y.shape()[1];
                        y.slice(1, 1, frames)?
                    } else {
                        y
                    }
                }
            };
        }
        let y = self.conv_out.forward(tape, store, &h)?;
        let frames = y.shape()[1];
        if frames == t {
            Ok(y)
        } else if frames == t + 1 {
            y.slice(1, 0, t) // the zero frame the encoder appended
        } else {
            Err(Error::invalid("Decoder", format!("decoded {frames} frames for a trajectory of {t}")))
        }
    }
}
