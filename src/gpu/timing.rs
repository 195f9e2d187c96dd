//! Timing of recorded GPU work: timestamp queries when the adapter has them, wall clock between
//! two syncs otherwise.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::context::Gpu;
use crate::error::{Error, Result};

/// How a duration was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TimingMethod {
    /// GPU timestamps written before and after the work.
    GpuTimestamps,
    /// Host wall clock between two syncs (includes submission and wait overhead).
    WallClock,
}

impl TimingMethod {
    pub fn name(self) -> &'static str {
        match self {
            TimingMethod::GpuTimestamps => "timestamps",
            TimingMethod::WallClock => "wall-clock",
        }
    }
}

impl Gpu {
    /// Runs `work` (which records kernels) and returns how long the GPU took for it.
    ///
    /// With `TIMESTAMP_QUERY`, empty compute passes that write a timestamp bracket the recorded
    /// work in the same submission; otherwise the queue is drained before and after and the wall
    /// clock is read. Set `force_wall_clock` to compare both.
    pub fn time<T>(
        &self,
        force_wall_clock: bool,
        work: impl FnOnce() -> Result<T>,
    ) -> Result<(T, Duration, TimingMethod)> {
        if force_wall_clock || !self.has_timestamps() {
            self.sync()?;
            let t0 = Instant::now();
            let out = work()?;
            self.sync()?;
            return Ok((out, t0.elapsed(), TimingMethod::WallClock));
        }
        let device = &self.inner.device;
        let (queries, resolve, readback) = self.guarded("creating timestamp queries", || {
            let queries = device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("enma timing"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
            let buffer = |label, usage| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: 16,
                    usage,
                    mapped_at_creation: false,
                })
            };
            let resolve =
                buffer("enma timing resolve", wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
            let readback = buffer("enma timing readback", wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
            (queries, resolve, readback)
        })?;
        let mark = |index: u32| -> Result<()> {
            let mut st = self.state()?;
            let enc = st.rec.encoder(device);
            drop(enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("enma timestamp"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &queries,
                    beginning_of_pass_write_index: Some(index),
                    end_of_pass_write_index: None,
                }),
            }));
            Ok(())
        };
        self.flush()?;
        mark(0)?;
        let out = work()?;
        mark(1)?;
        {
            let mut st = self.state()?;
            let enc = st.rec.encoder(device);
            enc.resolve_query_set(&queries, 0..2, &resolve, 0);
            enc.copy_buffer_to_buffer(&resolve, 0, &readback, 0, 16);
            self.submit_locked(&mut st)?;
        }
        let (tx, rx) = mpsc::channel();
        self.guarded("mapping timestamps", || {
            readback.map_async(wgpu::MapMode::Read, 0..16, move |r| {
                let _ = tx.send(r);
            })
        })?;
        self.wait_idle()?;
        rx.recv()
            .map_err(|_| Error::Readback("timestamp map callback never ran".into()))?
            .map_err(|e| Error::Readback(e.to_string()))?;
        let ticks: Vec<u64> = {
            let view = readback.get_mapped_range(0..16).map_err(|e| Error::Readback(e.to_string()))?;
            bytemuck::pod_collect_to_vec(&view[..])
        };
        readback.unmap();
        let period = self.inner.queue.get_timestamp_period() as f64;
        let ns = ticks[1].saturating_sub(ticks[0]) as f64 * period;
        Ok((out, Duration::from_nanos(ns as u64), TimingMethod::GpuTimestamps))
    }
}
