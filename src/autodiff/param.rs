//! Named parameters. All parameters of a store live in one flat GPU buffer (each starting on a
//! 256-byte boundary), so the optimiser updates every parameter with one fused kernel and a
//! checkpoint is one contiguous block plus a table of names, shapes and offsets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Tensor};
use crate::ops::random::Philox;

/// Every parameter starts at a multiple of this many elements (256 bytes: the largest storage
/// offset alignment of common GPUs), so its view can be bound on its own.
pub const PARAM_ALIGN: usize = 64;

static NEXT_STORE: AtomicU64 = AtomicU64::new(1);

/// A parameter's name, shape and values, as exported.
pub type NamedValues = (String, Vec<usize>, Vec<f32>);

/// A handle to one parameter of a [`ParamStore`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Param {
    id: usize,
    store: u64,
}

impl Param {
    /// Index of the parameter in its store (order of creation).
    pub fn id(&self) -> usize {
        self.id
    }
}

/// How a parameter starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Init {
    Zeros,
    Const(f32),
    /// N(0, std²), from the store's seed and the parameter's name.
    Normal {
        std: f32,
    },
    /// U(−bound, bound).
    Uniform {
        bound: f32,
    },
    /// Explicit values (row-major).
    Values(Vec<f32>),
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    shape: Vec<usize>,
    offset: usize,
    decay: bool,
}

/// Parameters by name, stored in one flat buffer.
pub struct ParamStore {
    gpu: Gpu,
    id: u64,
    seed: u64,
    entries: Vec<Entry>,
    names: HashMap<String, usize>,
    data: Option<Tensor>,
    used: usize,
}

/// FNV-1a, to derive a per-parameter seed from its name.
fn name_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl ParamStore {
    /// An empty store; `seed` decides every random initialisation.
    pub fn new(gpu: &Gpu, seed: u64) -> ParamStore {
        ParamStore {
            gpu: gpu.clone(),
            id: NEXT_STORE.fetch_add(1, Ordering::Relaxed),
            seed,
            entries: Vec::new(),
            names: HashMap::new(),
            data: None,
            used: 0,
        }
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Adds a parameter. `decay` says whether AdamW's weight decay applies to it (weights:
    /// yes; biases, norms and embeddings usually not).
    pub fn add(&mut self, name: &str, shape: &[usize], init: Init, decay: bool) -> Result<Param> {
        if self.names.contains_key(name) {
            return Err(Error::invalid("ParamStore::add", format!("a parameter named `{name}` exists already")));
        }
        let numel: usize = shape.iter().product();
        let values: Vec<f32> = match init {
            Init::Zeros => vec![0.0; numel],
            Init::Const(c) => vec![c; numel],
            Init::Normal { std } => {
                let mut rng = Philox::new(self.seed ^ name_hash(name), 0);
                (0..numel).map(|_| rng.normal() * std).collect()
            }
            Init::Uniform { bound } => {
                let mut rng = Philox::new(self.seed ^ name_hash(name), 0);
                (0..numel).map(|_| (rng.uniform() * 2.0 - 1.0) * bound).collect()
            }
            Init::Values(v) => {
                if v.len() != numel {
                    return Err(Error::invalid(
                        "ParamStore::add",
                        format!("`{name}`: {} values for shape {shape:?} ({numel} elements)", v.len()),
                    ));
                }
                v
            }
        };
        let offset = self.used.div_ceil(PARAM_ALIGN) * PARAM_ALIGN;
        let end = offset + numel;
        self.reserve(end)?;
        self.used = end;
        let id = self.entries.len();
        self.entries.push(Entry { name: name.to_string(), shape: shape.to_vec(), offset, decay });
        self.names.insert(name.to_string(), id);
        let p = Param { id, store: self.id };
        if numel > 0 {
            self.tensor(&p)?.write(&values)?;
        }
        Ok(p)
    }

    /// Makes room for `elems` elements, moving the parameters to a larger buffer if needed.
    fn reserve(&mut self, elems: usize) -> Result<()> {
        let cap = self.capacity();
        if elems <= cap {
            return Ok(());
        }
        let new_cap = (cap * 2).max(elems).max(4096).div_ceil(PARAM_ALIGN) * PARAM_ALIGN;
        let fresh = Tensor::zeros(&self.gpu, &[new_cap], DType::F32)?;
        if let Some(old) = &self.data {
            if self.used > 0 {
                crate::ops::copy_into(&old.view(0, &[self.used])?, &fresh.view(0, &[self.used])?)?;
            }
        }
        self.data = Some(fresh);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.as_ref().map(|d| d.numel()).unwrap_or(0)
    }

    fn entry(&self, p: &Param) -> Result<&Entry> {
        if p.store != self.id {
            return Err(Error::invalid("ParamStore", "the parameter belongs to another store"));
        }
        self.entries.get(p.id).ok_or_else(|| Error::invalid("ParamStore", format!("no parameter {}", p.id)))
    }

    /// The current value of a parameter (a view into the flat buffer; no copy).
    pub fn tensor(&self, p: &Param) -> Result<Tensor> {
        let e = self.entry(p)?;
        let data = self.data.as_ref().ok_or_else(|| Error::invalid("ParamStore", "the store is empty"))?;
        data.view(e.offset, &e.shape)
    }

    /// Looks a parameter up by name.
    pub fn get(&self, name: &str) -> Option<Param> {
        self.names.get(name).map(|&id| Param { id, store: self.id })
    }

    pub fn name(&self, p: &Param) -> Result<&str> {
        Ok(&self.entry(p)?.name)
    }

    pub fn shape(&self, p: &Param) -> Result<&[usize]> {
        Ok(&self.entry(p)?.shape)
    }

    /// All parameters in order of creation.
    pub fn params(&self) -> Vec<Param> {
        (0..self.entries.len()).map(|id| Param { id, store: self.id }).collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total number of parameter values (without alignment padding).
    pub fn num_values(&self) -> usize {
        self.entries.iter().map(|e| e.shape.iter().product::<usize>()).sum()
    }

    /// Every parameter's name, shape and values (downloads the flat buffer once).
    pub fn export(&self) -> Result<Vec<NamedValues>> {
        let Some((data, used)) = self.flat() else { return Ok(Vec::new()) };
        let all = if used == 0 { Vec::new() } else { data.view(0, &[used])?.to_vec()? };
        Ok(self
            .entries
            .iter()
            .map(|e| {
                let n: usize = e.shape.iter().product();
                (e.name.clone(), e.shape.clone(), all[e.offset..e.offset + n].to_vec())
            })
            .collect())
    }

    /// Overwrites a parameter's values (loading a checkpoint). The shape must match.
    pub fn set(&self, p: &Param, shape: &[usize], values: &[f32]) -> Result<()> {
        let e = self.entry(p)?;
        if e.shape != shape {
            return Err(Error::shape(
                format!("loading parameter `{}`", e.name),
                shape,
                &e.shape,
                "the stored shape differs",
            ));
        }
        self.tensor(p)?.write(values)
    }

    /// The flat buffer and the number of elements in use (padding included).
    pub(crate) fn flat(&self) -> Option<(&Tensor, usize)> {
        self.data.as_ref().map(|d| (d, self.used))
    }

    /// (offset, numel, decay) of a parameter in the flat buffer.
    pub(crate) fn layout(&self, p: &Param) -> Result<(usize, usize, bool)> {
        let e = self.entry(p)?;
        Ok((e.offset, e.shape.iter().product(), e.decay))
    }
}
