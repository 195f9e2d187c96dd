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

/// Central-interval levels of [`rmsce`] and their Gaussian half-widths z_p = Φ⁻¹((1 + p)/2).
const LEVELS: [(f64, f64); 9] = [
    (0.1, 0.125_661),
    (0.2, 0.253_347),
    (0.3, 0.385_320),
    (0.4, 0.524_401),
    (0.5, 0.674_490),
    (0.6, 0.841_621),
    (0.7, 1.036_433),
    (0.8, 1.281_552),
    (0.9, 1.644_854),
];

/// Ensemble CRPS averaged over points: `samples` holds K members of `truth.len()` values each
/// (member-major); per point mean|xₙ − y| − ½·mean|xₙ − xₙ'| (the pair sum through the sorted
/// members).
pub fn crps(samples: &[f32], truth: &[f32]) -> f64 {
    let p = truth.len();
    let k = samples.len().checked_div(p).unwrap_or(0);
    if k == 0 {
        return 0.0;
    }
    let mut x = vec![0f64; k];
    let mut total = 0.0;
    for i in 0..p {
        for (n, v) in x.iter_mut().enumerate() {
            *v = samples[n * p + i] as f64;
        }
        let y = truth[i] as f64;
        let spread: f64 = x.iter().map(|v| (v - y).abs()).sum::<f64>() / k as f64;
        x.sort_by(f64::total_cmp);
        // Σ_{n,n'} |x_n − x_n'| = 2 Σ_i (2i − K + 1) x_(i)
        let pairs: f64 = x.iter().enumerate().map(|(j, v)| (2.0 * j as f64 - k as f64 + 1.0) * v).sum::<f64>() * 2.0;
        total += spread - 0.5 * pairs / (k * k) as f64;
    }
    total / p as f64
}

/// Root mean squared calibration error: for p ∈ {0.1, …, 0.9}, the fraction p̂ of truths inside
/// the ensemble's central Gaussian interval (mean ± z_p·std) against p; sqrt(mean (p − p̂)²).
pub fn rmsce(samples: &[f32], truth: &[f32]) -> f64 {
    let p = truth.len();
    let k = samples.len().checked_div(p).unwrap_or(0);
    if k < 2 {
        return f64::NAN;
    }
    let mut inside = [0usize; LEVELS.len()];
    for i in 0..p {
        let vals = (0..k).map(|n| samples[n * p + i] as f64);
        let mean = vals.clone().sum::<f64>() / k as f64;
        let std = (vals.map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1) as f64).sqrt();
        let dev = (truth[i] as f64 - mean).abs();
        for (c, (_, z)) in inside.iter_mut().zip(LEVELS) {
            *c += (dev <= z * std) as usize;
        }
    }
    let sq: f64 = inside.iter().zip(LEVELS).map(|(&c, (lv, _))| (lv - c as f64 / p as f64).powi(2)).sum();
    (sq / LEVELS.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use crate::ops::random::Philox;

    #[test]
    fn crps_of_a_point_ensemble_is_the_absolute_error_and_matches_the_pair_formula() {
        // every member equal: CRPS = |x − y|
        assert!((super::crps(&[2.0, 2.0, 2.0], &[0.5]) - 1.5).abs() < 1e-12);
        // against the O(K²) definition on random data
        let mut r = Philox::new(1, 2);
        let (k, p) = (7, 5);
        let s: Vec<f32> = (0..k * p).map(|_| r.normal()).collect();
        let t: Vec<f32> = (0..p).map(|_| r.normal()).collect();
        let mut want = 0.0;
        for i in 0..p {
            let x: Vec<f64> = (0..k).map(|n| s[n * p + i] as f64).collect();
            let a: f64 = x.iter().map(|v| (v - t[i] as f64).abs()).sum::<f64>() / k as f64;
            let b: f64 = x.iter().flat_map(|u| x.iter().map(move |v| (u - v).abs())).sum::<f64>() / (k * k) as f64;
            want += a - 0.5 * b;
        }
        assert!((super::crps(&s, &t) - want / p as f64).abs() < 1e-9);
    }

    #[test]
    fn a_calibrated_ensemble_has_a_small_rmsce_and_an_overconfident_one_does_not() {
        let mut r = Philox::new(3, 4);
        let (k, p) = (64, 4000);
        let truth: Vec<f32> = (0..p).map(|_| r.normal()).collect();
        let good: Vec<f32> = (0..k * p).map(|_| r.normal()).collect();
        let narrow: Vec<f32> = good.iter().map(|v| 0.2 * v).collect();
        let (a, b) = (super::rmsce(&good, &truth), super::rmsce(&narrow, &truth));
        assert!(a < 0.03, "calibrated: {a}");
        assert!(b > 0.3, "overconfident: {b}");
    }

    #[test]
    fn relative_l2_per_sample() {
        // sample 0 exact, sample 1 off by 10 %: mean 5 %
        let t = [1.0, 2.0, 3.0, 4.0];
        let p = [1.0, 2.0, 3.3, 4.4];
        assert!((super::relative_l2(&p, &t, 2) - 0.05).abs() < 1e-6);
    }
}
