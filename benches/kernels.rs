//! Kernel micro-benchmarks: `cargo bench --bench kernels [-- --json] [-- --sweep] [-- FILTER]`.
//!
//! Each case runs warm-ups (the first dispatch JIT-compiles on lavapipe), then at least
//! `SAMPLES` timed samples; the table shows the median. Timing uses GPU timestamps when the
//! adapter has them, the wall clock between syncs otherwise.

use std::time::Duration;

use enma::nn::TransformerBlock;
use enma::ops::flash_attention::FlashKernel;
use enma::ops::{self, MatmulKernel, MatmulTiles};
use enma::optim::{AdamW, AdamWConfig};
use enma::{Gpu, GpuOptions, ParamStore, Result, Tape, Tensor, TimingMethod};

const WARMUP: usize = 3;
const SAMPLES: usize = 10;

struct Args {
    json: bool,
    sweep: bool,
    profile: bool,
    filter: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args { json: false, sweep: false, profile: false, filter: None };
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => a.json = true,
            "--sweep" => a.sweep = true,
            "--profile" => a.profile = true,
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
    /// Iterations per second (end-to-end steps).
    PerSecond(f64),
}

struct Row {
    kernel: String,
    shape: String,
    dtype: &'static str,
    median_ms: f64,
    rate: Rate,
    method: TimingMethod,
    /// Dispatches and submissions of one iteration.
    per_iter: Option<(u64, u64)>,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Times `f` (which records GPU work) after warm-ups; returns the median and the method.
fn measure(gpu: &Gpu, f: impl FnMut() -> Result<()>) -> Result<(Duration, TimingMethod)> {
    measure_with(gpu, false, f).map(|(d, m, _)| (d, m))
}

/// `measure`, optionally on the wall clock, also counting the dispatches and submissions of one
/// iteration.
fn measure_with(
    gpu: &Gpu,
    wall: bool,
    mut f: impl FnMut() -> Result<()>,
) -> Result<(Duration, TimingMethod, (u64, u64))> {
    for _ in 0..WARMUP {
        f()?;
        gpu.sync()?;
    }
    let before = gpu.runtime_stats();
    f()?;
    gpu.flush()?;
    let after = gpu.runtime_stats();
    gpu.sync()?;
    let per_iter = (after.dispatches - before.dispatches, after.submissions - before.submissions);
    let mut samples = Vec::with_capacity(SAMPLES);
    let mut method = TimingMethod::WallClock;
    for _ in 0..SAMPLES {
        let (_, d, m) = gpu.time(wall, &mut f)?;
        samples.push(d);
        method = m;
    }
    Ok((median(samples), method, per_iter))
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

/// `kernel`: `None` is the library's choice (the autotuner's, or the built-in rule under
/// `ENMA_TUNE=off`), named in the row.
fn bench_matmul(gpu: &Gpu, n: usize, kernel: Option<MatmulKernel>) -> Result<Row> {
    let a = Tensor::from_slice(gpu, &rand(n * n, 1), &[n, n])?;
    let b = Tensor::from_slice(gpu, &rand(n * n, 2), &[n, n])?;
    let (d, method) = measure(gpu, || ops::matmul_with(&a, &b, None, false, false, kernel).map(drop))?;
    let ms = d.as_secs_f64() * 1e3;
    let flops = 2.0 * (n as f64).powi(3);
    let lanes = ops::matmul::subgroup_lanes(gpu).unwrap_or(0);
    let name = |k: &MatmulKernel| k.name().replace("subgroup", &format!("subgroup{lanes}"));
    Ok(Row {
        kernel: match kernel {
            Some(k) => format!("matmul {}", name(&k)),
            None => format!("matmul {} ({})", chosen(gpu, &format!("matmul {n}x{n}x{n} ")), tuned_or_rules(gpu)),
        },
        shape: format!("{n}x{n}x{n}"),
        dtype: "f32",
        median_ms: ms,
        rate: Rate::Gflops(flops / d.as_secs_f64() / 1e9),
        method,
        per_iter: None,
    })
}

/// What the library picked for the tuning key starting with `prefix` (`?` if nothing was).
fn chosen(gpu: &Gpu, prefix: &str) -> String {
    gpu.tune_used().into_iter().find(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).unwrap_or_else(|| "?".into())
}

fn tuned_or_rules(gpu: &Gpu) -> &'static str {
    if gpu.tuning_enabled() { "tuned" } else { "rules" }
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
        per_iter: None,
    }
}

