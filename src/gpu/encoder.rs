//! Recording of dispatches into one compute pass and one command encoder per submission;
//! uploads, readback, `flush` and `sync`.
//!
//! Kernels are not submitted one by one: dispatches accumulate in an open compute pass until
//! something needs the queue (a readback, an upload into a tensor pending work still uses, an
//! explicit `flush`/`sync`, or `AUTO_FLUSH` dispatches).

use std::sync::atomic::Ordering;
use std::sync::mpsc;

use serde::Serialize;

use super::context::{Gpu, State};
use super::kernels::Pipeline;
use super::pool::PooledBuffer;
use super::tensor::{Storage, Tensor};
use crate::error::{Error, Result};

/// Dispatches recorded before the recorder submits on its own.
const AUTO_FLUSH: u32 = 1024;

/// Counters of the command recorder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RuntimeStats {
    /// Kernel dispatches recorded.
    pub dispatches: u64,
    /// Queue submissions made.
    pub submissions: u64,
}

pub(crate) struct Recorder {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    /// Serial of the submission being recorded (the next one to be submitted).
    pub(crate) serial: u64,
    in_flight: u32,
    pub(crate) stats: RuntimeStats,
    pub(crate) profiler: Option<super::timing::Profiler>,
}

impl Recorder {
    pub(crate) fn new() -> Self {
        Recorder { encoder: None, pass: None, serial: 1, in_flight: 0, stats: RuntimeStats::default(), profiler: None }
    }

    /// The open command encoder (the compute pass, if any, is ended first).
    pub(crate) fn encoder(&mut self, device: &wgpu::Device) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        self.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("enma") })
        })
    }

    fn pass(&mut self, device: &wgpu::Device) -> &mut wgpu::ComputePass<'static> {
        if self.pass.is_none() {
            let enc = self.encoder(device);
            let pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("enma"), timestamp_writes: None });
            self.pass = Some(pass.forget_lifetime());
        }
        self.pass.as_mut().expect("pass just created")
    }

    pub(crate) fn has_work(&self) -> bool {
        self.encoder.is_some()
    }
}

impl Gpu {
    /// A pooled storage buffer of at least `bytes` (for a new tensor).
    pub(crate) fn acquire_buffer(&self, bytes: u64, what: &str) -> Result<PooledBuffer> {
        self.check_health()?;
        let mut st = self.state()?;
        let completed = self.completed_serial();
        st.pool.recycle(completed);
        if !st.pool.can_serve(bytes) && st.pool.has_pending() {
            // Let finished submissions report in before creating a new buffer.
            let _ = self.inner.device.poll(wgpu::PollType::Poll);
            st.pool.recycle(self.completed_serial());
        }
        if st.pool.can_serve(bytes) {
            return st.pool.acquire(&self.inner.device, bytes, what);
        }
        let device = self.inner.device.clone();
        self.scoped(&format!("allocating {what} ({bytes} bytes)"), || st.pool.acquire(&device, bytes, what))?
    }

