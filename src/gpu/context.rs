//! `Gpu`: the adapter, device and queue enma runs on, owned or borrowed from a host application.
//!
//! A `Gpu` is a cheap handle (`Clone` shares it). It holds the buffer pool, the pipeline cache
//! and the command recorder; every tensor keeps its `Gpu` alive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use super::encoder::Recorder;
use super::kernels::KernelCache;
use super::pool::{Pool, PoolStats};
use super::tune::{TuneSettings, Tuner};
use crate::error::{Error, Result};

/// Bytes of immediate data (push constants) every enma kernel may use. Vulkan guarantees 128.
pub const IMMEDIATE_BYTES: u32 = 128;

/// Features enma cannot run without.
pub fn required_features() -> wgpu::Features {
    wgpu::Features::IMMEDIATES
}

/// Features enma uses when the adapter has them.
pub fn optional_features() -> wgpu::Features {
    wgpu::Features::SHADER_F16 | wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP
}

/// The smallest limits enma's kernels need. A host device must have at least these.
pub fn required_limits() -> wgpu::Limits {
    wgpu::Limits {
        max_immediate_size: IMMEDIATE_BYTES,
        max_compute_invocations_per_workgroup: 256,
        max_compute_workgroup_size_x: 256,
        max_compute_workgroup_size_y: 256,
        max_compute_workgroup_storage_size: 16384,
        max_storage_buffers_per_shader_stage: 8,
        ..wgpu::Limits::downlevel_defaults()
    }
}

/// How to choose an adapter. Environment variables `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`
/// override the fields when set.
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// Backends to consider, e.g. `"vulkan"`, `"metal,dx12"`, `"gl"`. `None` = all.
    pub backends: Option<String>,
    /// Only adapters whose name contains this (case-insensitive).
    pub adapter_name: Option<String>,
    /// The autotuner (`None`: from `ENMA_TUNE` and the cache folder's variables).
    pub tune: Option<TuneSettings>,
}

/// What enma knows about the adapter it runs on (printed by `enma info`).
#[derive(Debug, Clone, Serialize)]
pub struct AdapterDesc {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub vendor: u32,
    pub device: u32,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    /// Optional features enma enabled on the device.
    pub features: Vec<String>,
    pub limits: LimitsDesc,
    /// Whether enma created the device (`false` when borrowed from a host).
    pub owned: bool,
}

/// The device limits that matter to enma's kernels.
#[derive(Debug, Clone, Serialize)]
pub struct LimitsDesc {
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_size_x: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_immediate_size: u32,
    pub min_storage_buffer_offset_alignment: u32,
}

impl LimitsDesc {
    fn from_wgpu(l: &wgpu::Limits) -> Self {
        LimitsDesc {
            max_buffer_size: l.max_buffer_size,
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroup_size_x: l.max_compute_workgroup_size_x,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            max_immediate_size: l.max_immediate_size,
            min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment,
        }
    }
}

/// A handle to the GPU enma runs on. Clones share the same device, pool and caches.
#[derive(Clone)]
pub struct Gpu {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) desc: AdapterDesc,
    pub(crate) features: wgpu::Features,
    pub(crate) limits: wgpu::Limits,
    pub(crate) state: Mutex<State>,
    pub(crate) kernels: Mutex<KernelCache>,
    pub(crate) tuner: Mutex<Tuner>,
    /// Set by the device-lost callback.
    lost: Arc<Mutex<Option<String>>>,
    /// Errors wgpu could not attribute to a scope (owned devices only).
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// Highest submission serial the GPU has finished.
    pub(crate) completed: Arc<AtomicU64>,
}

/// Mutable runtime state behind one lock: the pool and the recorder change together.
pub(crate) struct State {
    pub(crate) pool: Pool,
    pub(crate) rec: Recorder,
}

fn parse_backends(s: &str) -> Result<wgpu::Backends> {
    let mut b = wgpu::Backends::empty();
    for part in s.split(',').map(|p| p.trim().to_ascii_lowercase()).filter(|p| !p.is_empty()) {
        b |= match part.as_str() {
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "metal" | "mtl" => wgpu::Backends::METAL,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            "gl" | "gles" | "opengl" => wgpu::Backends::GL,
            "primary" => wgpu::Backends::PRIMARY,
            "all" => wgpu::Backends::all(),
            other => {
                return Err(Error::invalid(
                    "backend selection",
                    format!("unknown backend `{other}`; use vulkan, metal, dx12, gl or all"),
                ));
            }
        };
    }
    if b.is_empty() {
        return Err(Error::invalid("backend selection", "empty backend list"));
    }
    Ok(b)
}

