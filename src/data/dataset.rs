//! The dataset pipeline: subsampling, per-channel normalisation from the training split,
//! batches of trajectories, irregular point subsets and context trajectories.

use serde::{Deserialize, Serialize};

use super::hdf5::Trajectories;
use crate::error::{Error, Result};
use crate::ops::random::Philox;

/// Per-channel z-score statistics (saved with a model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// Statistics of every value of each channel (f64 accumulation).
    pub fn fit(tr: &Trajectories) -> Normalization {
        let c = tr.channels();
        let per: usize = tr.spatial().iter().product();
        let (mut sum, mut sq, mut cnt) = (vec![0f64; c], vec![0f64; c], vec![0f64; c]);
        for (i, v) in tr.data.iter().enumerate() {
            let ch = (i / per) % c;
            sum[ch] += *v as f64;
            sq[ch] += (*v as f64).powi(2);
            cnt[ch] += 1.0;
        }
        let mean: Vec<f64> = (0..c).map(|k| sum[k] / cnt[k].max(1.0)).collect();
        let std =
            (0..c).map(|k| ((sq[k] / cnt[k].max(1.0) - mean[k].powi(2)).max(0.0).sqrt()).max(1e-8) as f32).collect();
        Normalization { mean: mean.into_iter().map(|m| m as f32).collect(), std }
    }

    /// (x − mean) / std in place.
    pub fn apply(&self, tr: &mut Trajectories) -> Result<()> {
        self.map(tr, |v, mean, std| (v - mean) / std)
    }

    /// x · std + mean in place.
    pub fn invert(&self, tr: &mut Trajectories) -> Result<()> {
        self.map(tr, |v, mean, std| v * std + mean)
    }

    /// Applies `f(value, mean, std)` of each value's channel.
    fn map(&self, tr: &mut Trajectories, f: impl Fn(f32, f32, f32) -> f32) -> Result<()> {
        self.check(tr)?;
        let per: usize = tr.spatial().iter().product();
        let c = tr.channels();
        for (i, v) in tr.data.iter_mut().enumerate() {
            let ch = (i / per) % c;
            *v = f(*v, self.mean[ch], self.std[ch]);
        }
        Ok(())
    }

    fn check(&self, tr: &Trajectories) -> Result<()> {
        if self.mean.len() != tr.channels() {
            return Err(Error::invalid(
                "normalization",
                format!("statistics of {} channels for data of {}", self.mean.len(), tr.channels()),
            ));
        }
        Ok(())
    }
}

/// Every `time_step`-th frame and every `space_step`-th point along each spatial axis.
pub fn subsample(tr: &Trajectories, time_step: usize, space_step: usize) -> Result<Trajectories> {
    if time_step == 0 || space_step == 0 {
        return Err(Error::invalid("subsample", "steps must be at least 1"));
    }
    let (n, t, c) = (tr.n(), tr.frames(), tr.channels());
    let sp = tr.spatial().to_vec();
    let nt = t.div_ceil(time_step);
    let nsp: Vec<usize> = sp.iter().map(|d| d.div_ceil(space_step)).collect();
    let per: usize = sp.iter().product();
    let mut data = Vec::with_capacity(n * nt * c * nsp.iter().product::<usize>());
    for i in 0..n {
        for ti in (0..t).step_by(time_step) {
            for ci in 0..c {
                let base = ((i * t + ti) * c + ci) * per;
                match sp.len() {
                    1 => data.extend((0..sp[0]).step_by(space_step).map(|x| tr.data[base + x])),
                    2 => {
                        for y in (0..sp[0]).step_by(space_step) {
                            data.extend((0..sp[1]).step_by(space_step).map(|x| tr.data[base + y * sp[1] + x]));
                        }
                    }
                    d => return Err(Error::invalid("subsample", format!("{d} spatial axes are not supported"))),
                }
            }
        }
    }
    let mut shape = vec![n, nt, c];
    shape.extend(nsp);
    Ok(Trajectories { shape, data, ..tr.clone() })
}

/// Coordinates of every grid point, normalised to [0, 1) per axis (`[points, dims]`).
pub fn grid_coords(spatial: &[usize]) -> Vec<f32> {
    match spatial {
        [x] => (0..*x).map(|i| i as f32 / *x as f32).collect(),
        [h, w] => (0..h * w).flat_map(|i| [(i / w) as f32 / *h as f32, (i % w) as f32 / *w as f32]).collect(),
        _ => Vec::new(),
    }
}

