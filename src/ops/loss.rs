//! Losses, built from differentiable ops (their backward comes from the ops' kernels).

use crate::autodiff::Var;
use crate::error::{Error, Result};

fn same_shape(op: &str, a: &Var, b: &Var) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::shape(op, a.shape(), b.shape(), "prediction and target must have the same shape"));
    }
    Ok(())
}

/// Mean squared error over every element, shape `[1]`.
pub fn mse(pred: &Var, target: &Var) -> Result<Var> {
    same_shape("mse", pred, target)?;
    pred.sub(target)?.square()?.mean_all()
}

/// Per-sample relative L2 error ‖p − t‖₂ / ‖t‖₂ over all but the first (batch) axis, averaged
/// over the batch: shape `[1]`. `eps` keeps an all-zero target finite.
pub fn relative_l2(pred: &Var, target: &Var, eps: f32) -> Result<Var> {
    same_shape("relative_l2", pred, target)?;
    let b = *pred.shape().first().ok_or_else(|| Error::invalid("relative_l2", "needs a batch axis"))?;
    let n = pred.tensor().numel().checked_div(b).unwrap_or(0);
    let diff = pred.sub(target)?.reshape(&[b, n])?.square()?.sum(1, false)?.affine(1.0, eps)?.sqrt()?;
    let norm = target.reshape(&[b, n])?.square()?.sum(1, false)?.affine(1.0, eps)?.sqrt()?;
    diff.div(&norm)?.mean(0, true)
}

/// KL(N(μ, exp(logvar)) ‖ N(0, I)) averaged over elements: mean(−½(1 + lv − μ² − e^lv)), `[1]`.
pub fn kl_diag_normal(mu: &Var, logvar: &Var) -> Result<Var> {
    same_shape("kl_diag_normal", mu, logvar)?;
    let inner = logvar.affine(1.0, 1.0)?.sub(&mu.square()?)?.sub(&logvar.exp()?)?;
    inner.mean_all()?.scale(-0.5)
}

/// Σ(x ⊙ mask) / Σ(mask), `[1]` (mask of 0/1, broadcastable to x). An all-zero mask gives 0
/// (the denominator is clamped to 1e-12), without a GPU round trip to check it.
pub fn masked_mean(x: &Var, mask: &Var) -> Result<Var> {
    let num = x.mul(mask)?.sum_all()?;
    let full = if mask.shape() == x.shape() { mask.clone() } else { mask.expand(x.shape())? };
    let tiny = mask.tape().constant(crate::gpu::Tensor::from_slice(mask.gpu(), &[1e-12], &[1])?);
    num.div(&full.sum_all()?.maximum(&tiny)?)
}