fn bench_softmax(gpu: &Gpu, rows: usize, len: usize) -> Result<Row> {
    let x = Tensor::from_slice(gpu, &rand(rows * len, 6), &[rows, len])?;
    let timing = measure(gpu, || ops::softmax(&x).map(drop))?;
    Ok(bandwidth_row("softmax", format!("{rows}x{len}"), 8.0 * (rows * len) as f64, timing))
}

fn bench_rms_norm(gpu: &Gpu, rows: usize, c: usize) -> Result<Row> {
    let x = Tensor::from_slice(gpu, &rand(rows * c, 7), &[rows, c])?;
    let gamma = Tensor::from_slice(gpu, &vec![1.0; c], &[c])?;
    let timing = measure(gpu, || ops::rms_norm(&x, Some(&gamma), 1e-6).map(drop))?;
    Ok(bandwidth_row("rms_norm", format!("{rows}x{c}"), 8.0 * (rows * c) as f64, timing))
}

/// Attention with the given flash kernel, or the plain path (`None`).
#[allow(clippy::too_many_arguments)]
fn bench_attention(
    gpu: &Gpu,
    b: usize,
    h: usize,
    t: usize,
    hd: usize,
    block: Option<usize>,
    kernel: Option<enma::ops::flash_attention::FlashKernel>,
    backward: bool,
) -> Result<Row> {
    use enma::ops::flash_attention::AttentionOptions;
    let flash = kernel.is_some();
    let n = b * h * t * hd;
    let mask = match block {
        Some(f) => {
            let m: Vec<f32> = (0..t * t).map(|e| if (e % t) / f <= (e / t) / f { 0.0 } else { -1e9 }).collect();
            Some(Tensor::from_slice(gpu, &m, &[t, t])?)
        }
        None => None,
    };
    let (q, k, v) = (
        Tensor::from_slice(gpu, &rand(n, 8), &[b, h, t, hd])?,
        Tensor::from_slice(gpu, &rand(n, 9), &[b, h, t, hd])?,
        Tensor::from_slice(gpu, &rand(n, 10), &[b, h, t, hd])?,
    );
    let opts = match block {
        Some(f) => AttentionOptions::new(hd).block_causal(f),
        None => AttentionOptions::new(hd),
    }
    .kernel(kernel.unwrap_or(FlashKernel::Auto));
    let (d, method, per_iter) = measure_with(gpu, false, || {
        let tape = if backward { Tape::new(gpu) } else { Tape::no_grad(gpu) };
        let (qv, kv, vv) = (tape.leaf(q.clone()), tape.leaf(k.clone()), tape.leaf(v.clone()));
        let o = if flash {
            qv.flash_attention(&kv, &vv, &opts)?
        } else {
            let flat = |x: &enma::Var| x.reshape(&[b * h, t, hd]);
            let mut scores = flat(&qv)?.matmul(&flat(&kv)?, None, false, true)?.scale(opts.scale)?;
            if let Some(m) = &mask {
                scores = scores.add(&tape.constant(m.clone()))?;
            }
            scores.softmax()?.matmul(&flat(&vv)?, None, false, false)?
        };
        if backward {
            o.sum_all()?.backward()?;
        }
        Ok(())
    })?;
    let flops = 4.0 * (b * h) as f64 * (t * t * hd) as f64 * if backward { 3.0 } else { 1.0 };
    Ok(Row {
        kernel: format!(
            "attention {}{}{}",
            match kernel {
                None => "plain",
                Some(FlashKernel::Auto) => "flash",
                Some(FlashKernel::Tiled) => "flash-tiled",
                Some(FlashKernel::Subgroup) => "flash-subgroup",
            },
            if block.is_some() { " block-causal" } else { "" },
            if backward { " fwd+bwd" } else { " fwd" }
        ),
        shape: format!("b{b} h{h} t{t} d{hd}"),
        dtype: "f32",
        median_ms: d.as_secs_f64() * 1e3,
        rate: Rate::Gflops(flops / d.as_secs_f64() / 1e9),
        method,
        per_iter: Some(per_iter),
    })
}

