//! Kernel tests: every kernel against a plain-Rust CPU reference, with stated tolerances.
//! They run on whatever adapter `Gpu::new` picks (lavapipe in CI).

mod common;

mod attention;
mod backward;
mod binary;
mod cli;
mod conv_causal;
mod cross_attention;
mod errors;
mod fill;
mod flash_attention;
mod flow;
mod flow_sample;
mod gather;
mod generator;
mod interp;
mod loss;
mod matmul;
mod norm;
mod optim;
mod pool;
mod posenc;
mod random;
mod reduce;
mod runtime;
mod shaders;
mod softmax;
mod swiglu;
mod tape;
mod tensor;
mod train;
mod tune;
mod unary;
mod vae;
mod vae_blocks;
