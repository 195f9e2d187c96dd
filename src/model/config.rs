//! Model configuration (MODEL.md §2, Table 12 of the paper).

use serde::{Deserialize, Serialize};

use crate::data::generate::PdeName;
use crate::error::{Error, Result};

/// A block of the causal VAE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Block {
    #[serde(alias = "Res")]
    Res,
    /// Compress space by 2 (per axis).
    #[serde(alias = "Space")]
    Space,
    /// Compress time by 2 (causal).
    #[serde(alias = "Time")]
    Time,
}

/// The interpolation module (irregular inputs): grid Ξ, feature width, Physics Attention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterpConfig {
    /// Points of Ξ per spatial axis (1D 128, 2D 16 × 16).
    pub grid: Vec<usize>,
    /// Features per grid point (c_reg: 64 in 1D, 16 in 2D).
    pub features: usize,
    /// Physics Attention layers and slices.
    pub layers: usize,
    pub slices: usize,
    /// Minimum-image distances (periodic domains).
    pub periodic: bool,
}

impl InterpConfig {
    /// The paper's module for `spatial_axes` axes.
    pub fn paper(spatial_axes: usize) -> InterpConfig {
        if spatial_axes == 1 {
            InterpConfig { grid: vec![128], features: 64, layers: 2, slices: 16, periodic: true }
        } else {
            InterpConfig { grid: vec![16, 16], features: 16, layers: 2, slices: 64, periodic: true }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaeConfig {
    /// Physical channels.
    pub channels: usize,
    /// Spatial axes (1 or 2).
    pub spatial_axes: usize,
    /// Width after the input convolution.
    pub width: usize,
    /// Widths double at each compress block up to this.
    pub max_width: usize,
    /// Latent channels d.
    pub latent_dim: usize,
    pub blocks: Vec<Block>,
    /// Weight of the KL term (averaged over latent elements).
    pub kl_weight: f32,
    /// The interpolation module; `None` = the CNN reads the regular grid directly.
    #[serde(default)]
    pub interp: Option<InterpConfig>,
}

impl VaeConfig {
    /// The paper's VAE for a dataset, with `max_width` (64 in the tiny presets).
    pub fn for_dataset(dataset: PdeName, max_width: usize) -> VaeConfig {
        use Block::*;
        let (channels, ns, d, blocks) = match dataset {
            PdeName::Advection | PdeName::Combined => {
                (1, 1, 4, vec![Res, Space, Res, Space, Res, Space, Res, Time, Res])
            }
            PdeName::GrayScott => (2, 2, 4, vec![Res, Space, Res, Time, Res]),
            PdeName::Wave | PdeName::Vorticity => (1, 2, 8, vec![Res, Space, Res, Time, Res]),
        };
        VaeConfig {
            channels,
            spatial_axes: ns,
            width: 16,
            max_width,
            latent_dim: d,
            blocks,
            kl_weight: 1e-4,
            interp: None,
        }
    }

    /// Width after each block, starting with the input convolution's.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.width];
        for b in &self.blocks {
            let last = *w.last().expect("non-empty");
            w.push(if *b == Block::Res { last } else { (2 * last).min(self.max_width) });
        }
        w
    }

    /// Latent frames for `t` physical frames: ⌊t/2⌋ + 1 per time block (MODEL.md's time rule).
    pub fn latent_frames(&self, t: usize) -> usize {
        self.blocks.iter().filter(|b| **b == Block::Time).fold(t, |t, _| t / 2 + 1)
    }

    /// Latent points per spatial axis for `s` points.
    pub fn latent_points(&self, s: usize) -> usize {
        self.blocks.iter().filter(|b| **b == Block::Space).fold(s, |s, _| s.div_ceil(2))
    }

    /// Channels the convolutional part reads and writes (the interpolation features when the
    /// module is on).
    pub fn cnn_channels(&self) -> usize {
        self.interp.as_ref().map(|i| i.features).unwrap_or(self.channels)
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(i) = &self.interp {
            if i.grid.len() != self.spatial_axes || i.features == 0 {
                return Err(Error::invalid(
                    "VaeConfig",
                    format!("interpolation grid {:?} for {} spatial axes", i.grid, self.spatial_axes),
                ));
            }
        }
        if !(1..=2).contains(&self.spatial_axes) || self.channels == 0 || self.width == 0 || self.latent_dim == 0 {
            return Err(Error::invalid("VaeConfig", format!("{self:?}: spatial_axes 1 or 2, and non-zero widths")));
        }
        if self.blocks.iter().filter(|b| **b == Block::Time).count() > 1 {
            return Err(Error::invalid("VaeConfig", "at most one time-compression block (the time rule halves once)"));
        }
        Ok(())
    }
}
