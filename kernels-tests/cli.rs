//! The command line end to end on the `micro` preset (seconds): generate → train both stages
//! (with an interrupted and resumed run) → eval → plot → quickstart, checking the files
//! produced, that the metrics are finite and improve, config errors and damaged checkpoints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn enma(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enma")).args(args).current_dir(dir).output().expect("the enma binary runs")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = enma(dir, args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "enma {args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

/// The error message of a command that must fail (and not panic).
fn fails(dir: &Path, args: &[&str]) -> String {
    let out = enma(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "enma {args:?} should fail");
    assert!(stderr.starts_with("error: "), "enma {args:?}: not a clean error:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enma-cli-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64().unwrap())
        .collect()
}

fn all_finite(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) => n.as_f64().is_some_and(f64::is_finite),
        serde_json::Value::Object(m) => m.values().all(all_finite),
        serde_json::Value::Array(a) => a.iter().all(all_finite),
        _ => true,
    }
}

#[test]
fn the_cli_runs_the_whole_pipeline_and_resumes_exactly() {
    let dir = scratch("pipeline");
    let d = dir.as_path();
    ok(d, &["generate", "--dataset", "advection", "--out", "data/advection-tiny", "--quiet"]);
    let steps = ["--set", "vae.train.steps=24", "--set", "gen.train.steps=12"];
    let with = |args: &[&'static str]| -> Vec<&str> { args.iter().copied().chain(steps).collect() };

    // VAE: an uninterrupted run, and one stopped after 10 steps then resumed
    ok(d, &with(&["train", "--preset", "micro", "--out", "runs/vae", "--quiet"]));
    ok(d, &with(&["train", "--preset", "micro", "--out", "runs/vae-b", "--until", "10", "--quiet"]));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("runs/vae-b/meta.json")).unwrap()).unwrap();
    assert_eq!((meta["step"].as_u64(), meta["complete"].as_bool()), (Some(10), Some(false)));
    ok(d, &["train", "--resume", "runs/vae-b", "--quiet"]);
    let read = |p: &str| std::fs::read(d.join(p)).unwrap();
    assert!(read("runs/vae/model.safetensors") == read("runs/vae-b/model.safetensors"), "resumed VAE differs");
    assert_eq!(losses(&d.join("runs/vae")), losses(&d.join("runs/vae-b")));
    let l = losses(&d.join("runs/vae"));
    assert_eq!(l.len(), 24);
    assert!(l.iter().all(|v| v.is_finite()) && l[23] < l[0], "VAE loss {l:?}");
    for f in ["config.toml", "meta.json", "model.safetensors", "optimizer.safetensors", "metrics.jsonl", "tune.json"] {
        assert!(d.join("runs/vae").join(f).is_file(), "{f}");
    }

    // generator, also resumed
    ok(
        d,
        &with(&[
            "train",
            "--preset",
            "micro",
            "--stage",
            "generator",
            "--vae",
            "runs/vae",
            "--out",
            "runs/gen",
            "--quiet",
        ]),
    );
    ok(
        d,
        &with(&[
            "train",
            "--preset",
            "micro",
            "--stage",
            "generator",
            "--vae",
            "runs/vae",
            "--out",
            "runs/gen-b",
            "--until",
            "5",
            "--quiet",
        ]),
    );
    ok(d, &["train", "--resume", "runs/gen-b", "--quiet"]);
    assert!(read("runs/gen/model.safetensors") == read("runs/gen-b/model.safetensors"), "resumed generator differs");
    let l = losses(&d.join("runs/gen"));
    assert!(l.iter().all(|v| v.is_finite()) && l.len() == 12);

    // evaluation: finite JSON for both stages and both protocols
    let v: serde_json::Value = serde_json::from_str(ok(d, &["eval", "--run", "runs/vae", "--json"]).trim()).unwrap();
    assert!(v["test_rel_l2_100"].as_f64().is_some() && all_finite(&v), "{v}");
    let v: serde_json::Value = serde_json::from_str(ok(d, &["eval", "--run", "runs/gen", "--json"]).trim()).unwrap();
    for protocol in ["temporal", "ivp"] {
        for split in ["test", "ood"] {
            let s = &v[protocol][split];
            assert!(s["rel_l2"].as_f64().is_some() && s["crps"].as_f64().is_some(), "{protocol} {split}: {v}");
        }
    }
    assert!(all_finite(&v["temporal"]["test"]["rel_l2"]) && all_finite(&v["ivp"]["ood"]["crps"]), "{v}");

    // rollouts written as HDF5 like the data files: 3 trajectories × 2 samples
    let v: serde_json::Value = serde_json::from_str(
        ok(d, &["rollout", "--run", "runs/gen", "--trajectories", "3", "--samples", "2", "--out", "pred.h5", "--json"])
            .trim(),
    )
    .unwrap();
    assert_eq!((v["trajectories"].as_u64(), v["samples"].as_u64()), (Some(3), Some(2)), "{v}");
    let file = enma::data::hdf5::read(&d.join("pred.h5")).unwrap();
    let (_, pred) = file.splits.into_values().next().unwrap();
    assert_eq!(pred.shape, vec![6, 20, 1, 128]);
    assert!(pred.data.iter().all(|v| v.is_finite()));
    assert_eq!(pred.env[..2], [pred.env[0], pred.env[0]]);

    // plots
    let listed = ok(d, &["plot", "--run", "runs/gen"]);
    for f in ["loss.png", "rollout_test.png", "uncertainty_ood.png", "horizon.png"] {
        let p = d.join("runs/gen/plots").join(f);
        let bytes = std::fs::read(&p).unwrap_or_else(|_| panic!("{f} missing; listed:\n{listed}"));
        assert!(bytes.starts_with(b"\x89PNG"), "{f}");
    }

    // damaged and mismatched checkpoints are clear errors naming the file or tensor
    std::fs::create_dir_all(d.join("runs/broken")).unwrap();
    for f in ["config.toml", "meta.json", "model.safetensors"] {
        std::fs::copy(d.join("runs/vae").join(f), d.join("runs/broken").join(f)).unwrap();
    }
    let model = read("runs/vae/model.safetensors");
    std::fs::write(d.join("runs/broken/model.safetensors"), &model[..model.len() / 2]).unwrap();
    let e = fails(d, &["eval", "--run", "runs/broken"]);
    assert!(e.contains("model.safetensors") && e.contains("damaged"), "{e}");
    let mut meta: serde_json::Value = serde_json::from_slice(&read("runs/vae/meta.json")).unwrap();
    meta["config"]["width"] = serde_json::json!(6);
    std::fs::write(d.join("runs/broken/meta.json"), meta.to_string()).unwrap();
    std::fs::write(d.join("runs/broken/model.safetensors"), &model).unwrap();
    let e = fails(d, &["eval", "--run", "runs/broken"]);
    assert!(e.contains("has shape") && e.contains("expects"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn configuration_mistakes_are_errors_naming_the_key() {
    let dir = scratch("config");
    let d = dir.as_path();
    let e = fails(d, &["config", "--preset", "micro", "--set", "gen.widht=8"]);
    assert!(e.contains("gen.widht"), "{e}");
    let e = fails(d, &["train", "--preset", "micro", "--set", "gen.train.context_prob=2", "--data", "."]);
    assert!(e.contains("gen.train.context_prob"), "{e}");
    let e = fails(d, &["train", "--preset", "nope"]);
    assert!(e.contains("advection-tiny"), "{e}");
    std::fs::write(d.join("mine.toml"), "extends = \"micro\"\n[vae]\nwidth = \"wide\"\n").unwrap();
    let e = fails(d, &["config", "--preset", "mine.toml"]);
    assert!(e.contains("vae.width") && e.contains("integer"), "{e}");
    let e = fails(d, &["train", "--preset", "micro", "--data", "nowhere"]);
    assert!(e.contains("enma generate"), "{e}");
    let e = fails(d, &["train", "--resume", "nowhere"]);
    assert!(e.contains("nowhere"), "{e}");
    // the resolved configuration prints and reads back
    let text = ok(d, &["config", "--preset", "micro", "--set", "gen.width=32"]);
    let c = enma::config::RunConfig::from_toml(&text, "printed").unwrap();
    assert_eq!((c.generator.width, c.name.as_str()), (32, "micro"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn files_on_a_finer_grid_are_subsampled_as_configured() {
    use enma::data::generate::PdeName;
    use enma::data::pde::Split;
    let dir = scratch("subsample");
    let d = dir.as_path();
    ok(d, &["generate", "--dataset", "advection", "--out", "data", "--quiet"]);
    let mut cfg =
        enma::config::RunConfig::load("micro", &["data.time_step=2".into(), "data.space_step=4".into()]).unwrap().data;
    cfg.max_test = 3;
    let got = enma::run::load_data(&d.join("data"), &cfg, PdeName::Advection, Split::InD).unwrap();
    let full = enma::run::load_split(&d.join("data"), PdeName::Advection, Split::InD).unwrap();
    assert_eq!(got.shape, vec![3, full.frames() / 2, 1, full.spatial()[0] / 4]);
    for i in 0..3 {
        for t in 0..got.frames() {
            for x in 0..got.spatial()[0] {
                let want = full.trajectory(i)[(2 * t) * full.spatial()[0] + 4 * x];
                assert_eq!(got.trajectory(i)[t * got.spatial()[0] + x], want, "trajectory {i}, frame {t}, point {x}");
            }
        }
    }
    assert_eq!(got.env[..3], full.env[..3]);
    let e = fails(d, &["config", "--preset", "micro", "--set", "data.space_step=0"]);
    assert!(e.contains("data.space_step"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_quickstart_writes_a_report_plots_and_results() {
    let dir = scratch("quickstart");
    let d = dir.as_path();
    let out = ok(d, &["quickstart", "--preset", "micro", "--out", "runs/qs", "--quiet"]);
    assert!(out.contains("temporal conditioning") && out.contains("report"), "{out}");
    let report = std::fs::read_to_string(d.join("runs/qs/report.md")).unwrap();
    assert!(
        report.contains("| temporal conditioning | In-D |") && report.contains("plots/rollout_test.png"),
        "{report}"
    );
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("runs/qs/results.json")).unwrap()).unwrap();
    assert!(results["generator"]["temporal"]["test"]["rel_l2"].as_f64().is_some_and(f64::is_finite), "{results}");
    // the headline numbers are the In-D temporal scores, restated
    let t = &results["generator"]["temporal"]["test"];
    let ratio = t["rel_l2_mean"].as_f64().unwrap() / t["rel_l2_repeat_last"].as_f64().unwrap();
    // (JSON text parses back to within an ulp or so, not always to the same bits)
    let restated = results["temporal_in_d"]["mean_over_repeat_last"].as_f64().unwrap();
    assert!((restated - ratio).abs() <= 1e-12 * ratio.abs(), "{restated} against {ratio}: {results}");
    assert_eq!(results["temporal_in_d"]["first_frame"], t["horizon"][0], "{results}");
    assert!(results["seconds"]["total"].as_f64().is_some_and(|s| s > 0.0), "{results}");
    for f in ["loss.png", "rollout_test.png", "rollout_ood.png", "uncertainty_test.png", "horizon.png"] {
        assert!(d.join("runs/qs/plots").join(f).is_file(), "{f}");
    }
    // a second call reuses both trained stages
    let again = ok(d, &["quickstart", "--preset", "micro", "--out", "runs/qs", "--quiet"]);
    assert_eq!(again.matches("already trained").count(), 2, "{again}");
    std::fs::remove_dir_all(&dir).ok();
}
