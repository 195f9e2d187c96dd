//! The causal space-time VAE encoder (MODEL.md §2, interpolation module off): causal input
//! convolution (k = 7) → `res` / `space` / `time` blocks → causal output convolution to
//! 2·d channels (mean, log-variance).

use super::config::{Block, VaeConfig};
use crate::autodiff::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::{DType, Tensor};
use crate::nn::{CausalConv, Down, ResBlock};
use crate::ops::conv_causal::ConvSpec;

#[derive(Debug, Clone)]
enum Layer {
    Res(Box<ResBlock>),
    Down(Down),
}

#[derive(Debug, Clone)]
pub struct Encoder {
    conv_in: CausalConv,
    layers: Vec<Layer>,
    conv_out: CausalConv,
    time_blocks: usize,
    channels: usize,
    ns: usize,
}

impl Encoder {
    pub fn new(store: &mut ParamStore, cfg: &VaeConfig) -> Result<Encoder> {
        cfg.validate()?;
        let ns = cfg.spatial_axes;
        let w = cfg.widths();
        let conv_in =
            CausalConv::new(store, "encoder.conv_in", cfg.cnn_channels(), w[0], ConvSpec::new(7, 7, 1, 1), ns)?;
        let mut layers = Vec::new();
        for (i, b) in cfg.blocks.iter().enumerate() {
            let name = format!("encoder.block{i}");
            layers.push(match b {
                Block::Res => Layer::Res(Box::new(ResBlock::new(store, &name, w[i], w[i + 1], ns)?)),
                Block::Space => Layer::Down(Down::space(store, &name, w[i], w[i + 1], ns)?),
                Block::Time => Layer::Down(Down::time(store, &name, w[i], w[i + 1], ns)?),
            });
        }
        let last = *w.last().expect("widths");
        let conv_out =
            CausalConv::new(store, "encoder.conv_out", last, 2 * cfg.latent_dim, ConvSpec::new(7, 7, 1, 1), ns)?;
        let time_blocks = cfg.blocks.iter().filter(|b| **b == Block::Time).count();
        Ok(Encoder { conv_in, layers, conv_out, time_blocks, channels: cfg.cnn_channels(), ns })
    }

    /// `x` `[B, T, S.., C]` → (mean, log-variance), each `[B, T', S'.., d]`. With a time block an
    /// even T gets one zero frame appended first (T' = ⌊T/2⌋ + 1).
    pub fn forward(&self, tape: &Tape, store: &ParamStore, x: &Var) -> Result<(Var, Var)> {
        let s = x.shape().to_vec();
        if s.len() != 3 + self.ns || s[s.len() - 1] != self.channels {
            return Err(Error::invalid(
                "Encoder",
                format!("expects [B, T, {} spatial axes.., {} channels], got {s:?}", self.ns, self.channels),
            ));
        }
        let mut h = x.clone();
        if self.time_blocks > 0 && s[1].is_multiple_of(2) {
            let mut zs = s.clone();
            zs[1] = 1;
            let zero = tape.constant(Tensor::zeros(x.gpu(), &zs, DType::F32)?);
            h = Var::concat(&[&h, &zero], 1)?;
        }
        h = self.conv_in.forward(tape, store, &h)?;
        for l in &self.layers {
            h = match l {
                Layer::Res(r) => r.forward(tape, store, &h)?,
                Layer::Down(d) => d.forward(tape, store, &h)?,
            };
        }
        let out = self.conv_out.forward(tape, store, &h)?;
        let d = out.shape().last().copied().unwrap_or(0) / 2;
        let last = out.shape().len() - 1;
        Ok((out.slice(last, 0, d)?, out.slice(last, d, 2 * d)?))
    }
}