fn type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn backend_rank(b: wgpu::Backend) -> u32 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    }
}

/// Which of enma's needs a device with these features and limits misses.
fn missing_requirements(features: wgpu::Features, limits: &wgpu::Limits) -> Vec<String> {
    let mut missing = Vec::new();
    let req = required_features();
    if !features.contains(req) {
        missing.push(format!("feature {:?}", req - features));
    }
    let need = required_limits();
    let checks: [(&str, u64, u64); 6] = [
        ("max_immediate_size", limits.max_immediate_size as u64, need.max_immediate_size as u64),
        (
            "max_compute_invocations_per_workgroup",
            limits.max_compute_invocations_per_workgroup as u64,
            need.max_compute_invocations_per_workgroup as u64,
        ),
        ("max_compute_workgroup_size_x", limits.max_compute_workgroup_size_x as u64, 256),
        ("max_compute_workgroup_size_y", limits.max_compute_workgroup_size_y as u64, 256),
        (
            "max_compute_workgroup_storage_size",
            limits.max_compute_workgroup_storage_size as u64,
            need.max_compute_workgroup_storage_size as u64,
        ),
        (
            "max_storage_buffers_per_shader_stage",
            limits.max_storage_buffers_per_shader_stage as u64,
            need.max_storage_buffers_per_shader_stage as u64,
        ),
    ];
    for (name, have, want) in checks {
        if have < want {
            missing.push(format!("limit {name} >= {want} (device has {have})"));
        }
    }
    missing
}

fn feature_names(f: wgpu::Features) -> Vec<String> {
    let mut v = Vec::new();
    for (flag, name) in [
        (wgpu::Features::IMMEDIATES, "IMMEDIATES"),
        (wgpu::Features::SHADER_F16, "SHADER_F16"),
        (wgpu::Features::TIMESTAMP_QUERY, "TIMESTAMP_QUERY"),
        (wgpu::Features::SUBGROUP, "SUBGROUP"),
    ] {
        if f.contains(flag) {
            v.push(name.to_string());
        }
    }
    v
}

/// One adapter as seen by [`Gpu::adapters`].
#[derive(Debug, Clone, Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    /// Whether enma can run on it.
    pub usable: bool,
    /// Why not, when it cannot.
    pub reason: Option<String>,
    /// Whether `Gpu::new` with the same options picks it.
    pub chosen: bool,
}

/// Adapters with the reason enma cannot use each (`None` = usable).
type Survey = Vec<(wgpu::Adapter, Option<String>)>;

/// Every adapter of the selected backends, best first, with the reason it cannot be used.
fn survey(options: &GpuOptions) -> Result<(wgpu::Backends, Survey)> {
    let env_backend = std::env::var("WGPU_BACKEND").ok().filter(|s| !s.trim().is_empty());
    let backends = match env_backend.as_deref().or(options.backends.as_deref()) {
        Some(s) => parse_backends(s)?,
        None => wgpu::Backends::all(),
    };
    let name_filter = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or(options.adapter_name.clone())
        .map(|s| s.to_ascii_lowercase());

    let mut inst_desc = wgpu::InstanceDescriptor::new_without_display_handle();
    inst_desc.backends = backends;
    inst_desc.flags = wgpu::InstanceFlags::empty().with_env();
    let instance = wgpu::Instance::new(inst_desc);
    let mut adapters: Survey = pollster::block_on(instance.enumerate_adapters(backends))
        .into_iter()
        .map(|a| {
            let info = a.get_info();
            let reason = match &name_filter {
                Some(f) if !info.name.to_ascii_lowercase().contains(f) => Some(format!("name does not match `{f}`")),
                _ => {
                    let missing = missing_requirements(a.features(), &a.limits());
                    (!missing.is_empty()).then(|| format!("lacks {}", missing.join(", ")))
                }
            };
            (a, reason)
        })
        .collect();
    adapters.sort_by_key(|(a, reason)| {
        let i = a.get_info();
        (reason.is_some(), type_rank(i.device_type), backend_rank(i.backend))
    });
    Ok((backends, adapters))
}

