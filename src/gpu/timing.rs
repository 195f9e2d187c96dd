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

/// Dispatches timed per submission in profiling mode.
pub(crate) const PROFILE_CAPACITY: usize = 1024;

/// Per-kernel GPU time, collected when profiling is on (`Gpu::set_profiling`).
pub(crate) struct Profiler {
    pub(crate) queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Kernels recorded in the current submission, in query order.
    pub(crate) pending: Vec<String>,
    totals: std::collections::BTreeMap<String, (u64, f64)>,
    /// Keep the override constants in kernel names (`ENMA_PROFILE_FULL`, read once).
    full_labels: bool,
}

/// One kernel's share of a profile.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileEntry {
    /// `shader::entry` (override constants folded together).
    pub kernel: String,
    pub dispatches: u64,
    pub total_ms: f64,
}

impl ProfileEntry {
    /// A profile as text: `title: total ms`, then one line per kernel (largest first, at most
    /// `most`) with its time, share and dispatches.
    pub fn table(rows: &[ProfileEntry], title: &str, most: usize) -> String {
        let total: f64 = rows.iter().map(|r| r.total_ms).sum();
        let mut s = format!("GPU time per kernel, {title}: {total:.1} ms\n");
        for r in rows.iter().take(most) {
            s += &format!(
                "{:>9.2} ms {:>5.1} % {:>6} dispatches  {}\n",
                r.total_ms,
                100.0 * r.total_ms / total,
                r.dispatches,
                r.kernel
            );
        }
        s
    }
}

impl Profiler {
    fn new(device: &wgpu::Device) -> Profiler {
        let bytes = (PROFILE_CAPACITY * 16) as u64;
        Profiler {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("enma profile"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * PROFILE_CAPACITY as u32,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("enma profile resolve"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("enma profile readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            pending: Vec::new(),
            totals: Default::default(),
            full_labels: std::env::var("ENMA_PROFILE_FULL").is_ok(),
        }
    }

    /// Notes the next timed dispatch of the pipeline labelled `label`.
    pub(crate) fn push(&mut self, label: &str) {
        let name = if self.full_labels { label } else { label.split('[').next().unwrap_or(label) };
        self.pending.push(name.to_string());
    }

    /// Records the resolve of this submission's timestamps (before the encoder is finished).
    pub(crate) fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        let n = self.pending.len() as u32;
        if n > 0 {
            encoder.resolve_query_set(&self.queries, 0..2 * n, &self.resolve, 0);
            encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, 16 * n as u64);
        }
    }

    /// After the submission: waits for it, reads the timestamps and adds them to the totals.
    pub(crate) fn collect(&mut self, device: &wgpu::Device, period_ns: f64) -> Result<()> {
        let n = self.pending.len();
        if n == 0 {
            return Ok(());
        }
        let (tx, rx) = mpsc::channel();
        self.readback.map_async(wgpu::MapMode::Read, 0..16 * n as u64, move |r| {
            let _ = tx.send(r);
        });
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu { context: "profiling".into(), message: e.to_string() })?;
        rx.recv()
            .map_err(|_| Error::Readback("profile map callback never ran".into()))?
            .map_err(|e| Error::Readback(e.to_string()))?;
        let ticks: Vec<u64> = {
            let view = self.readback.get_mapped_range(0..16 * n as u64).map_err(|e| Error::Readback(e.to_string()))?;
            bytemuck::pod_collect_to_vec(&view[..])
        };
        self.readback.unmap();
        for (i, label) in self.pending.drain(..).enumerate() {
            let ns = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period_ns;
            let e = self.totals.entry(label).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += ns;
        }
        Ok(())
    }
}

impl Gpu {
    /// Turns per-kernel GPU timing on or off. While on, every dispatch gets its own compute pass
    /// with timestamps and every submission waits for the GPU: slow, for finding hot kernels.
    /// Needs the adapter feature `TIMESTAMP_QUERY`.
    pub fn set_profiling(&self, on: bool) -> Result<()> {
        if on && !self.has_timestamps() {
            return Err(Error::invalid(
                "set_profiling",
                format!("the adapter `{}` has no TIMESTAMP_QUERY", self.adapter().name),
            ));
        }
        self.flush()?;
        let mut st = self.state()?;
        st.rec.profiler = if on { Some(Profiler::new(&self.inner.device)) } else { None };
        Ok(())
    }

    /// GPU time per kernel since profiling was turned on, largest first (waits for the GPU).
    pub fn profile(&self) -> Result<Vec<ProfileEntry>> {
        self.sync()?;
        let st = self.state()?;
        let mut rows: Vec<ProfileEntry> = st
            .rec
            .profiler
            .as_ref()
            .map(|p| {
                p.totals
                    .iter()
                    .map(|(k, &(n, ns))| ProfileEntry { kernel: k.clone(), dispatches: n, total_ms: ns / 1e6 })
                    .collect()
            })
            .unwrap_or_default();
        rows.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
        Ok(rows)
    }
}
