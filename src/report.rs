//! Pictures and reports of trained runs: training-loss curves, space–time images (1D) or frames
//! (2D) of truth / ensemble mean / error, the ensemble mean with ±2σ bands at chosen points, the
//! error over the rollout horizon, and the `report.md` of the quickstart.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::plot::{self, Canvas, Heatmap, LinePlot, Series};
use crate::run::{GeneratorEval, SplitEval};

/// (step, loss) of a run's `metrics.jsonl`.
pub fn read_losses(run: &Path) -> Result<(Vec<f32>, Vec<f32>)> {
    let path = run.join("metrics.jsonl");
    let text =
        std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| Error::invalid("metrics", format!("{}: {e}", path.display())))?;
        if let (Some(s), Some(l)) = (v["step"].as_f64(), v["loss"].as_f64()) {
            x.push(s as f32);
            y.push(l as f32);
        }
    }
    Ok((x, y))
}

/// The training loss of each run (`(label, run folder)`), one panel per run, log scale.
pub fn loss_curves(runs: &[(&str, &Path)]) -> Result<Canvas> {
    let mut panels = Vec::new();
    for (label, dir) in runs {
        let (x, y) = read_losses(dir)?;
        panels.push(plot::lines(&LinePlot {
            title: format!("{label} training loss"),
            x_label: "step".into(),
            y_label: "loss".into(),
            series: vec![Series { label: (*label).to_string(), x, y, ..Default::default() }],
            log_y: true,
        })?);
    }
    Ok(plot::grid(panels, 2))
}

/// Ensemble mean and standard deviation of `samples` `[K, n]`.
fn mean_std(samples: &[f32], k: usize) -> (Vec<f32>, Vec<f32>) {
    let n = samples.len() / k.max(1);
    let mut mean = vec![0f32; n];
    let mut var = vec![0f32; n];
    for j in 0..k {
        for (m, v) in mean.iter_mut().zip(&samples[j * n..(j + 1) * n]) {
            *m += v / k as f32;
        }
    }
    for j in 0..k {
        for ((s, v), m) in var.iter_mut().zip(&samples[j * n..(j + 1) * n]).zip(&mean) {
            *s += (v - m).powi(2) / k as f32;
        }
    }
    (mean, var.into_iter().map(f32::sqrt).collect())
}

/// Channel `c` of a trajectory `[T, C, P]` as `[T, P]`.
fn channel(traj: &[f32], t: usize, c: usize, points: usize, ch: usize) -> Vec<f32> {
    (0..t).flat_map(|ti| traj[(ti * c + ch) * points..][..points].iter().copied()).collect()
}

/// The example rollout of a split evaluation, checked against the trajectory shape `[T, C, S..]`.
struct Example<'a> {
    t: usize,
    c: usize,
    spatial: &'a [usize],
    points: usize,
    k: usize,
    truth: &'a [f32],
    samples: &'a [f32],
}

impl<'a> Example<'a> {
    fn of(e: &'a SplitEval, shape: &'a [usize]) -> Result<Example<'a>> {
        if shape.len() < 3 {
            return Err(Error::invalid("plot", format!("trajectory shape {shape:?} is not [T, C, S..]")));
        }
        let (t, c, spatial) = (shape[0], shape[1], &shape[2..]);
        let points: usize = spatial.iter().product();
        let k = e.scores.samples.max(1);
        let (truth, samples) = (&e.example.0, &e.example.1);
        if truth.len() != t * c * points || samples.len() != k * truth.len() {
            return Err(Error::invalid("plot", "the rollout example does not match the trajectory shape"));
        }
        Ok(Example { t, c, spatial, points, k, truth, samples })
    }
}

