//! Embedding enma in a host wgpu application.
//!
//! The host creates its own instance, adapter, device and queue, hands them to enma
//! ([`enma::Gpu::from_device`]), loads a trained run, rolls out into a tensor that stays on the
//! GPU ([`enma::eval::rollout_fields`]) and runs a compute pass of its own on that tensor, on
//! the same queue ([`enma::Tensor::raw_buffer`] gives the buffer range to bind).
//!
//! ```text
//! cargo run --release --example embed -- runs/quickstart/generator
//! ```
//!
//! Without an argument it first trains the `micro` preset into a temporary folder (seconds) so
//! that it always has a checkpoint to load.

use std::error::Error;
use std::path::{Path, PathBuf};

use enma::wgpu;

/// The host's own kernel: the mean square of each rolled-out sequence (one invocation per
/// sequence, a plain loop: deterministic).
const HOST_SHADER: &str = r#"
@group(0) @binding(0) var<storage, read> fields: array<f32>;
@group(0) @binding(1) var<storage, read_write> energy: array<f32>;
override PER_SEQUENCE: u32 = 1u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= arrayLength(&energy)) { return; }
    var s = 0.0;
    for (var i = 0u; i < PER_SEQUENCE; i++) {
        let v = fields[id.x * PER_SEQUENCE + i];
        s += v * v;
    }
    energy[id.x] = s / f32(PER_SEQUENCE);
}
"#;

/// The host application's device: any adapter with enma's required features and limits.
fn host_device() -> Result<(wgpu::Device, wgpu::Queue, String), Box<dyn Error>> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))?;
    let name = adapter.get_info().name;
    let features = enma::gpu::required_features() | (adapter.features() & enma::gpu::optional_features());
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("host"),
        required_features: features,
        // the adapter's own limits: at least enma's (from_device checks and lists what lacks)
        required_limits: adapter.limits(),
        ..Default::default()
    }))?;
    Ok((device, queue, name))
}

/// Trains the `micro` preset (both stages, a few steps) into `dir` and returns the generator run.
fn train_micro(gpu: &enma::Gpu, dir: &Path) -> enma::Result<PathBuf> {
    let cfg = enma::config::RunConfig::load("micro", &[])?;
    let data = dir.join("data");
    let gen_cfg = enma::data::generate::GenConfig::new(cfg.dataset()?, cfg.data_size()?, cfg.seed);
    for split in enma::data::pde::Split::all() {
        enma::data::generate::write_split(&gen_cfg, split, &data, None, &|| {})?;
    }
    let opts = enma::run::TrainOptions { quiet: true, until: None };
    let (vae, generator) = (dir.join("vae"), dir.join("generator"));
    enma::run::train(gpu, &cfg, enma::run::Stage::Vae, &data, &vae, None, &opts)?;
    enma::run::train(gpu, &cfg, enma::run::Stage::Generator, &data, &generator, Some(&vae), &opts)?;
    Ok(generator)
}

fn main() -> Result<(), Box<dyn Error>> {
    let (device, queue, adapter) = host_device()?;
    let gpu = enma::Gpu::from_device(device.clone(), queue.clone())?;
    println!("host device on {adapter}; enma shares it");

    let tmp = std::env::temp_dir().join(format!("enma-embed-{}", std::process::id()));
    let run = match std::env::args().nth(1) {
        Some(run) => PathBuf::from(run),
        None => {
            println!("no run given: training the micro preset into {}", tmp.display());
            train_micro(&gpu, &tmp)?
        }
    };

    // load the checkpoint and roll out two In-D test trajectories, 4 samples each
    let g = enma::run::load_generator(&gpu, &run)?;
    let meta = enma::run::read_meta(&run)?;
    let data: PathBuf = enma::run::meta_field(&run, &meta, "data")?;
    let mut test = enma::run::load_data(&data, &g.config.data, g.vae.dataset, enma::data::pde::Split::InD)?;
    test.truncate(2);
    g.vae.norm.apply(&mut test)?;
    let cfg = enma::eval::RolloutConfig { samples: 4, ..g.config.rollout() };
    let fields = enma::eval::rollout_fields(&gpu, &g.pipeline(), &test, &cfg)?;
    let sequences = fields.shape()[0];
    let per_sequence = fields.numel() / sequences;
    println!("rollout on the GPU: tensor {:?}", fields.shape());

    // the host's own pass over enma's tensor, on the same queue
    gpu.flush()?; // submit enma's recorded work first: one queue runs submissions in order
    let (buffer, offset, size) = fields.raw_buffer();
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("host energy"),
        source: wgpu::ShaderSource::Wgsl(HOST_SHADER.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("host energy"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &[("PER_SEQUENCE", per_sequence as f64)],
            ..Default::default()
        },
        cache: None,
    });
    let bytes = (sequences * 4) as u64;
    let energy = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host energy"),
        size: bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host staging"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset,
                    size: wgpu::BufferSize::new(size),
                }),
            },
            wgpu::BindGroupEntry { binding: 1, resource: energy.as_entire_binding() },
        ],
    });
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("host") });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups((sequences as u32).div_ceil(64), 1, 1);
    }
    encoder.copy_buffer_to_buffer(&energy, 0, &staging, 0, bytes);
    queue.submit([encoder.finish()]);
    staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let host: Vec<f32> = bytemuck::pod_collect_to_vec(&staging.slice(..).get_mapped_range()?);

    // check the host's numbers against the same reduction on the CPU
    let values = fields.to_vec()?;
    let mut worst = 0f64;
    for (s, &h) in host.iter().enumerate() {
        let cpu = values[s * per_sequence..(s + 1) * per_sequence].iter().map(|v| (*v as f64).powi(2)).sum::<f64>()
            / per_sequence as f64;
        worst = worst.max((h as f64 - cpu).abs() / cpu.abs().max(1e-12));
    }
    let shown: Vec<String> = host.iter().map(|v| format!("{v:.3e}")).collect();
    println!("host pass: mean square of each of {sequences} sequences [{}]", shown.join(", "));
    println!("largest relative difference from the CPU: {worst:.2e}");
    drop(fields); // enma's memory goes back to its pool once the host's work is done
    std::fs::remove_dir_all(&tmp).ok();
    if worst > 1e-4 {
        return Err(format!("the host pass disagrees with the CPU ({worst:.2e})").into());
    }
    println!("ok");
    Ok(())
}
