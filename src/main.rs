//! The `enma` command line: thin, everything lives in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use enma::{Gpu, GpuOptions};

#[derive(Parser)]
#[command(name = "enma", version, about = "ENMA generative neural PDE operator on wgpu")]
struct Cli {
    /// Backends to consider (vulkan, metal, dx12, gl; comma-separated). WGPU_BACKEND overrides.
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Use only an adapter whose name contains this. WGPU_ADAPTER_NAME overrides.
    #[arg(long, global = true)]
    adapter: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the adapter, backend, driver, features and limits enma will use.
    Info {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// List every adapter seen, and why enma cannot use the ones it skips.
        #[arg(long)]
        all: bool,
    },
}

fn run(cli: Cli) -> enma::Result<()> {
    let options = GpuOptions { backends: cli.backend, adapter_name: cli.adapter };
    match cli.command {
        Command::Info { json, all: true } => {
            let list = Gpu::adapters(&options)?;
            if json {
                let v = serde_json::to_string(&list).map_err(|e| enma::Error::invalid("info", e.to_string()))?;
                println!("{v}");
            } else {
                if list.is_empty() {
                    println!("no adapters found (install a GPU driver, or mesa-vulkan-drivers for software Vulkan)");
                }
                for a in &list {
                    let mark = if a.chosen {
                        "*"
                    } else if a.usable {
                        " "
                    } else {
                        "-"
                    };
                    let why = a.reason.as_deref().map(|r| format!("  ({r})")).unwrap_or_default();
                    println!("{mark} {} [{}, {}, {}]{why}", a.name, a.backend, a.device_type, a.driver);
                }
                println!("* = chosen, - = not usable");
            }
        }
        Command::Info { json, all: false } => {
            let gpu = Gpu::new(options)?;
            let a = gpu.adapter();
            if json {
                let v = serde_json::to_string(a).map_err(|e| enma::Error::invalid("info", e.to_string()))?;
                println!("{v}");
            } else {
                let l = &a.limits;
                println!("adapter      {}", a.name);
                println!("backend      {}", a.backend);
                println!("device type  {}", a.device_type);
                println!("driver       {} ({})", a.driver, a.driver_info);
                println!("vendor/dev   {:#06x}/{:#06x}", a.vendor, a.device);
                println!("subgroups    {}..{}", a.subgroup_min_size, a.subgroup_max_size);
                println!("features     {}", a.features.join(", "));
                println!("limits");
                println!("  max_buffer_size                       {}", l.max_buffer_size);
                println!("  max_storage_buffer_binding_size       {}", l.max_storage_buffer_binding_size);
                println!("  max_storage_buffers_per_shader_stage  {}", l.max_storage_buffers_per_shader_stage);
                println!("  max_compute_workgroup_storage_size    {}", l.max_compute_workgroup_storage_size);
                println!("  max_compute_invocations_per_workgroup {}", l.max_compute_invocations_per_workgroup);
                println!("  max_compute_workgroup_size_x          {}", l.max_compute_workgroup_size_x);
                println!("  max_compute_workgroups_per_dimension  {}", l.max_compute_workgroups_per_dimension);
                println!("  max_immediate_size                    {}", l.max_immediate_size);
                println!("  min_storage_buffer_offset_alignment   {}", l.min_storage_buffer_offset_alignment);
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