/// Truth / ensemble mean / error images of one rollout: one space–time panel row in 1D, frames
/// at three times in 2D. `shape` is `[T, C, S..]`.
pub fn rollout_images(e: &SplitEval, shape: &[usize], context: usize, title: &str) -> Result<Canvas> {
    let Example { t, c, spatial, points, k, truth, samples } = Example::of(e, shape)?;
    let (mean, _) = mean_std(samples, k);
    let tr = channel(truth, t, c, points, 0);
    let mn = channel(&mean, t, c, points, 0);
    let err: Vec<f32> = mn.iter().zip(&tr).map(|(a, b)| a - b).collect();
    let lo = tr.iter().chain(&mn).copied().filter(|v| v.is_finite()).fold(f32::INFINITY, f32::min);
    let hi = tr.iter().chain(&mn).copied().filter(|v| v.is_finite()).fold(f32::NEG_INFINITY, f32::max);
    let range = (lo < hi).then_some((lo, hi));
    let panel = |title: &str, data: &[f32], rows, cols, x: &str, y: &str, diverging| {
        let data = data.to_vec();
        (title.to_string(), data, rows, cols, x.to_string(), y.to_string(), diverging)
    };
    let mut rows: Vec<Vec<_>> = Vec::new();
    if spatial.len() == 1 {
        rows.push(vec![
            panel("truth", &tr, t, points, "x", "time (frame)", false),
            panel(
                &format!("ensemble mean (first {context} frames observed)"),
                &mn,
                t,
                points,
                "x",
                "time (frame)",
                false,
            ),
            panel("mean - truth", &err, t, points, "x", "time (frame)", true),
        ]);
    } else {
        let (h, w) = (spatial[0], spatial[1]);
        let times = [context.min(t - 1), (context + t) / 2, t - 1];
        for &ti in &times {
            let f = |v: &[f32]| v[ti * points..(ti + 1) * points].to_vec();
            rows.push(vec![
                panel(&format!("truth, frame {ti}"), &f(&tr), h, w, "x", "y", false),
                panel(&format!("ensemble mean, frame {ti}"), &f(&mn), h, w, "x", "y", false),
                panel("mean - truth", &f(&err), h, w, "x", "y", true),
            ]);
        }
    }
    let mut canvases = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let panels: Vec<Heatmap> = row
            .iter()
            .map(|(title, data, r, cl, x, y, div)| Heatmap {
                title: title.clone(),
                data,
                rows: *r,
                cols: *cl,
                x_label: x.clone(),
                y_label: y.clone(),
                diverging: *div,
                range: if *div { None } else { range },
            })
            .collect();
        canvases.push(plot::heatmaps(&panels, if i == 0 { title } else { "" })?);
    }
    Ok(plot::grid(canvases, 1))
}

/// The ensemble mean ± 2σ against the truth over time at three points (channel 0).
pub fn uncertainty_bands(e: &SplitEval, shape: &[usize], context: usize, title: &str) -> Result<Canvas> {
    let Example { t, c, spatial, points, k, truth, samples } = Example::of(e, shape)?;
    let (mean, std) = mean_std(samples, k);
    let picks: Vec<(usize, String)> = if spatial.len() == 1 {
        [1, 2, 3].iter().map(|q| (q * points / 4, format!("x = {}", q * points / 4))).collect()
    } else {
        let (h, w) = (spatial[0], spatial[1]);
        [1, 2, 3].iter().map(|q| ((h / 2) * w + q * w / 4, format!("(x, y) = ({}, {})", q * w / 4, h / 2))).collect()
    };
    let frames: Vec<f32> = (0..t).map(|f| f as f32).collect();
    let mut panels = Vec::new();
    for (p, label) in picks {
        let at = |v: &[f32]| (0..t).map(|ti| v[ti * c * points + p]).collect::<Vec<f32>>();
        let (m, s, y) = (at(&mean), at(&std), at(truth));
        let lower = m.iter().zip(&s).map(|(m, s)| m - 2.0 * s).collect();
        let upper = m.iter().zip(&s).map(|(m, s)| m + 2.0 * s).collect();
        panels.push(plot::lines(&LinePlot {
            title: format!("{title}, {label} (first {context} frames observed)"),
            x_label: "time (frame)".into(),
            y_label: "value".into(),
            series: vec![
                Series {
                    label: format!("mean +- 2 std ({k} samples)"),
                    x: frames.clone(),
                    y: m,
                    band: Some((lower, upper)),
                    ..Default::default()
                },
                Series {
                    label: "truth".into(),
                    x: frames.clone(),
                    y,
                    color: Some(plot::BLACK),
                    dashed: true,
                    ..Default::default()
                },
            ],
            log_y: false,
        })?);
    }
    Ok(plot::grid(panels, 3))
}

/// Relative L2 of the ensemble mean over the rollout horizon, per protocol and split.
pub fn horizon_errors(e: &GeneratorEval) -> Result<Canvas> {
    let mut series = Vec::new();
    for (protocol, first, list, dashed) in
        [("temporal", e.context_frames, &e.temporal, false), ("IVP", 1, &e.ivp, true)]
    {
        for s in list.iter() {
            let x = (0..s.scores.horizon.len()).map(|i| (first + i) as f32).collect();
            let y = s.scores.horizon.iter().map(|&v| v as f32).collect();
            series.push(Series { label: format!("{protocol}, {}", s.split), x, y, dashed, ..Default::default() });
        }
    }
    plot::lines(&LinePlot {
        title: "error over the rollout horizon (ensemble mean)".into(),
        x_label: "frame".into(),
        y_label: "relative L2".into(),
        series,
        log_y: false,
    })
}

