//! Metrics (MODEL.md §6).

/// Per-sample relative L2 error ‖p − t‖₂ / ‖t‖₂ over `stride` values per sample, averaged over
/// the samples.
pub fn relative_l2(pred: &[f32], target: &[f32], stride: usize) -> f64 {
    let n = target.len() / stride.max(1);
    if n == 0 {
        return 0.0;
    }
    let mut total = 0.0;
    for i in 0..n {
        let r = i * stride..(i + 1) * stride;
        let d: f64 = pred[r.clone()].iter().zip(&target[r.clone()]).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
        let t: f64 = target[r].iter().map(|v| (*v as f64).powi(2)).sum();
        total += (d / t.max(1e-30)).sqrt();
    }
    total / n as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn relative_l2_per_sample() {
        // sample 0 exact, sample 1 off by 10 %: mean 5 %
        let t = [1.0, 2.0, 3.0, 4.0];
        let p = [1.0, 2.0, 3.3, 4.4];
        assert!((super::relative_l2(&p, &t, 2) - 0.05).abs() < 1e-6);
    }
}
