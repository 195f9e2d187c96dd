//! enma: the ENMA generative neural PDE operator (arXiv 2506.06158) on wgpu, with hand-written
//! WGSL kernels, a buffer pool, an autodiff tape, and CPU solvers for the benchmark PDEs.
//!
//! Start with [`Gpu::new`] (or [`Gpu::from_device`] to share a host application's device), make
//! [`Tensor`]s and call the ops in [`ops`]. Ops record kernels; nothing is submitted to the GPU
//! until a result is read back (or [`Gpu::flush`] / [`Gpu::sync`]).
//!
//! ```
//! use enma::{Gpu, GpuOptions, Tensor, ops};
//!
//! # fn main() -> enma::Result<()> {
//! let gpu = Gpu::new(GpuOptions::default())?;
//! let a = Tensor::from_slice(&gpu, &[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
//! let c = ops::matmul(&a, &a, None, false, false)?; // [[7, 10], [15, 22]]
//! let rows = ops::sum(&c, -1, false)?;
//! assert_eq!(rows.to_vec()?, vec![17.0, 37.0]);
//! assert_eq!(gpu.runtime_stats().submissions, 1); // uploads, 2 kernels and the readback
//! # Ok(())
//! # }
//! ```

// Numerical kernels read more clearly with index loops over several arrays at once.
#![allow(clippy::needless_range_loop)]

pub mod autodiff;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod eval;
pub mod gpu;
pub mod metrics;
pub mod model;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod plot;
pub mod report;
pub mod run;
pub mod train;

pub use autodiff::{Gradients, Init, Param, ParamStore, Tape, Var};
pub use error::{Error, Result};
pub use gpu::{DType, Gpu, GpuOptions, PoolStats, RuntimeStats, Tensor, TimingMethod, TuneChoice, TuneSettings};
/// The wgpu version enma is built on, for hosts that share their device.
pub use wgpu;
