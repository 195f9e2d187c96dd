//! Layers built from ops. A layer holds parameter handles; its `forward` takes the tape that
//! records the pass and the [`ParamStore`](crate::ParamStore) that holds the values.

pub mod attention;
pub mod block;
pub mod conv;
pub mod embedding;
pub mod interp;
pub mod linear;
pub mod mlp;
pub mod norm;
pub mod physics_attention;

pub use attention::{AttentionPath, KvCache, MultiHeadAttention};
pub use block::TransformerBlock;
pub use conv::{CausalConv, Down, GcGate, ResBlock, Up, nerf_encoding};
pub use embedding::Embedding;
pub use interp::{Interpolation, OutputAttention};
pub use linear::Linear;
pub use mlp::SwiGluMlp;
pub use norm::{LayerNorm, RmsNorm};
pub use physics_attention::{PhysicsAttention, TransolverBlock};
