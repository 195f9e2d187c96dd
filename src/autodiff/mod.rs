//! Reverse-mode automatic differentiation: a tape of recorded ops and named parameters.

pub mod param;
pub mod tape;

pub use param::{Init, Param, ParamStore};
pub use tape::{Gradients, Tape, Var};