impl Gpu {
    /// Every adapter enma sees with `options`, best first, and whether it can use it.
    pub fn adapters(options: &GpuOptions) -> Result<Vec<AdapterSummary>> {
        let (_, surveyed) = survey(options)?;
        let mut chosen_done = false;
        Ok(surveyed
            .into_iter()
            .map(|(a, reason)| {
                let i = a.get_info();
                let chosen = reason.is_none() && !chosen_done;
                chosen_done |= chosen;
                AdapterSummary {
                    name: i.name,
                    backend: format!("{:?}", i.backend),
                    device_type: format!("{:?}", i.device_type),
                    driver: i.driver,
                    usable: reason.is_none(),
                    reason,
                    chosen,
                }
            })
            .collect())
    }

    /// Picks the best adapter (discrete > integrated > virtual > CPU; native backends before GL),
    /// honouring `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`, and creates a device with the adapter's
    /// real limits and the optional features enma can use.
    pub fn new(options: GpuOptions) -> Result<Gpu> {
        let (backends, surveyed) = survey(&options)?;
        let mut rejected = Vec::new();
        let mut adapter = None;
        for (a, reason) in surveyed {
            match reason {
                Some(r) => {
                    let i = a.get_info();
                    rejected.push(format!("{} ({:?}): {r}", i.name, i.backend));
                }
                None if adapter.is_none() => adapter = Some(a),
                None => {}
            }
        }
        let Some(adapter) = adapter else {
            let detail = if rejected.is_empty() {
                format!(" for backends {backends:?}")
            } else {
                format!(" that enma can use; adapters seen: {}", rejected.join("; "))
            };
            return Err(Error::NoAdapter { detail });
        };

        let info = adapter.get_info();
        let features = required_features() | (adapter.features() & optional_features());
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("enma"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::RequestDevice { adapter: info.name.clone(), message: e.to_string() })?;

        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        Ok(Self::build(device, queue, info, true, uncaptured, options.tune.unwrap_or_default()))
    }

