//! The tape: ops on [`Var`]s that need gradients are recorded with a backward closure;
//! [`Var::backward`] runs the closures in reverse order and accumulates gradients.
//!
//! A backward closure receives the gradient of its op's output and returns one gradient per
//! input (`None` where an input needs none). Closures hold the tensors they need (inputs,
//! outputs, saved statistics); they are dropped as soon as they ran, and [`Tape::clear`] drops
//! the rest, so intermediate buffers return to the pool.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::param::{Param, ParamStore};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};

/// A backward function: gradient of the output → gradients of the inputs.
pub type BackwardFn = Box<dyn FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>>>;

struct Node {
    parents: Vec<Option<usize>>,
    shape: Vec<usize>,
    backward: Option<BackwardFn>,
    /// Leaf created by `Tape::param`.
    param: Option<Param>,
    /// Leaf created by `Tape::leaf` (its gradient is kept in `Gradients`).
    leaf: bool,
    /// The backward closure already ran.
    consumed: bool,
}

struct Inner {
    gpu: Gpu,
    grad_enabled: bool,
    nodes: Vec<Node>,
}

/// Records differentiable ops. Cheap to clone (clones share the tape).
#[derive(Clone)]
pub struct Tape {
    inner: Rc<RefCell<Inner>>,
}

/// A tensor on a tape: its value and, when it depends on something that needs a gradient, the
/// node that produced it.
#[derive(Clone)]
pub struct Var {
    tensor: Tensor,
    node: Option<usize>,
    tape: Tape,
}

/// Gradients from one backward pass: by parameter and by [`Tape::leaf`] variable.
#[derive(Default, Debug)]
pub struct Gradients {
    params: HashMap<usize, Tensor>,
    leaves: HashMap<usize, Tensor>,
}

impl Gradients {
    /// The gradient of a parameter (`None` when the loss does not depend on it).
    pub fn param(&self, p: &Param) -> Option<&Tensor> {
        self.params.get(&p.id())
    }

    /// The gradient of a variable made by [`Tape::leaf`].
    pub fn of(&self, v: &Var) -> Option<&Tensor> {
        v.node.and_then(|n| self.leaves.get(&n))
    }

    /// Parameter gradients as (parameter id, gradient).
    pub(crate) fn params(&self) -> impl Iterator<Item = (usize, &Tensor)> {
        self.params.iter().map(|(k, v)| (*k, v))
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty() && self.leaves.is_empty()
    }
}

impl Tape {
    /// A tape that records ops for a backward pass.
    pub fn new(gpu: &Gpu) -> Tape {
        Tape { inner: Rc::new(RefCell::new(Inner { gpu: gpu.clone(), grad_enabled: true, nodes: Vec::new() })) }
    }

    /// A tape that records nothing (inference): ops only compute.
    pub fn no_grad(gpu: &Gpu) -> Tape {
        let t = Tape::new(gpu);
        t.inner.borrow_mut().grad_enabled = false;
        t
    }

    pub fn grad_enabled(&self) -> bool {
        self.inner.borrow().grad_enabled
    }

    pub fn gpu(&self) -> Gpu {
        self.inner.borrow().gpu.clone()
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.inner.borrow().nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every recorded op and releases the tensors the backward closures held.
    pub fn clear(&self) {
        let nodes = std::mem::take(&mut self.inner.borrow_mut().nodes);
        drop(nodes);
    }

    /// A value that needs no gradient (data, targets, masks).
    pub fn constant(&self, t: Tensor) -> Var {
        Var { tensor: t, node: None, tape: self.clone() }
    }

    /// A parameter of `store` as a variable whose gradient backward reports.
    pub fn param(&self, store: &ParamStore, p: &Param) -> Result<Var> {
        let t = store.tensor(p)?;
        Ok(self.push_leaf(t, Some(p.clone()), false))
    }

    /// A variable that needs a gradient but is not a parameter (inputs in tests, say).
    pub fn leaf(&self, t: Tensor) -> Var {
        self.push_leaf(t, None, true)
    }

    fn push_leaf(&self, t: Tensor, param: Option<Param>, leaf: bool) -> Var {
        let mut inner = self.inner.borrow_mut();
        if !inner.grad_enabled {
            return Var { tensor: t, node: None, tape: self.clone() };
        }
        inner.nodes.push(Node {
            parents: Vec::new(),
            shape: t.shape().to_vec(),
            backward: None,
            param,
            leaf,
            consumed: false,
        });
        let node = Some(inner.nodes.len() - 1);
        drop(inner);
        Var { tensor: t, node, tape: self.clone() }
    }

    /// Records an op with output `out` computed from `inputs`. Nothing is recorded when the tape
    /// is in no-grad mode or no input needs a gradient.
    pub fn record(
        &self,
        out: Tensor,
        inputs: &[&Var],
        backward: impl FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>> + 'static,
    ) -> Result<Var> {
        for v in inputs {
            if !Rc::ptr_eq(&v.tape.inner, &self.inner) && v.node.is_some() {
                return Err(Error::invalid("autodiff", "an input variable belongs to another tape"));
            }
        }
        let parents: Vec<Option<usize>> = inputs.iter().map(|v| v.node).collect();
        let mut inner = self.inner.borrow_mut();
        if !inner.grad_enabled || parents.iter().all(Option::is_none) {
            return Ok(Var { tensor: out, node: None, tape: self.clone() });
        }
        inner.nodes.push(Node {
            parents,
            shape: out.shape().to_vec(),
            backward: Some(Box::new(backward)),
            param: None,
            leaf: false,
            consumed: false,
        });
        let node = Some(inner.nodes.len() - 1);
        drop(inner);
        Ok(Var { tensor: out, node, tape: self.clone() })
    }
}

impl Var {
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    pub fn shape(&self) -> &[usize] {
        self.tensor.shape()
    }