/// Fused distance-biased cross-attention over [batch, heads, queries, head dim] and keys.
fn bench_cross_attention(
    gpu: &Gpu,
    b: usize,
    h: usize,
    nq: usize,
    nk: usize,
    dh: usize,
    backward: bool,
) -> Result<Row> {
    let q = Tensor::from_slice(gpu, &rand(b * h * nq * dh, 13), &[b, h, nq, dh])?;
    let k = Tensor::from_slice(gpu, &rand(b * h * nk * dh, 14), &[b, h, nk, dh])?;
    let v = Tensor::from_slice(gpu, &rand(b * h * nk * dh, 15), &[b, h, nk, dh])?;
    let unit = |n: usize, s: u64| rand(n, s).into_iter().map(|x| 0.5 * (x + 1.0)).collect::<Vec<_>>();
    let qc = Tensor::from_slice(gpu, &unit(nq, 16), &[1, nq, 1])?;
    let kc = Tensor::from_slice(gpu, &unit(b * nk, 17), &[b, nk, 1])?;
    let slopes = Tensor::from_slice(gpu, &(1..=h).map(|i| i as f32).collect::<Vec<_>>(), &[h])?;
    let (d, method, per_iter) = measure_with(gpu, false, || {
        let tape = if backward { Tape::new(gpu) } else { Tape::no_grad(gpu) };
        let leaf = |t: &Tensor| tape.leaf(t.clone());
        let o = leaf(&q).cross_attention(&leaf(&k), &leaf(&v), &leaf(&qc), &leaf(&kc), &leaf(&slopes), None, true)?;
        if backward {
            o.sum_all()?.backward()?;
        }
        Ok(())
    })?;
    // per (query, key): q·k and p·v (2·dh FMAs) forward; about 2.5× that more backward
    let flops = 4.0 * (b * h * nq * nk * dh) as f64 * if backward { 3.5 } else { 1.0 };
    Ok(Row {
        kernel: if backward { "cross-attention fwd+bwd".into() } else { "cross-attention fwd".into() },
        shape: format!("b{b} h{h} q{nq} k{nk} d{dh}"),
        dtype: "f32",
        median_ms: d.as_secs_f64() * 1e3,
        rate: Rate::Gflops(flops / d.as_secs_f64() / 1e9),
        method,
        per_iter: Some(per_iter),
    })
}

/// Causal convolution `[B, T, S.., C_in] → C_out` with kernel (kt, ks), strides 1, computed
/// with `conv` (direct kernels, im2col + matmul, or `Auto`: implicit GEMM where it applies).
#[allow(clippy::too_many_arguments)]
fn bench_conv(
    gpu: &Gpu,
    label: &str,
    shape: &[usize],
    c_out: usize,
    kt: usize,
    ks: usize,
    conv: enma::ops::conv_causal::ConvMethod,
    backward: bool,
) -> Result<Row> {
    use enma::ops::conv_causal::{ConvSpec, conv_causal_backward, conv_causal_with};
    let spec = ConvSpec::new(kt, ks, 1, 1);
    let ns = shape.len() - 3;
    let c_in = shape[shape.len() - 1];
    let rows = spec.weight_rows(c_in, ns);
    let n: usize = shape.iter().product();
    let x = Tensor::from_slice(gpu, &rand(n, 18), shape)?;
    let w = Tensor::from_slice(gpu, &rand(rows * c_out, 19), &[rows, c_out])?;
    let (d, method, per_iter) = measure_with(gpu, false, || {
        let y = conv_causal_with(&x, &w, None, &spec, conv)?;
        if backward {
            conv_causal_backward(&x, &w, false, &y, &spec, conv)?;
        }
        Ok(())
    })?;
    let positions = n / c_in;
    let flops = 2.0 * (positions * rows * c_out) as f64 * if backward { 3.0 } else { 1.0 };
    Ok(Row {
        kernel: format!(
            "conv {label} k{kt}x{ks} {}{}",
            match conv {
                enma::ops::conv_causal::ConvMethod::Direct => "direct",
                enma::ops::conv_causal::ConvMethod::Auto => "auto",
                _ => "im2col",
            },
            if backward { " fwd+bwd" } else { " fwd" }
        ),
        shape: format!("{shape:?}->{c_out}"),
        dtype: "f32",
        median_ms: d.as_secs_f64() * 1e3,
        rate: Rate::Gflops(flops / d.as_secs_f64() / 1e9),
        method,
        per_iter: Some(per_iter),
    })
}

