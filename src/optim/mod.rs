//! Optimisation: fused AdamW over all parameters, global gradient-norm clipping, learning-rate
//! schedules.

pub mod adamw;
pub mod clip;
pub mod schedule;

pub use adamw::{AdamW, AdamWConfig, OptimState};
pub use clip::global_norm;
pub use schedule::LrSchedule;

use crate::error::{Error, Result};

/// Fails with the step number when a loss (or a norm) is NaN or infinite.
pub fn check_finite(what: &str, value: f32, step: u64) -> Result<()> {
    if value.is_finite() { Ok(()) } else { Err(Error::NonFinite { what: what.to_string(), value, step }) }
}