/// Shuffled batches of trajectory indices for one epoch (deterministic in (seed, epoch)); the
/// last partial batch is dropped when `drop_last`.
pub fn batches(n: usize, batch: usize, seed: u64, epoch: u64, drop_last: bool) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = Philox::new(seed, 0x5EED_0000 + epoch);
    for i in (1..n).rev() {
        let j = (rng.next_u32() as usize) % (i + 1);
        idx.swap(i, j);
    }
    idx.chunks(batch.max(1)).filter(|c| !drop_last || c.len() == batch).map(|c| c.to_vec()).collect()
}

/// Values of trajectories `idx`, stacked `[B, T, C, spatial..]`.
pub fn gather(tr: &Trajectories, idx: &[usize]) -> Result<Vec<f32>> {
    let s = tr.stride();
    let mut out = Vec::with_capacity(idx.len() * s);
    for &i in idx {
        if i >= tr.n() {
            return Err(Error::invalid("batch", format!("trajectory {i} of {}", tr.n())));
        }
        out.extend_from_slice(tr.trajectory(i));
    }
    Ok(out)
}

/// A random subset of `round(ratio · points)` grid points (at least one), sorted: the input
/// positions of an irregular-grid sample.
pub fn random_points(points: usize, ratio: f32, rng: &mut Philox) -> Result<Vec<u32>> {
    if !(ratio > 0.0 && ratio <= 1.0) {
        return Err(Error::invalid("random_points", format!("ratio {ratio} must be in (0, 1]")));
    }
    let k = ((ratio as f64 * points as f64).round() as usize).clamp(1, points.max(1));
    let mut idx: Vec<u32> = (0..points as u32).collect();
    for i in 0..k {
        let j = i + (rng.next_u32() as usize) % (points - i);
        idx.swap(i, j);
    }
    let mut sel = idx[..k].to_vec();
    sel.sort_unstable();
    Ok(sel)
}

/// Another trajectory of the same environment as `i` (None when it is alone).
pub fn context_for(tr: &Trajectories, i: usize, rng: &mut Philox) -> Option<usize> {
    let env = *tr.env.get(i)?;
    let others: Vec<usize> = (0..tr.n()).filter(|&j| j != i && tr.env[j] == env).collect();
    if others.is_empty() {
        return None;
    }
    Some(others[(rng.next_u32() as usize) % others.len()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn toy() -> Trajectories {
        // 20 trajectories (2 envs), 4 frames, 2 channels, 6 points
        let shape = vec![20, 4, 2, 6];
        let n: usize = shape.iter().product();
        Trajectories {
            data: (0..n).map(|i| ((i % 2 * 7) as f32) + (i / 48) as f32 * 0.1 + ((i / 6) % 2) as f32 * 3.0).collect(),
            shape,
            params: BTreeMap::new(),
            env: (0..20).map(|i| i / 10).collect(),
            seed: None,
        }
    }

    #[test]
    fn normalisation_round_trips_and_standardises_each_channel() {
        let mut tr = toy();
        let orig = tr.clone();
        let stats = Normalization::fit(&tr);
        stats.apply(&mut tr).unwrap();
        let again = Normalization::fit(&tr);
        for k in 0..2 {
            assert!(again.mean[k].abs() < 1e-5 && (again.std[k] - 1.0).abs() < 1e-4, "{again:?}");
        }
        stats.invert(&mut tr).unwrap();
        for (a, b) in tr.data.iter().zip(&orig.data) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn subsampling_keeps_every_kth_frame_and_point() {
        let tr = toy();
        let s = subsample(&tr, 2, 3).unwrap();
        assert_eq!(s.shape, vec![20, 2, 2, 2]);
        // trajectory 1, frame 2 (kept as 1), channel 1, point 3 (kept as 1)
        assert_eq!(s.data[((2 + 1) * 2 + 1) * 2 + 1], tr.data[((4 + 2) * 2 + 1) * 6 + 3]);
    }

    #[test]
    fn batches_points_and_contexts() {
        let b = batches(25, 8, 1, 0, true);
        assert_eq!(b.len(), 3);
        let mut all: Vec<usize> = batches(25, 8, 1, 0, false).concat();
        all.sort();
        assert_eq!(all, (0..25).collect::<Vec<_>>());
        assert_ne!(batches(25, 8, 1, 0, false), batches(25, 8, 1, 1, false), "epochs reshuffle");
        let mut rng = Philox::new(3, 0);
        let p = random_points(128, 0.2, &mut rng).unwrap();
        assert_eq!(p.len(), 26);
        assert!(p.windows(2).all(|w| w[0] < w[1]));
        assert!(random_points(10, 0.0, &mut rng).is_err());
        let tr = toy();
        for i in 0..20 {
            let c = context_for(&tr, i, &mut rng).unwrap();
            assert!(c != i && tr.env[c] == tr.env[i]);
        }
        assert_eq!(grid_coords(&[2, 2]), [0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.5, 0.5]);
    }
}