    /// Wraps a device and queue that a host application created. The host keeps ownership (the
    /// handles are reference-counted clones); enma checks that the device has the features and
    /// limits it needs and lists whatever is missing.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Result<Gpu> {
        let missing = missing_requirements(device.features(), &device.limits());
        let info = device.adapter_info();
        if !missing.is_empty() {
            return Err(Error::DeviceUnsupported { adapter: info.name.clone(), missing });
        }
        Ok(Self::build(device, queue, info, false, Arc::new(Mutex::new(Vec::new())), TuneSettings::default()))
    }

    fn build(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        owned: bool,
        uncaptured: Arc<Mutex<Vec<String>>>,
        tune: TuneSettings,
    ) -> Gpu {
        let features = device.features();
        let limits = device.limits();
        let lost = Arc::new(Mutex::new(None));
        if owned {
            // A borrowed device keeps the host's own lost callback; there a loss surfaces as the
            // `Error::Gpu` of the next operation wgpu rejects.
            let lost_cb = lost.clone();
            device.set_device_lost_callback(move |reason, msg| {
                if let Ok(mut l) = lost_cb.lock() {
                    *l = Some(format!("{reason:?}: {msg}"));
                }
            });
        }
        let desc = AdapterDesc {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            vendor: info.vendor,
            device: info.device,
            subgroup_min_size: info.subgroup_min_size,
            subgroup_max_size: info.subgroup_max_size,
            features: feature_names(features),
            limits: LimitsDesc::from_wgpu(&limits),
            owned,
        };
        let pool = Pool::new(&limits);
        let tuner = Tuner::new(tune, &desc.name, &desc.backend, &desc.driver, &desc.driver_info);
        Gpu {
            inner: Arc::new(Inner {
                device,
                queue,
                desc,
                features,
                limits,
                state: Mutex::new(State { pool, rec: Recorder::new() }),
                kernels: Mutex::new(KernelCache::default()),
                tuner: Mutex::new(tuner),
                lost,
                uncaptured,
                completed: Arc::new(AtomicU64::new(0)),
            }),
        }
    }

    /// The adapter and device this `Gpu` runs on.
    pub fn adapter(&self) -> &AdapterDesc {
        &self.inner.desc
    }

    /// The underlying wgpu device, for hosts that want to record their own work.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The underlying wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// Whether the device can store tensors in f16.
    pub fn has_f16(&self) -> bool {
        self.inner.features.contains(wgpu::Features::SHADER_F16)
    }

    /// Whether kernels can be timed with GPU timestamps.
    pub fn has_timestamps(&self) -> bool {
        self.inner.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// The subgroup size when the device has subgroups of one fixed size.
    pub fn subgroup_size(&self) -> Option<u32> {
        let d = &self.inner.desc;
        (self.inner.features.contains(wgpu::Features::SUBGROUP) && d.subgroup_min_size == d.subgroup_max_size)
            .then_some(d.subgroup_min_size)
    }

    /// Whether the adapter is one of Mesa's llvmpipe-based drivers (lavapipe, llvmpipe through
    /// GL), which stop every loop of a shader invocation after 65,535 passes in all: kernels
    /// split their work to stay below that (see `ops::LOOP_BUDGET`).
    pub fn loop_capped(&self) -> bool {
        self.inner.desc.name.to_ascii_lowercase().contains("llvmpipe")
            || self.inner.desc.driver.to_ascii_lowercase().contains("llvmpipe")
    }

    /// Whether the adapter is a CPU implementation (lavapipe, WARP, SwiftShader).
    pub fn is_cpu(&self) -> bool {
        self.inner.desc.device_type == "Cpu"
    }

    /// Counters of the buffer pool.
    pub fn pool_stats(&self) -> PoolStats {
        self.state().map(|s| s.pool.stats()).unwrap_or_default()
    }

    /// Frees pooled buffers that no tensor uses (returns their bytes).
    pub fn trim_pool(&self) -> u64 {
        self.state().map(|mut s| s.pool.trim()).unwrap_or(0)
    }

    pub(crate) fn state(&self) -> Result<MutexGuard<'_, State>> {
        self.inner.state.lock().map_err(|_| Error::Gpu {
            context: "runtime state".into(),
            message: "a thread panicked while holding the GPU state".into(),
        })
    }

    /// Fails if the device was lost or wgpu reported an error outside a scope.
    pub(crate) fn check_health(&self) -> Result<()> {
        if let Some(reason) = self.inner.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(Error::DeviceLost { reason });
        }
        if let Ok(mut v) = self.inner.uncaptured.lock() {
            if !v.is_empty() {
                let message = v.join("\n");
                v.clear();
                return Err(Error::Gpu { context: "earlier GPU work".into(), message });
            }
        }
        Ok(())
    }

    /// Runs `f` inside validation, out-of-memory and internal error scopes and turns whatever
    /// wgpu reports into an `Error` naming `context`.
    pub(crate) fn scoped<T>(&self, context: &str, f: impl FnOnce() -> T) -> Result<T> {
        let d = &self.inner.device;
        let v = d.push_error_scope(wgpu::ErrorFilter::Validation);
        let m = d.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let i = d.push_error_scope(wgpu::ErrorFilter::Internal);
        let out = f();
        let errs = [pollster::block_on(i.pop()), pollster::block_on(m.pop()), pollster::block_on(v.pop())];
        let msgs: Vec<String> = errs.into_iter().flatten().map(|e| error_chain(&e)).collect();
        if !msgs.is_empty() {
            self.check_health()?;
            return Err(Error::Gpu { context: context.to_string(), message: msgs.join("\n") });
        }
        Ok(out)
    }

    /// `scoped` on a borrowed device, whose uncaptured-error handler belongs to the host (and
    /// wgpu's default one panics); on an owned device errors reach enma's own handler and the
    /// next `check_health` reports them, so the hot path skips the scopes.
    pub(crate) fn guarded<T>(&self, context: &str, f: impl FnOnce() -> T) -> Result<T> {
        if self.inner.desc.owned { Ok(f()) } else { self.scoped(context, f) }
    }

    /// Serial of the newest submission the GPU has finished.
    pub(crate) fn completed_serial(&self) -> u64 {
        self.inner.completed.load(Ordering::Acquire)
    }
}

/// An error and all its sources, one per line (wgpu puts the useful part in the sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let line = s.to_string();
        if !out.contains(&line) {
            out.push_str("\n  caused by: ");
            out.push_str(&line);
        }
        src = s.source();
    }
    out
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({} on {}, {})", self.inner.desc.name, self.inner.desc.backend, self.inner.desc.device_type)
    }
}
