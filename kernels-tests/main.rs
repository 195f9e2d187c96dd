//! Kernel tests: every kernel against a plain-Rust CPU reference, with stated tolerances.
//! They run on whatever adapter `Gpu::new` picks (lavapipe in CI).

mod common;

mod binary;
mod errors;
mod fill;
mod matmul;
mod pool;
mod reduce;
mod runtime;
mod shaders;
mod tensor;
mod unary;
