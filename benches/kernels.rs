//! Kernel micro-benchmarks: `cargo bench --bench kernels [-- --json] [-- --sweep] [-- FILTER]`.
//!
//! Each case runs warm-ups (the first dispatch JIT-compiles on lavapipe), then at least
//! `SAMPLES` timed samples; the table shows the median. Timing uses GPU timestamps when the
//! adapter has them, the wall clock between syncs otherwise.

use std::time::Duration;

use enma::ops::{self, MatmulKernel, MatmulTiles};
use enma::{Gpu, GpuOptions, Result, Tensor, TimingMethod};

const WARMUP: usize = 3;
const SAMPLES: usize = 10;

struct Args {
    json: bool,
    sweep: bool,
    filter: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args { json: false, sweep: false, filter: None };
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => a.json = true,
            "--sweep" => a.sweep = true,
            "--bench" => {}
            s if s.starts_with("--") => {}
            s => a.filter = Some(s.to_string()),
        }
    }
    a
}

enum Rate {
    Gflops(f64),
    Gbps(f64),
}

struct Row {
    kernel: String,
    shape: String,
    dtype: &'static str,
    median_ms: f64,
    rate: Rate,
    method: TimingMethod,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Times `f` (which records GPU work) after warm-ups; returns the median and the method.
fn measure(gpu: &Gpu, mut f: impl FnMut() -> Result<()>) -> Result<(Duration, TimingMethod)> {
    for _ in 0..WARMUP {
        f()?;
        gpu.sync()?;
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    let mut method = TimingMethod::WallClock;
    for _ in 0..SAMPLES {
        let (_, d, m) = gpu.time(false, &mut f)?;
        samples.push(d);
        method = m;
    }
    Ok((median(samples), method))
}

fn rand(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn bench_matmul(gpu: &Gpu, n: usize, kernel: MatmulKernel) -> Result<Row> {
    let a = Tensor::from_slice(gpu, &rand(n * n, 1), &[n, n])?;
    let b = Tensor::from_slice(gpu, &rand(n * n, 2), &[n, n])?;
    let (d, method) = measure(gpu, || ops::matmul_with(&a, &b, None, false, false, Some(kernel)).map(drop))?;
    let ms = d.as_secs_f64() * 1e3;
    let flops = 2.0 * (n as f64).powi(3);
    Ok(Row {
        kernel: match kernel {
            MatmulKernel::Tiled(t) => format!("matmul tiled {}x{} wg{}x{}", t.tm, t.tn, t.wg_x, t.wg_y),
            MatmulKernel::Subgroup8 { cn } => format!("matmul subgroup8 cn{cn}"),
            MatmulKernel::Shared => "matmul shared-memory 128x128".to_string(),
        },
        shape: format!("{n}x{n}x{n}"),
        dtype: "f32",
        median_ms: ms,
        rate: Rate::Gflops(flops / d.as_secs_f64() / 1e9),
        method,
    })
}

/// A memory-bound case: `bytes` moved per run.
fn bandwidth_row(kernel: &str, shape: String, bytes: f64, (d, method): (Duration, TimingMethod)) -> Row {
    Row {
        kernel: kernel.into(),
        shape,
        dtype: "f32",
        median_ms: d.as_secs_f64() * 1e3,
        rate: Rate::Gbps(bytes / d.as_secs_f64() / 1e9),
        method,
    }
}

fn bench_add(gpu: &Gpu, n: usize) -> Result<Row> {
    let a = Tensor::from_slice(gpu, &rand(n, 3), &[n])?;
    let b = Tensor::from_slice(gpu, &rand(n, 4), &[n])?;
    let timing = measure(gpu, || ops::add(&a, &b).map(drop))?;
    Ok(bandwidth_row("add", format!("{n}"), 3.0 * 4.0 * n as f64, timing))
}

fn bench_sum(gpu: &Gpu, rows: usize, cols: usize) -> Result<Row> {
    let x = Tensor::from_slice(gpu, &rand(rows * cols, 5), &[rows, cols])?;
    let timing = measure(gpu, || ops::sum(&x, 1, false).map(drop))?;
    Ok(bandwidth_row("sum(axis=-1)", format!("{rows}x{cols}"), 4.0 * (rows * cols + rows) as f64, timing))
}

fn print(rows: &[Row], gpu: &Gpu, json: bool) {
    let adapter = &gpu.adapter().name;
    if json {
        for r in rows {
            let (key, val) = match r.rate {
                Rate::Gflops(v) => ("gflops", v),
                Rate::Gbps(v) => ("gbps", v),
            };
            let obj = serde_json::json!({
                "kernel": r.kernel, "shape": r.shape, "dtype": r.dtype,
                "median_ms": (r.median_ms * 1e4).round() / 1e4, key: (val * 100.0).round() / 100.0,
                "timing": r.method.name(), "adapter": adapter,
            });
            println!("{obj}");
        }
        return;
    }
    println!("adapter: {adapter} ({}, {})", gpu.adapter().backend, gpu.adapter().device_type);
    println!("{:<28} {:>16} {:>6} {:>11} {:>14} {:>11}", "kernel", "shape", "dtype", "median ms", "rate", "timing");
    for r in rows {
        let rate = match r.rate {
            Rate::Gflops(v) => format!("{v:.1} GFLOP/s"),
            Rate::Gbps(v) => format!("{v:.1} GB/s"),
        };
        println!(
            "{:<28} {:>16} {:>6} {:>11.3} {:>14} {:>11}",
            r.kernel,
            r.shape,
            r.dtype,
            r.median_ms,
            rate,
            r.method.name()
        );
    }
}

fn run() -> Result<()> {
    let args = parse_args();
    let gpu = Gpu::new(GpuOptions::default())?;
    let keep = |name: &str| args.filter.as_ref().is_none_or(|f| name.contains(f.as_str()));
    let mut rows = Vec::new();
    if keep("matmul") {
        for n in [256, 512, 1024] {
            rows.push(bench_matmul(&gpu, n, MatmulKernel::auto(&gpu, n, n, n))?);
        }
    }
    if args.sweep {
        // Every kernel variant at 1024³ (the default choice is marked by `auto` above).
        if gpu.subgroup_size() == Some(8) {
            for cn in [1, 2] {
                rows.push(bench_matmul(&gpu, 1024, MatmulKernel::Subgroup8 { cn })?);
            }
        }
        rows.push(bench_matmul(&gpu, 1024, MatmulKernel::Shared)?);
        for tm in [4, 8] {
            for tn in [4, 8] {
                for (wx, wy) in [(8, 8), (16, 16), (32, 2), (16, 4)] {
                    rows.push(bench_matmul(
                        &gpu,
                        1024,
                        MatmulKernel::Tiled(MatmulTiles { tm, tn, wg_x: wx, wg_y: wy }),
                    )?);
                }
            }
        }
    }
    if keep("add") {
        rows.push(bench_add(&gpu, 16 << 20)?);
    }
    if keep("sum") {
        rows.push(bench_sum(&gpu, 4096, 4096)?);
    }
    print(&rows, &gpu, args.json);
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