/// One VAE training step (forward, backward, AdamW, loss read back) of the advection-tiny
/// model on a batch of `b` trajectories of 20 × 128, or its forward alone.
fn bench_vae_step(gpu: &Gpu, b: usize, max_width: usize, backward: bool) -> Result<Row> {
    use enma::data::generate::PdeName;
    use enma::model::{Vae, VaeConfig};
    let mut store = ParamStore::new(gpu, 1);
    let vae = Vae::new(&mut store, VaeConfig::for_dataset(PdeName::Advection, max_width))?;
    let mut opt = AdamW::new(&store, AdamWConfig::default())?;
    let x = Tensor::from_slice(gpu, &rand(b * 20 * 128, 20), &[b, 20, 128, 1])?;
    let (d, method, per_iter) = measure_with(gpu, true, || {
        let tape = if backward { Tape::new(gpu) } else { Tape::no_grad(gpu) };
        let xv = tape.constant(x.clone());
        let out = vae.forward(&tape, &store, &xv, None)?;
        let loss = enma::ops::loss::relative_l2(&out.recon, &xv, 1e-12)?;
        if backward {
            let grads = loss.backward()?;
            opt.step(&store, &grads, 1e-4)?;
        }
        loss.to_vec().map(drop)
    })?;
    Ok(Row {
        kernel: format!("VAE advection-tiny {}", if backward { "train step" } else { "forward" }),
        shape: format!("b{b} 20x128 w{max_width}"),
        dtype: "f32",
        median_ms: d.as_secs_f64() * 1e3,
        rate: Rate::PerSecond(1.0 / d.as_secs_f64()),
        method,
        per_iter: Some(per_iter),
    })
}

/// One generator training step of `advection-tiny` (flow loss with teacher forcing and
/// masking, backward, AdamW with clipping, loss read back) on `b` sequences of 11 latent
/// frames × 16 tokens × 4 channels.
/// One generator training step of advection-tiny on `b` sequences; with `context`, the
/// in-context form `[BOS; context; BOS; target]` (half of the steps of stage 2).
fn bench_generator_step(gpu: &Gpu, b: usize, context: bool) -> Result<Row> {
    use enma::model::enma::{Generator, GeneratorConfig};
    let mut store = ParamStore::new(gpu, 1);
    let generator = Generator::new(&mut store, GeneratorConfig::tiny(4, vec![16]))?;
    let mut opt = AdamW::new(&store, AdamWConfig { beta2: 0.95, clip_norm: Some(1.0), ..Default::default() })?;
    let z = Tensor::from_slice(gpu, &rand(b * 11 * 16 * 4, 21), &[b, 11, 16, 4])?;
    let c = Tensor::from_slice(gpu, &rand(b * 11 * 16 * 4, 22), &[b, 11, 16, 4])?;
    let mut step = 0;
    let (d, method, per_iter) = measure_with(gpu, true, || {
        let tape = Tape::new(gpu);
        step += 1;
        let zv = tape.constant(z.clone());
        let loss = if context {
            generator.loss_with_context(&tape, &store, &zv, Some(&tape.constant(c.clone())), 1, step)?
        } else {
            generator.loss(&tape, &store, &zv, 1, step)?
        };
        let grads = loss.backward()?;
        opt.step(&store, &grads, 1e-4)?;
        loss.to_vec().map(drop)
    })?;
    Ok(Row {
        kernel: format!("generator advection-tiny train step{}", if context { ", in context" } else { "" }),
        shape: format!("b{b} 11x16 w64"),
        dtype: "f32",
        median_ms: d.as_secs_f64() * 1e3,
        rate: Rate::PerSecond(1.0 / d.as_secs_f64()),
        method,
        per_iter: Some(per_iter),
    })
}