    /// Records one dispatch of `pipeline` with `bindings` (binding index, tensor) and immediate
    /// data `imm` over `groups` workgroups.
    pub(crate) fn dispatch(
        &self,
        pipeline: &Pipeline,
        bindings: &[(u32, &Tensor)],
        imm: &[u8],
        groups: [u32; 3],
    ) -> Result<()> {
        self.check_health()?;
        let max = self.inner.limits.max_compute_workgroups_per_dimension;
        if let Some(&g) = groups.iter().find(|&&g| g > max) {
            return Err(Error::TooLarge {
                what: format!("kernel {} ({groups:?} workgroups)", pipeline.label),
                bytes: g as u64,
                limit: max as u64,
                limit_name: "max_compute_workgroups_per_dimension",
            });
        }
        if groups.contains(&0) {
            return Ok(());
        }
        for (_, t) in bindings {
            if !std::sync::Arc::ptr_eq(&t.gpu().inner, &self.inner) {
                return Err(Error::invalid(&pipeline.label, "a tensor belongs to another Gpu"));
            }
        }
        let entries: Vec<wgpu::BindGroupEntry> = bindings
            .iter()
            .map(|(b, t)| wgpu::BindGroupEntry {
                binding: *b,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: t.storage.buffer(),
                    offset: t.offset,
                    size: wgpu::BufferSize::new(t.binding_size()),
                }),
            })
            .collect();
        let bind_group = self.guarded(&format!("binding the tensors of {}", pipeline.label), || {
            self.inner.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.layout,
                entries: &entries,
            })
        })?;
        let mut st = self.state()?;
        if st.rec.profiler.as_ref().is_some_and(|p| p.pending.len() >= super::timing::PROFILE_CAPACITY) {
            self.submit_locked(&mut st)?;
        }
        let serial = st.rec.serial;
        if let Some(mut prof) = st.rec.profiler.take() {
            // profiling: one pass per dispatch, with a timestamp at each end
            let i = prof.pending.len() as u32;
            {
                let enc = st.rec.encoder(&self.inner.device);
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("enma profiled"),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &prof.queries,
                        beginning_of_pass_write_index: Some(2 * i),
                        end_of_pass_write_index: Some(2 * i + 1),
                    }),
                });
                pass.set_pipeline(&pipeline.pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                if !imm.is_empty() {
                    pass.set_immediates(0, imm);
                }
                pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
            }
            prof.push(&pipeline.label);
            st.rec.profiler = Some(prof);
        } else {
            let pass = st.rec.pass(&self.inner.device);
            pass.set_pipeline(&pipeline.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            if !imm.is_empty() {
                pass.set_immediates(0, imm);
            }
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        for (_, t) in bindings {
            t.storage.mark_used(serial);
        }
        st.rec.stats.dispatches += 1;
        st.rec.in_flight += 1;
        if st.rec.in_flight >= AUTO_FLUSH {
            self.submit_locked(&mut st)?;
        }
        Ok(())
    }

    /// Submits everything recorded so far (returns the serial of that submission).
    pub(crate) fn submit_locked(&self, st: &mut State) -> Result<u64> {
        st.rec.pass = None;
        let Some(mut encoder) = st.rec.encoder.take() else {
            return Ok(st.rec.serial - 1);
        };
        if let Some(p) = &st.rec.profiler {
            p.resolve(&mut encoder);
        }
        let serial = st.rec.serial;
        st.rec.serial += 1;
        st.rec.in_flight = 0;
        st.rec.stats.submissions += 1;
        let queue = &self.inner.queue;
        self.scoped("submitting recorded kernels", || {
            queue.submit([encoder.finish()]);
        })?;
        let done = self.inner.completed.clone();
        queue.on_submitted_work_done(move || {
            done.fetch_max(serial, Ordering::AcqRel);
        });
        if let Some(p) = &mut st.rec.profiler {
            p.collect(&self.inner.device, queue.get_timestamp_period() as f64)?;
        }
        Ok(serial)
    }

    /// Submits recorded work to the queue without waiting for it.
    pub fn flush(&self) -> Result<()> {
        self.check_health()?;
        let mut st = self.state()?;
        self.submit_locked(&mut st)?;
        Ok(())
    }

    /// Submits recorded work and waits until the GPU has finished all of it.
    pub fn sync(&self) -> Result<()> {
        self.flush()?;
        self.wait_idle()
    }

    pub(crate) fn wait_idle(&self) -> Result<()> {
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu { context: "waiting for the GPU".into(), message: e.to_string() })?;
        self.check_health()?;
        if let Ok(mut st) = self.state() {
            st.pool.recycle(self.completed_serial());
        }
        Ok(())
    }

    /// Counters of recorded dispatches and submissions.
    pub fn runtime_stats(&self) -> RuntimeStats {
        self.state().map(|s| s.rec.stats).unwrap_or_default()
    }

    /// Uploads `bytes` at byte `offset` of `storage`, after any recorded work that uses it.
    pub(crate) fn write_storage(&self, storage: &Storage, offset: u64, bytes: &[u8]) -> Result<()> {
        self.check_health()?;
        let mut st = self.state()?;
        // `write_buffer` runs before the next submission's commands: submit pending uses first.
        if storage.last_use.load(Ordering::Acquire) >= st.rec.serial {
            self.submit_locked(&mut st)?;
        }
        let serial = st.rec.serial;
        let queue = &self.inner.queue;
        let whole = bytes.len() / 4 * 4;
        self.guarded("uploading a tensor", || {
            queue.write_buffer(storage.buffer(), offset, &bytes[..whole]);
            if whole < bytes.len() {
                let mut tail = [0u8; 4];
                tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
                queue.write_buffer(storage.buffer(), offset + whole as u64, &tail);
            }
        })?;
        storage.mark_used(serial);
        // Keep the data out of the staging area of later writes: it belongs to this serial.
        if !st.rec.has_work() {
            st.rec.encoder(&self.inner.device);
        }
        Ok(())
    }

    /// Downloads `len` bytes (rounded up to 4) at byte `offset` of `storage`. Waits for
    /// pending work.
    pub(crate) fn read_storage(&self, storage: &Storage, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.check_health()?;
        let bytes = len.div_ceil(4) * 4;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let (staging, class) = {
            let mut st = self.state()?;
            let (staging, class) = st.pool.acquire_staging(&self.inner.device, bytes);
            let serial = st.rec.serial;
            st.rec.encoder(&self.inner.device).copy_buffer_to_buffer(storage.buffer(), offset, &staging, 0, bytes);
            storage.mark_used(serial);
            self.submit_locked(&mut st)?;
            (staging, class)
        };
        let (tx, rx) = mpsc::channel();
        self.guarded("mapping a readback buffer", || {
            staging.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
                let _ = tx.send(r);
            })
        })?;
        self.wait_idle()?;
        rx.recv()
            .map_err(|_| Error::Readback("the map callback never ran".into()))?
            .map_err(|e| Error::Readback(e.to_string()))?;
        let out = {
            let view = staging.get_mapped_range(0..bytes).map_err(|e| Error::Readback(e.to_string()))?;
            view.to_vec()
        };
        staging.unmap();
        self.state()?.pool.release_staging(staging, class);
        Ok(out)
    }
}
