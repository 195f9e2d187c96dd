//! Learned embeddings: a table of vectors used whole (learned tokens, queries) or looked up by
//! index (a gather, whose gradient is a deterministic scatter-add).

use crate::autodiff::{Init, Param, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::ops::RowIndex;

#[derive(Debug, Clone)]
pub struct Embedding {
    pub table: Param,
    pub n: usize,
    pub d: usize,
}

impl Embedding {
    /// `n` vectors of width `d`, N(0, std²) at init, without weight decay.
    pub fn new(store: &mut ParamStore, name: &str, n: usize, d: usize, std: f32) -> Result<Embedding> {
        Ok(Embedding { table: store.add(&format!("{name}.weight"), &[n, d], Init::Normal { std }, false)?, n, d })
    }

    /// The whole table `[n, d]`.
    pub fn all(&self, tape: &Tape, store: &ParamStore) -> Result<Var> {
        tape.param(store, &self.table)
    }

    /// Rows `index` of the table: `[index.len(), d]`.
    pub fn lookup(&self, tape: &Tape, store: &ParamStore, index: &RowIndex) -> Result<Var> {
        if index.rows() != self.n {
            return Err(Error::invalid(
                "Embedding",
                format!("index made for {} rows, table has {}", index.rows(), self.n),
            ));
        }
        self.all(tape, store)?.gather_rows(index)
    }
}