/// The flow-matching sampler (midpoint ODE of the adaLN head) for `n` tokens: the fused kernel
/// or the composed ops. Head of advection-tiny (token 4, condition 64, width 128, depth 2).
fn bench_flow_sample(gpu: &Gpu, n: usize, steps: usize, fused: bool) -> Result<Row> {
    use enma::model::flow::{FlowHead, FlowHeadConfig};
    let mut store = ParamStore::new(gpu, 1);
    let (dim, cond, width, depth) = (4, 64, 128, 2);
    let head = FlowHead::new(&mut store, "h", FlowHeadConfig { dim, cond, width, depth })?;
    let c = Tensor::from_slice(gpu, &rand(n * cond, 31), &[n, cond])?;
    let (d, method, per_iter) = measure_with(gpu, true, || {
        let z = if fused {
            head.sample_fused(gpu, &store, &c, steps, 1.0, 3)?
        } else {
            head.sample_composed(gpu, &store, &c, steps, 1.0, 3)?
        };
        z.to_vec().map(drop)
    })?;
    // multiply-adds per evaluation: input, (3 modulation + fc1 + fc2) per block, final 2 + out
    let macs = (dim * width + depth * 5 * width * width + 2 * width * width + width * dim) as f64;
    let flops = 2.0 * macs * (2 * steps * n) as f64;
    Ok(Row {
        kernel: format!("flow sampler {}", if fused { "fused" } else { "composed" }),
        shape: format!("n{n} N{steps} w{width}x{depth}"),
        dtype: "f32",
        median_ms: d.as_secs_f64() * 1e3,
        rate: Rate::Gflops(flops / d.as_secs_f64() / 1e9),
        method,
        per_iter: Some(per_iter),
    })
}

/// A pre-norm transformer of `blocks` blocks (4 heads) with AdamW and one batch `[b, t, width]`:
/// `step()` is one training step (forward with block-causal attention over 16-token frames, as
/// ENMA's causal transformer, backward, update, loss readback).
fn transformer_step(gpu: &Gpu, width: usize, blocks: usize, b: usize, t: usize) -> Result<impl FnMut() -> Result<()>> {
    let mut store = ParamStore::new(gpu, 1);
    let layers: Vec<TransformerBlock> =
        (0..blocks).map(|i| TransformerBlock::new(&mut store, &format!("b{i}"), width, 4, 2)).collect::<Result<_>>()?;
    let mut opt = AdamW::new(&store, AdamWConfig { clip_norm: Some(1.0), ..Default::default() })?;
    let x = Tensor::from_slice(gpu, &rand(b * t * width, 11), &[b, t, width])?;
    let y = Tensor::from_slice(gpu, &rand(b * t * width, 12), &[b, t, width])?;
    let opts = enma::ops::flash_attention::AttentionOptions::new(width / 4).block_causal(16);
    let gpu = gpu.clone();
    Ok(move || {
        let tape = Tape::new(&gpu);
        let mut h = tape.constant(x.clone());
        for layer in &layers {
            h = layer.forward_flash(&tape, &store, &h, &opts)?;
        }
        let loss = enma::ops::loss::mse(&h, &tape.constant(y.clone()))?;
        let grads = loss.backward()?;
        opt.step(&store, &grads, 1e-3)?;
        loss.to_vec().map(drop)
    })
}

