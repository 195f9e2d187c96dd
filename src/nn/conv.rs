//! Convolutional layers of the causal VAE (MODEL.md §2–3): causal convolution, the MAGVIT
//! residual block with a global-context gate, and the compress / upsample blocks. Data are
//! channels-last `[B, T, S.., C]` with one or two spatial axes.

use super::Linear;
use crate::autodiff::{Init, Param, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::ops::conv_causal::ConvSpec;

/// A causal space-time convolution with bias.
#[derive(Debug, Clone)]
pub struct CausalConv {
    pub w: Param,
    pub b: Param,
    pub spec: ConvSpec,
    pub c_in: usize,
    pub c_out: usize,
}

impl CausalConv {
    /// Weights U(±1/√fan_in), bias 0; `ns` spatial axes.
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        c_in: usize,
        c_out: usize,
        spec: ConvSpec,
        ns: usize,
    ) -> Result<CausalConv> {
        let rows = spec.weight_rows(c_in, ns);
        let bound = 1.0 / (rows.max(1) as f32).sqrt();
        Ok(CausalConv {
            w: store.add(&format!("{name}.weight"), &[rows, c_out], Init::Uniform { bound }, true)?,
            b: store.add(&format!("{name}.bias"), &[c_out], Init::Zeros, false)?,
            spec,
            c_in,
            c_out,
        })
    }

    pub fn forward(&self, tape: &Tape, store: &ParamStore, x: &Var) -> Result<Var> {
        if x.shape().last() != Some(&self.c_in) {
            return Err(Error::invalid(
                "CausalConv",
                format!("expects {} input channels, got shape {:?}", self.c_in, x.shape()),
            ));
        }
        x.conv_causal(&tape.param(store, &self.w)?, Some(&tape.param(store, &self.b)?), self.spec)
    }
}

/// Global-context gate: a softmax over space pools each frame to one context vector, which
/// 1×1 convs (C → max(16, C/2) → LeakyReLU 0.1 → C) turn into a sigmoid gate per channel. The
/// last layer starts at zero weights and bias −10, so the gate starts closed.
#[derive(Debug, Clone)]
pub struct GcGate {
    pub attn: Linear,
    pub hidden: Linear,
    pub out: Linear,
}

impl GcGate {
    pub fn new(store: &mut ParamStore, name: &str, c: usize) -> Result<GcGate> {
        let mid = (c / 2).max(16);
        let out = Linear::with_init(store, &format!("{name}.out"), mid, c, true, Init::Zeros)?;
        if let Some(b) = &out.b {
            store.set(b, &[c], &vec![-10.0; c])?;
        }
        Ok(GcGate {
            attn: Linear::new(store, &format!("{name}.attn"), c, 1, true)?,
            hidden: Linear::new(store, &format!("{name}.hidden"), c, mid, true)?,
            out,
        })
    }

    /// The gate `[B, T, 1.., C]` of features `h` `[B, T, S.., C]`.
    pub fn forward(&self, tape: &Tape, store: &ParamStore, h: &Var) -> Result<Var> {
        let s = h.shape().to_vec();
        let (bt, c) = (s[0] * s[1], s[s.len() - 1]);
        let points: usize = s[2..s.len() - 1].iter().product();
        let logits = self.attn.forward(tape, store, h)?.reshape(&[bt, 1, points])?;
        let weights = logits.softmax()?;
        let context = weights.matmul(&h.reshape(&[bt, points, c])?, None, false, false)?; // [BT, 1, C]
        let g = self.hidden.forward(tape, store, &context)?.leaky_relu(0.1)?;
        let g = self.out.forward(tape, store, &g)?.sigmoid()?;
        let mut shape = vec![s[0], s[1]];
        shape.extend(std::iter::repeat_n(1, s.len() - 3));
        shape.push(c);
        g.reshape(&shape)
    }
}

/// MAGVIT residual block: causal conv k=3 → ELU → 1×1 conv → ELU → global-context gate →
/// added to the input (through a 1×1 projection when the widths differ).
#[derive(Debug, Clone)]
pub struct ResBlock {
    pub conv1: CausalConv,
    pub conv2: CausalConv,
    pub gate: GcGate,
    pub skip: Option<CausalConv>,
}

