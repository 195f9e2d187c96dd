//! PDE data: the five benchmark generators, HDF5 files and the dataset pipeline.

pub mod dataset;
pub mod generate;
pub mod hdf5;
pub mod pde;

pub use pde::{Pde, Spec, Split};

#[cfg(test)]
mod tests;