/// One AdamW training step of a pre-norm transformer (forward, backward, update, loss readback).
fn bench_train_step(gpu: &Gpu, width: usize, blocks: usize, b: usize, t: usize) -> Result<Row> {
    let (d, method, per_iter) = measure_with(gpu, true, transformer_step(gpu, width, blocks, b, t)?)?;
    Ok(Row {
        kernel: format!("train step ({blocks} blocks, block-causal, AdamW)"),
        shape: format!("w{width} b{b} t{t}"),
        dtype: "f32",
        median_ms: d.as_secs_f64() * 1e3,
        rate: Rate::PerSecond(1.0 / d.as_secs_f64()),
        method,
        per_iter: Some(per_iter),
    })
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
                Rate::PerSecond(v) => ("per_second", v),
            };
            let mut obj = serde_json::json!({
                "kernel": r.kernel, "shape": r.shape, "dtype": r.dtype,
                "median_ms": (r.median_ms * 1e4).round() / 1e4, key: (val * 100.0).round() / 100.0,
                "timing": r.method.name(), "adapter": adapter,
            });
            if let Some((d, s)) = r.per_iter {
                obj["dispatches"] = d.into();
                obj["submissions"] = s.into();
            }
            println!("{obj}");
        }
        return;
    }
    println!("adapter: {adapter} ({}, {})", gpu.adapter().backend, gpu.adapter().device_type);
    println!(
        "{:<32} {:>18} {:>6} {:>11} {:>14} {:>11} {:>16}",
        "kernel", "shape", "dtype", "median ms", "rate", "timing", "dispatch/submit"
    );
    for r in rows {
        let rate = match r.rate {
            Rate::Gflops(v) => format!("{v:.1} GFLOP/s"),
            Rate::Gbps(v) => format!("{v:.1} GB/s"),
            Rate::PerSecond(v) => format!("{v:.2} /s"),
        };
        let per = r.per_iter.map(|(d, s)| format!("{d} / {s}")).unwrap_or_default();
        println!(
            "{:<32} {:>18} {:>6} {:>11.3} {:>14} {:>11} {:>16}",
            r.kernel,
            r.shape,
            r.dtype,
            r.median_ms,
            rate,
            r.method.name(),
            per
        );
    }
}

/// GPU time per kernel of one call of `step` (after a first call that compiles the pipelines).
fn print_profile(gpu: &Gpu, title: &str, mut step: impl FnMut() -> Result<()>) -> Result<()> {
    step()?;
    gpu.set_profiling(true)?;
    step()?;
    let rows = gpu.profile()?;
    gpu.set_profiling(false)?;
    print!("{}", enma::gpu::ProfileEntry::table(&rows, title, 20));
    Ok(())
}

