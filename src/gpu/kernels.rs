//! Shader registry and pipeline cache.
//!
//! Every WGSL file in `shaders/` is compiled into the binary through [`ALL_SHADERS`], some with
//! a part of `shaders/parts/` (functions that several shaders share) appended. Before a
//! shader reaches wgpu it is parsed and validated by naga, so a broken shader is reported with
//! its file, line and column. Pipelines are cached by (shader, entry point, override constants).

use std::collections::HashMap;
use std::sync::Arc;

use super::context::Gpu;
use crate::error::{Error, Result};

/// A WGSL source compiled into the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shader {
    /// File name under `shaders/`.
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! shader {
    ($stem:literal) => {
        Shader {
            name: concat!($stem, ".wgsl"),
            source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $stem, ".wgsl")),
        }
    };
    // a shader with parts from `shaders/parts/` appended (after it, so that naga's line
    // numbers still point into the shader's own file)
    ($stem:literal $(+ $part:literal)+) => {
        Shader {
            name: concat!($stem, ".wgsl"),
            source: concat!(
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $stem, ".wgsl")),
                $(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/parts/", $part, ".wgsl"))),+
            ),
        }
    };
}

pub const FILL: Shader = shader!("fill");
pub const CAST: Shader = shader!("cast");
pub const UNARY: Shader = shader!("unary");
pub const BINARY: Shader = shader!("binary");
pub const REDUCE: Shader = shader!("reduce");
pub const MATMUL: Shader = shader!("matmul");
pub const MATMUL_SUBGROUP: Shader = shader!("matmul_subgroup" + "subgroup_share");
pub const RANDOM: Shader = shader!("random");
pub const LAYOUT: Shader = shader!("layout");
pub const ADAMW: Shader = shader!("adamw");
pub const CLIP: Shader = shader!("clip");
pub const SOFTMAX: Shader = shader!("softmax");
pub const NORM: Shader = shader!("norm");
pub const SWIGLU: Shader = shader!("swiglu");
pub const GATHER: Shader = shader!("gather");
pub const POSENC: Shader = shader!("posenc");
pub const CROSS_ATTENTION: Shader = shader!("cross_attention");
pub const CONV_CAUSAL: Shader = shader!("conv_causal");
pub const CONV_CAUSAL_SUBGROUP: Shader = shader!("conv_causal_subgroup" + "conv_taps" + "subgroup_share");
pub const CONV_CAUSAL_TILED: Shader = shader!("conv_causal_tiled" + "conv_taps");
pub const FLASH_ATTENTION: Shader = shader!("flash_attention" + "flash_rows");
pub const FLASH_ATTENTION_SUBGROUP: Shader = shader!("flash_attention_subgroup" + "flash_rows" + "subgroup_share");
pub const FLOW_SAMPLE: Shader = shader!("flow_sample");

/// Every shader of the library (a test checks this matches the `shaders/` folder).
pub const ALL_SHADERS: &[Shader] = &[
    FILL,
    CAST,
    UNARY,
    BINARY,
    REDUCE,
    MATMUL,
    MATMUL_SUBGROUP,
    RANDOM,
    LAYOUT,
    ADAMW,
    CLIP,
    SOFTMAX,
    NORM,
    SWIGLU,
    GATHER,
    POSENC,
    CROSS_ATTENTION,
    CONV_CAUSAL,
    CONV_CAUSAL_SUBGROUP,
    CONV_CAUSAL_TILED,
    FLASH_ATTENTION,
    FLASH_ATTENTION_SUBGROUP,
    FLOW_SAMPLE,
];

/// The naga capabilities a device with `features` offers.
pub fn capabilities_for(features: wgpu::Features) -> naga::valid::Capabilities {
    use naga::valid::Capabilities as C;
    let mut caps = C::empty();
    if features.contains(wgpu::Features::IMMEDIATES) {
        caps |= C::IMMEDIATES;
    }
    if features.contains(wgpu::Features::SHADER_F16) {
        caps |= C::SHADER_FLOAT16;
    }
    if features.contains(wgpu::Features::SUBGROUP) {
        caps |= C::SUBGROUP;
    }
    caps
}

/// Parses and validates WGSL with naga. Errors carry `file:line:column` and the offending line.
pub fn validate_wgsl(file: &str, source: &str, caps: naga::valid::Capabilities) -> Result<naga::Module> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| Error::Shader { file: file.to_string(), message: e.emit_to_string_with_path(source, file) })?;
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .validate(&module)
        .map_err(|e| Error::Shader { file: file.to_string(), message: e.emit_to_string_with_path(source, file) })?;
    Ok(module)
}

/// A compiled compute pipeline and its bind group layout.
pub(crate) struct Pipeline {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    pub(crate) label: String,
}

type PipelineKey = (&'static str, &'static str, Vec<(&'static str, u64)>);

#[derive(Default)]
pub(crate) struct KernelCache {
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    pipelines: HashMap<PipelineKey, Arc<Pipeline>>,
}

impl KernelCache {
    pub(crate) fn len(&self) -> usize {
        self.pipelines.len()
    }
}

impl Gpu {
    /// The pipeline for `entry` of `shader` with the given override constants (cached).
    pub(crate) fn pipeline(
        &self,
        shader: &Shader,
        entry: &'static str,
        overrides: &[(&'static str, f64)],
    ) -> Result<Arc<Pipeline>> {
        let key: PipelineKey = (shader.name, entry, overrides.iter().map(|&(k, v)| (k, v.to_bits())).collect());
        let mut cache = self
            .inner
            .kernels
            .lock()
            .map_err(|_| Error::Gpu { context: "pipeline cache".into(), message: "poisoned lock".into() })?;
        if let Some(p) = cache.pipelines.get(&key) {
            return Ok(p.clone());
        }
        if !cache.modules.contains_key(shader.name) {
            validate_wgsl(shader.name, shader.source, capabilities_for(self.inner.features))?;
            let module = self.scoped(&format!("compiling {}", shader.name), || {
                self.inner.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(shader.name),
                    source: wgpu::ShaderSource::Wgsl(shader.source.into()),
                })
            })?;
            cache.modules.insert(shader.name, module);
        }
        let module = &cache.modules[shader.name];
        let label = format!("{}::{}{:?}", shader.name, entry, overrides);
        let (pipeline, layout) = self.scoped(&format!("creating pipeline {label}"), || {
            let pipeline = self.inner.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: None,
                module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: overrides,
                    // Kernels initialise their workgroup memory themselves (GL compiles are
                    // minutes long otherwise).
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
            let layout = pipeline.get_bind_group_layout(0);
            (pipeline, layout)
        })?;
        let p = Arc::new(Pipeline { pipeline, layout, label });
        cache.pipelines.insert(key, p.clone());
        Ok(p)
    }

    /// Number of pipelines compiled so far.
    pub fn pipelines_compiled(&self) -> usize {
        self.inner.kernels.lock().map(|c| c.len()).unwrap_or(0)
    }
}