    pub fn tape(&self) -> &Tape {
        &self.tape
    }

    pub fn gpu(&self) -> &Gpu {
        self.tensor.gpu()
    }

    /// Whether a gradient flows through this variable.
    pub fn requires_grad(&self) -> bool {
        self.node.is_some()
    }

    /// The same variable with another shape of equal size (records a reshape).
    pub fn reshape(&self, shape: &[usize]) -> Result<Var> {
        let out = self.tensor.reshape(shape)?;
        let in_shape = self.shape().to_vec();
        self.tape.record(out, &[self], move |g| Ok(vec![Some(g.reshape(&in_shape)?)]))
    }

    /// Downloads the value.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.tensor.to_vec()
    }

    /// Runs the backward pass from this scalar and returns the gradients of every parameter and
    /// leaf it depends on.
    pub fn backward(&self) -> Result<Gradients> {
        let Some(root) = self.node else {
            return Err(Error::invalid(
                "backward",
                "this value has no recorded graph: it depends on no parameter or leaf, or was computed on a \
                 no-grad tape",
            ));
        };
        if self.tensor.numel() != 1 {
            return Err(Error::invalid(
                "backward",
                format!("needs a scalar loss (one element), got shape {:?}; reduce it first", self.shape()),
            ));
        }
        let gpu = self.gpu().clone();
        let seed = Tensor::empty(&gpu, self.shape(), crate::DType::F32)?;
        crate::ops::fill(&seed, 1.0)?;
        let mut grads: Vec<Option<Tensor>> = vec![None; root + 1];
        grads[root] = Some(seed);
        let mut out = Gradients::default();
        for i in (0..=root).rev() {
            let Some(g) = grads[i].take() else { continue };
            let (parents, backward, param, leaf, shape) = {
                let mut inner = self.tape.inner.borrow_mut();
                let Some(node) = inner.nodes.get_mut(i) else {
                    return Err(Error::invalid("backward", "the tape was cleared after this value was computed"));
                };
                if node.consumed {
                    return Err(Error::invalid(
                        "backward",
                        "backward already ran through this graph; record the forward pass again (tape.clear() first)",
                    ));
                }
                let backward = node.backward.take();
                if backward.is_some() {
                    node.consumed = true;
                }
                (node.parents.clone(), backward, node.param.clone(), node.leaf, node.shape.clone())
            };
            if g.shape() != shape.as_slice() {
                return Err(Error::shape(
                    "backward (internal)",
                    g.shape(),
                    &shape,
                    "gradient shape differs from its value",
                ));
            }
            if let Some(p) = param {
                accumulate_into(&mut out.params, p.id(), g)?;
                continue;
            }
            if leaf {
                accumulate_into(&mut out.leaves, i, g)?;
                continue;
            }
            let Some(backward) = backward else { continue };
            let input_grads = backward(&g)?;
            for (parent, ig) in parents.iter().zip(input_grads) {
                if let (Some(p), Some(ig)) = (parent, ig) {
                    grads[*p] = Some(match grads[*p].take() {
                        None => ig,
                        Some(acc) => crate::ops::add(&acc, &ig)?,
                    });
                }
            }
        }
        Ok(out)
    }
}

fn accumulate_into(map: &mut HashMap<usize, Tensor>, key: usize, g: Tensor) -> Result<()> {
    let v = match map.remove(&key) {
        None => g,
        Some(acc) => crate::ops::add(&acc, &g)?,
    };
    map.insert(key, v);
    Ok(())
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var({:?}, node {:?})", self.tensor, self.node)
    }
}