/// GPU time per kernel of one VAE training step (`-- --profile`) or, with the filter
/// `generator`, of one generator training step, or with `conv`, of the forward and backward of
/// the widest res-block convolution of advection-tiny.
fn profile_step(gpu: &Gpu, what: Option<&str>) -> Result<()> {
    use enma::data::generate::PdeName;
    use enma::model::{Vae, VaeConfig};
    let mut store = ParamStore::new(gpu, 1);
    if what == Some("conv") {
        use enma::ops::conv_causal::{ConvMethod, ConvSpec, conv_causal_backward, conv_causal_with};
        let spec = ConvSpec::new(3, 3, 1, 1);
        let x = Tensor::from_slice(gpu, &rand(32 * 21 * 32 * 64, 18), &[32, 21, 32, 64])?;
        let w = Tensor::from_slice(gpu, &rand(576 * 64, 19), &[576, 64])?;
        return print_profile(gpu, "conv 3x3 [32, 21, 32, 64] -> 64 forward and backward", || {
            let y = conv_causal_with(&x, &w, None, &spec, ConvMethod::Auto)?;
            conv_causal_backward(&x, &w, false, &y, &spec, ConvMethod::Auto).map(drop)
        });
    }
    if what == Some("train") {
        let title = "transformer train step, 2 blocks, block-causal (batch 16, 176 tokens)";
        return print_profile(gpu, title, transformer_step(gpu, 64, 2, 16, 176)?);
    }
    if what == Some("generator") {
        use enma::model::enma::{Generator, GeneratorConfig};
        let g = Generator::new(&mut store, GeneratorConfig::tiny(4, vec![16]))?;
        let mut opt = AdamW::new(&store, AdamWConfig::default())?;
        let z = Tensor::from_slice(gpu, &rand(32 * 11 * 16 * 4, 21), &[32, 11, 16, 4])?;
        let c = Tensor::from_slice(gpu, &rand(32 * 11 * 16 * 4, 22), &[32, 11, 16, 4])?;
        let context = std::env::var("ENMA_PROFILE_CONTEXT").is_ok_and(|v| v == "1");
        let title = if context { "one in-context generator step (batch 32)" } else { "one generator step (batch 32)" };
        return print_profile(gpu, &format!("advection-tiny, {title}"), || {
            let tape = Tape::new(gpu);
            let zv = tape.constant(z.clone());
            let loss = if context {
                g.loss_with_context(&tape, &store, &zv, Some(&tape.constant(c.clone())), 1, 0)?
            } else {
                g.loss(&tape, &store, &zv, 1, 0)?
            };
            let grads = loss.backward()?;
            opt.step(&store, &grads, 1e-4)?;
            loss.to_vec().map(drop)
        });
    }
    let vae = Vae::new(&mut store, VaeConfig::for_dataset(PdeName::Advection, 64))?;
    let mut opt = AdamW::new(&store, AdamWConfig::default())?;
    let x = Tensor::from_slice(gpu, &rand(32 * 20 * 128, 20), &[32, 20, 128, 1])?;
    print_profile(gpu, "one VAE advection-tiny training step (batch 32)", || {
        let tape = Tape::new(gpu);
        let xv = tape.constant(x.clone());
        let out = vae.forward(&tape, &store, &xv, None)?;
        let loss = enma::ops::loss::relative_l2(&out.recon, &xv, 1e-12)?;
        let grads = loss.backward()?;
        opt.step(&store, &grads, 1e-4)?;
        loss.to_vec().map(drop)
    })
}