/// Writes every picture of a generator evaluation into `out`: `loss.png` (both stages),
/// `rollout_<split>.png`, `uncertainty_<split>.png` (temporal conditioning) and `horizon.png`.
pub fn write_plots(e: &GeneratorEval, vae_run: &Path, gen_run: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|source| Error::Io { path: out.display().to_string(), source })?;
    let mut written = Vec::new();
    let mut save = |name: &str, c: Canvas| -> Result<()> {
        let path = out.join(name);
        c.save_png(&path)?;
        written.push(path);
        Ok(())
    };
    save("loss.png", loss_curves(&[("VAE", vae_run), ("generator", gen_run)])?)?;
    for s in &e.temporal {
        let what = if s.split == "test" { "In-D" } else { "Out-D" };
        let title = format!("{what} test trajectory 0");
        save(&format!("rollout_{}.png", s.split), rollout_images(s, &e.frame_shape, e.context_frames, &title)?)?;
        save(&format!("uncertainty_{}.png", s.split), uncertainty_bands(s, &e.frame_shape, e.context_frames, &title)?)?;
    }
    save("horizon.png", horizon_errors(e)?)?;
    Ok(written)
}

/// The paper's relative L2 (temporal conditioning, Table 2: In-D, Out-D) of ENMA on `dataset`.
pub fn paper_reference(dataset: crate::data::generate::PdeName) -> (f64, f64) {
    use crate::data::generate::PdeName::*;
    match dataset {
        Advection => (3.95e-2, 5.30e-1),
        Combined => (7.86e-3, 1.02e-1),
        GrayScott => (3.40e-2, 1.44e-1),
        Wave => (1.45e-1, 4.89e-1),
        Vorticity => (7.58e-2, 3.45e-1),
    }
}

/// What a quickstart run measured, for [`markdown_report`].
pub struct ReportInputs<'a> {
    pub config: &'a crate::config::RunConfig,
    pub adapter: String,
    pub vae_seconds: f64,
    pub gen_seconds: f64,
    pub eval_seconds: f64,
    pub vae_rows: &'a [(String, String, f64)],
    pub eval: &'a GeneratorEval,
    /// Plot files, relative to the report's folder.
    pub plots: Vec<String>,
}

/// The results table of a generator evaluation in Markdown, with the paper's numbers beside
/// ours.
pub fn results_table(e: &GeneratorEval, dataset: crate::data::generate::PdeName) -> String {
    let (paper_in, paper_out) = paper_reference(dataset);
    let mut s = String::from(
        "| protocol | split | trajectories | rel. L2 (samples) | rel. L2 (ensemble mean) | repeat last frame | CRPS | RMSCE | paper (ENMA, full size) |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for (protocol, list) in [("temporal conditioning", &e.temporal), ("IVP with context", &e.ivp)] {
        for x in list.iter() {
            let sc = &x.scores;
            let (split, paper) = if x.split == "test" { ("In-D", paper_in) } else { ("Out-D", paper_out) };
            let paper = if protocol.starts_with("temporal") { format!("{paper:.2e}") } else { "—".into() };
            s += &format!(
                "| {protocol} | {split} | {} | {:.3e} | {:.3e} | {:.3e} | {:.3e} | {:.3e} | {paper} |\n",
                sc.trajectories, sc.rel_l2, sc.rel_l2_mean, sc.rel_l2_repeat_last, sc.crps, sc.rmsce
            );
        }
    }
    s
}

/// `report.md` of a quickstart run.
pub fn markdown_report(r: &ReportInputs) -> Result<String> {
    let c = r.config;
    let dataset = c.dataset()?;
    let mut s = format!("# ENMA run `{}`\n\n", c.name);
    s += &format!(
        "Dataset **{}** ({} size), adapter **{}**. VAE: {} steps (batch {}), {:.0} s; generator: {} steps (batch {}), {:.0} s; evaluation {:.0} s.\n\n",
        dataset.name(),
        c.data.size,
        r.adapter,
        c.vae.train.steps,
        c.vae.train.batch,
        r.vae_seconds,
        c.generator.train.steps,
        c.generator.train.batch,
        r.gen_seconds,
        r.eval_seconds
    );
    if c.name == "quickstart" || c.data.size == "tiny" {
        s += "> This small budget shows the whole pipeline working, not the paper's accuracy (the paper trains full-size models for 8 A100-hours). \
              For more: `enma quickstart --preset advection-tiny` (the full tiny schedule) or `enma quickstart --preset advection-small` on a GPU.\n\n";
    }
    s += "## Auto-encoder reconstruction (relative L2)\n\n| split | relative L2 |\n|---|---|\n";
    for (_, label, v) in r.vae_rows {
        s += &format!("| {} | {v:.3e} |\n", label.trim());
    }
    s += &format!(
        "\n## Generation ({} samples per trajectory, temporal conditioning on {} frames)\n\n",
        r.eval.samples, r.eval.context_frames
    );
    s += &results_table(r.eval, dataset);
    s += "\nRelative L2 and CRPS: lower is better. *Repeat last frame* is the naive baseline of copying the last observed frame. \
          RMSCE near 0 means a calibrated ensemble.\n\n## Pictures\n\n";
    for p in &r.plots {
        s += &format!("![{p}]({p})\n\n");
    }
    s += "## Configuration\n\n```toml\n";
    s += &c.to_toml()?;
    s += "```\n";
    Ok(s)
}
