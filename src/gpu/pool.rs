//! Buffer pool: size classes derived from the device limits, release-after-submit, a staging
//! pool for readback, and counters.
//!
//! A buffer released by a tensor goes back to the pool tagged with the serial of the last
//! submission that used it. It is handed out again only once the GPU has finished that
//! submission, so an upload into a recycled buffer can never overtake a pending read of its old
//! contents.

use serde::Serialize;

use crate::error::{Error, Result};

/// Smallest buffer the pool creates; also the alignment of every class.
const MIN_CLASS: u64 = 256;
/// Size classes per doubling (1, 1.25, 1.5, 1.75 × 2^k): at most 25 % waste.
const STEPS_PER_OCTAVE: u64 = 4;

/// Counters of the buffer pool (see `Gpu::pool_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    /// Storage buffers created since the `Gpu` was made.
    pub buffers_created: u64,
    /// Allocations served by a recycled buffer.
    pub reuse_hits: u64,
    /// Bytes of pooled buffers currently held by tensors.
    pub bytes_live: u64,
    /// Highest `bytes_live` seen.
    pub bytes_high_water: u64,
    /// Bytes of buffers kept by the pool for reuse (free or waiting for their submission).
    pub bytes_cached: u64,
    /// Readback staging buffers created.
    pub staging_created: u64,
}

/// A buffer owned by the pool's client (a tensor's storage).
#[derive(Debug)]
pub(crate) struct PooledBuffer {
    pub(crate) buffer: wgpu::Buffer,
    /// Size of the buffer (its class), in bytes.
    pub(crate) size: u64,
    class: usize,
}

pub(crate) struct Pool {
    classes: Vec<u64>,
    max_binding: u64,
    free: Vec<Vec<PooledBuffer>>,
    /// Released buffers whose last submission may still be running: (serial, buffer).
    pending: Vec<(u64, PooledBuffer)>,
    staging_free: Vec<Vec<wgpu::Buffer>>,
    stats: PoolStats,
}

/// The classes from `MIN_CLASS` up to `max` (the last one is exactly `max`).
fn size_classes(max: u64) -> Vec<u64> {
    let mut classes = Vec::new();
    let mut octave = MIN_CLASS;
    'outer: loop {
        for step in 0..STEPS_PER_OCTAVE {
            let size = octave + octave * step / STEPS_PER_OCTAVE;
            let size = size.div_ceil(MIN_CLASS) * MIN_CLASS;
            if size >= max {
                classes.push(max);
                break 'outer;
            }
            if classes.last() != Some(&size) {
                classes.push(size);
            }
        }
        octave *= 2;
    }
    classes
}

impl Pool {
    pub(crate) fn new(limits: &wgpu::Limits) -> Pool {
        // A tensor must be bindable as one storage binding.
        let max_binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let max_binding = max_binding / 16 * 16;
        let classes = size_classes(max_binding);
        let n = classes.len();
        Pool {
            classes,
            max_binding,
            free: (0..n).map(|_| Vec::new()).collect(),
            pending: Vec::new(),
            staging_free: (0..n).map(|_| Vec::new()).collect(),
            stats: PoolStats::default(),
        }
    }

    fn class_of(&self, bytes: u64, what: &str) -> Result<usize> {
        if bytes > self.max_binding {
            return Err(Error::TooLarge {
                what: what.to_string(),
                bytes,
                limit: self.max_binding,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        Ok(self.classes.partition_point(|&c| c < bytes.max(1)))
    }

    /// Moves released buffers whose submission has finished into the free lists.
    pub(crate) fn recycle(&mut self, completed: u64) {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].0 <= completed {
                let (_, buf) = self.pending.swap_remove(i);
                self.free[buf.class].push(buf);
            } else {
                i += 1;
            }
        }
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether an allocation of `bytes` would be served without creating a buffer.
    pub(crate) fn can_serve(&self, bytes: u64) -> bool {
        self.class_of(bytes, "").map(|c| !self.free[c].is_empty()).unwrap_or(false)
    }

    /// A storage buffer of at least `bytes`, recycled when possible.
    pub(crate) fn acquire(&mut self, device: &wgpu::Device, bytes: u64, what: &str) -> Result<PooledBuffer> {
        let class = self.class_of(bytes, what)?;
        let buf = if let Some(buf) = self.free[class].pop() {
            self.stats.reuse_hits += 1;
            self.stats.bytes_cached -= buf.size;
            buf
        } else {
            let size = self.classes[class];
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("enma tensor"),
                size,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.stats.buffers_created += 1;
            PooledBuffer { buffer, size, class }
        };
        self.stats.bytes_live += buf.size;
        self.stats.bytes_high_water = self.stats.bytes_high_water.max(self.stats.bytes_live);
        Ok(buf)
    }

    /// Returns a buffer last used by submission `last_use`.
    pub(crate) fn release(&mut self, buf: PooledBuffer, last_use: u64, completed: u64) {
        self.stats.bytes_live -= buf.size;
        self.stats.bytes_cached += buf.size;
        if last_use <= completed {
            self.free[buf.class].push(buf);
        } else {
            self.pending.push((last_use, buf));
        }
    }

    /// A MAP_READ staging buffer of at least `bytes`.
    pub(crate) fn acquire_staging(&mut self, device: &wgpu::Device, bytes: u64) -> (wgpu::Buffer, usize) {
        let class = self.classes.partition_point(|&c| c < bytes.max(1)).min(self.classes.len() - 1);
        if let Some(b) = self.staging_free[class].pop() {
            return (b, class);
        }
        self.stats.staging_created += 1;
        let size = self.classes[class].max(bytes.div_ceil(MIN_CLASS) * MIN_CLASS);
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("enma staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        (buffer, class)
    }

    pub(crate) fn release_staging(&mut self, buffer: wgpu::Buffer, class: usize) {
        self.staging_free[class].push(buffer);
    }

    /// Destroys every cached buffer; returns the bytes freed.
    pub(crate) fn trim(&mut self) -> u64 {
        let mut freed = 0;
        for list in &mut self.free {
            for b in list.drain(..) {
                freed += b.size;
                b.buffer.destroy();
            }
        }
        for list in &mut self.staging_free {
            list.clear();
        }
        self.stats.bytes_cached -= freed;
        freed
    }

    pub(crate) fn stats(&self) -> PoolStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_aligned_increasing_and_bounded() {
        let max = 128 << 20;
        let c = size_classes(max);
        assert_eq!(c[0], MIN_CLASS);
        assert_eq!(*c.last().unwrap(), max);
        for w in c.windows(2) {
            assert!(w[0] < w[1]);
            assert_eq!(w[0] % MIN_CLASS, 0);
            // waste of rounding up is at most 25 % (plus alignment for tiny sizes)
            assert!(w[1] as f64 <= (w[0] as f64 * 1.25).max((w[0] + MIN_CLASS) as f64));
        }
    }
}
