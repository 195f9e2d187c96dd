//! enma: the ENMA generative neural PDE operator (arXiv 2506.06158) on wgpu, with hand-written
//! WGSL kernels, a buffer pool and (from the next milestones) an autodiff tape.
//!
//! Start with [`Gpu::new`] (or [`Gpu::from_device`] to share a host application's device), make
//! [`Tensor`]s and call the ops in [`ops`].

pub mod error;
pub mod gpu;
pub mod ops;

pub use error::{Error, Result};
pub use gpu::{DType, Gpu, GpuOptions, PoolStats, RuntimeStats, Tensor, TimingMethod};
/// The wgpu version enma is built on, for hosts that share their device.
pub use wgpu;