fn run() -> Result<()> {
    let args = parse_args();
    let gpu = Gpu::new(GpuOptions::default())?;
    if args.profile {
        return profile_step(&gpu, args.filter.as_deref());
    }
    let keep = |name: &str| args.filter.as_ref().is_none_or(|f| name.contains(f.as_str()));
    let mut rows = Vec::new();
    if keep("matmul") {
        for n in [256, 512, 1024] {
            rows.push(bench_matmul(&gpu, n, None)?);
        }
    }
    if args.sweep {
        // Every kernel variant at 1024³ (the default choice is marked by `auto` above).
        if ops::matmul::subgroup_lanes(&gpu).is_some() {
            for cn in [1, 2] {
                rows.push(bench_matmul(&gpu, 1024, Some(MatmulKernel::Subgroup { cn }))?);
            }
        }
        rows.push(bench_matmul(&gpu, 1024, Some(MatmulKernel::Shared))?);
        for tm in [4, 8] {
            for tn in [4, 8] {
                for (wx, wy) in [(8, 8), (16, 16), (32, 2), (16, 4)] {
                    let tiles = MatmulTiles { tm, tn, wg_x: wx, wg_y: wy };
                    rows.push(bench_matmul(&gpu, 1024, Some(MatmulKernel::Tiled(tiles)))?);
                }
            }
        }
    }
    if keep("peer") {
        // the shapes of the comparison with burn (README, "beside other engines"): matmul,
        // block-causal attention with 16-token frames, causal 3×3×3 convolutions, a transformer
        // training step
        rows.push(bench_matmul(&gpu, 1024, None)?);
        for (b, h, t, hd) in [(8, 4, 176, 16), (16, 8, 512, 64)] {
            for backward in [false, true] {
                for flash in [true, false] {
                    match bench_attention(&gpu, b, h, t, hd, Some(16), flash.then_some(FlashKernel::Auto), backward) {
                        Ok(r) => rows.push(r),
                        Err(e) => println!("attention b{b} h{h} t{t} d{hd}: skipped ({e})"),
                    }
                }
            }
        }
        use enma::ops::conv_causal::ConvMethod::Auto;
        for (shape, c_out) in [([8, 20, 32, 32, 16], 16), ([8, 11, 16, 16, 32], 32)] {
            for backward in [false, true] {
                rows.push(bench_conv(&gpu, "peer", &shape, c_out, 3, 3, Auto, backward)?);
            }
        }
        rows.push(bench_train_step(&gpu, 64, 2, 16, 176)?);
    }
    if keep("flash") {
        // the peer attention shapes with every flash kernel, beside the plain path
        for (b, h, t, hd) in [(8, 4, 176, 16), (16, 8, 512, 64)] {
            for backward in [false, true] {
                for kernel in [Some(FlashKernel::Subgroup), Some(FlashKernel::Tiled), None] {
                    match bench_attention(&gpu, b, h, t, hd, Some(16), kernel, backward) {
                        Ok(r) => rows.push(r),
                        Err(e) => println!("attention {kernel:?} b{b} h{h} t{t} d{hd}: skipped ({e})"),
                    }
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
    if keep("softmax") {
        rows.push(bench_softmax(&gpu, 16 * 4 * 176, 176)?);
    }
    if keep("rms_norm") {
        rows.push(bench_rms_norm(&gpu, 16 * 176, 64)?);
    }
    if keep("attention") {
        for backward in [false, true] {
            for flash in [false, true] {
                rows.push(bench_attention(&gpu, 16, 4, 176, 16, None, flash.then_some(FlashKernel::Auto), backward)?);
                // the plain path's score matrix may exceed the binding limit; the flash kernels
                // may exceed a software driver's loop budget
                match bench_attention(&gpu, 8, 8, 1024, 64, None, flash.then_some(FlashKernel::Auto), backward) {
                    Ok(r) => rows.push(r),
                    Err(e) => {
                        println!("attention {} b8 h8 t1024 d64: skipped ({e})", if flash { "flash" } else { "plain" })
                    }
                }
            }
        }
    }
    if keep("cross") {
        for backward in [false, true] {
            rows.push(bench_cross_attention(&gpu, 16, 4, 128, 128, 4, backward)?);
            rows.push(bench_cross_attention(&gpu, 8, 4, 256, 4096, 4, backward)?);
        }
    }
    if keep("conv") {
        use enma::ops::conv_causal::ConvMethod::{Auto, Direct, Im2col};
        let im2col = Im2col { chunk_rows: None };
        for backward in [false, true] {
            // Auto: the implicit kernels where they apply (8-lane subgroups), as the library runs
            for conv in [im2col, Direct, Auto] {
                // advection-tiny: batch 32, 21 frames, 128 points, 16 channels (first res block)
                rows.push(bench_conv(&gpu, "advection-tiny", &[32, 21, 128, 16], 16, 3, 3, conv, backward)?);
                // its widest res block: 32 points, 64 channels
                rows.push(bench_conv(&gpu, "advection-tiny w64", &[32, 21, 32, 64], 64, 3, 3, conv, backward)?);
                // its decoder's output convolution to one channel
                rows.push(bench_conv(&gpu, "advection-tiny out", &[32, 20, 128, 16], 1, 7, 7, conv, backward)?);
            }
            // vorticity: 31 frames, 64 × 64, 16 channels (batch 1: one sample of the batch of 8)
            for conv in [im2col, Auto] {
                rows.push(bench_conv(&gpu, "vorticity", &[1, 31, 64, 64, 16], 16, 3, 3, conv, backward)?);
            }
        }
    }
    if keep("vae") {
        rows.push(bench_vae_step(&gpu, 32, 64, false)?);
        rows.push(bench_vae_step(&gpu, 32, 64, true)?);
    }
    if keep("generator") {
        rows.push(bench_generator_step(&gpu, 32, false)?);
        rows.push(bench_generator_step(&gpu, 32, true)?);
    }
    if keep("flow") {
        // one unmasking step of a rollout batch: 16 trajectories × 16 samples, ~3 of 16 tokens
        for fused in [false, true] {
            rows.push(bench_flow_sample(&gpu, 768, 5, fused)?);
        }
    }
    if keep("train") {
        rows.push(bench_train_step(&gpu, 64, 2, 16, 176)?);
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