impl ResBlock {
    pub fn new(store: &mut ParamStore, name: &str, c_in: usize, c_out: usize, ns: usize) -> Result<ResBlock> {
        Ok(ResBlock {
            conv1: CausalConv::new(store, &format!("{name}.conv1"), c_in, c_out, ConvSpec::new(3, 3, 1, 1), ns)?,
            conv2: CausalConv::new(store, &format!("{name}.conv2"), c_out, c_out, ConvSpec::new(1, 1, 1, 1), ns)?,
            gate: GcGate::new(store, &format!("{name}.gate"), c_out)?,
            skip: if c_in != c_out {
                Some(CausalConv::new(store, &format!("{name}.skip"), c_in, c_out, ConvSpec::new(1, 1, 1, 1), ns)?)
            } else {
                None
            },
        })
    }

    pub fn forward(&self, tape: &Tape, store: &ParamStore, x: &Var) -> Result<Var> {
        let h = self.conv1.forward(tape, store, x)?.elu(1.0)?;
        let h = self.conv2.forward(tape, store, &h)?.elu(1.0)?;
        let h = h.mul(&self.gate.forward(tape, store, &h)?)?;
        let skip = match &self.skip {
            Some(s) => s.forward(tape, store, x)?,
            None => x.clone(),
        };
        skip.add(&h)
    }
}

/// Compression by 2: in space (stride-2 conv k=3 per frame) or in time (stride-2 causal conv).
#[derive(Debug, Clone)]
pub struct Down {
    pub conv: CausalConv,
}

impl Down {
    pub fn space(store: &mut ParamStore, name: &str, c_in: usize, c_out: usize, ns: usize) -> Result<Down> {
        Ok(Down { conv: CausalConv::new(store, name, c_in, c_out, ConvSpec::new(1, 3, 1, 2), ns)? })
    }

    pub fn time(store: &mut ParamStore, name: &str, c_in: usize, c_out: usize, ns: usize) -> Result<Down> {
        Ok(Down { conv: CausalConv::new(store, name, c_in, c_out, ConvSpec::new(3, 1, 2, 1), ns)? })
    }

    pub fn forward(&self, tape: &Tape, store: &ParamStore, x: &Var) -> Result<Var> {
        self.conv.forward(tape, store, x)
    }
}

/// Upsampling by 2: 1×1 conv to r·C (space: 2^ns·C) channels, SiLU, depth to space or time.
#[derive(Debug, Clone)]
pub struct Up {
    pub conv: CausalConv,
    pub time: bool,
}

impl Up {
    pub fn space(store: &mut ParamStore, name: &str, c_in: usize, c_out: usize, ns: usize) -> Result<Up> {
        let r = 1usize << ns;
        Ok(Up { conv: CausalConv::new(store, name, c_in, r * c_out, ConvSpec::new(1, 1, 1, 1), ns)?, time: false })
    }

    pub fn time(store: &mut ParamStore, name: &str, c_in: usize, c_out: usize, ns: usize) -> Result<Up> {
        Ok(Up { conv: CausalConv::new(store, name, c_in, 2 * c_out, ConvSpec::new(1, 1, 1, 1), ns)?, time: true })
    }

    pub fn forward(&self, tape: &Tape, store: &ParamStore, x: &Var) -> Result<Var> {
        let h = self.conv.forward(tape, store, x)?.silu()?;
        if self.time { h.depth_to_time(2) } else { h.depth_to_space(2) }
    }
}

/// NeRF encoding of coordinates in [0, 1]^D: sin and cos of 2^linspace(0, 4, 12)·π·x per
/// coordinate (24 features per coordinate), `[N, 24·D]` row-major.
pub fn nerf_encoding(coords: &[f32], dims: usize) -> Vec<f32> {
    let bands: Vec<f32> = (0..12).map(|j| 2f32.powf(4.0 * j as f32 / 11.0) * std::f32::consts::PI).collect();
    coords
        .chunks(dims)
        .flat_map(|p| {
            let bands = bands.clone();
            p.iter()
                .flat_map(move |&x| bands.iter().flat_map(move |&b| [(b * x).sin(), (b * x).cos()]).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        })
        .collect()
}
