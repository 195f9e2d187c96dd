//! The autotuner: choices measured once per shape class, kept in the cache file, reloaded
//! without measuring, overridden by pinned choices, replaced by the built-in rules when off.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use enma::ops::{self, MatmulKernel};
use enma::{Gpu, GpuOptions, Tensor, TuneSettings};

use crate::common::{assert_close, rand_vec};

fn cache(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enma-tune-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

fn gpu_with(dir: &Path, enabled: bool) -> Gpu {
    let tune = TuneSettings { enabled, cache_dir: Some(dir.to_path_buf()) };
    Gpu::new(GpuOptions { tune: Some(tune), ..Default::default() }).expect("an adapter")
}

/// A 48 × 40 × 36 product through the library's choice, checked against the CPU.
fn product(g: &Gpu) -> String {
    let (m, n, k) = (48, 40, 36);
    let (a, b) = (rand_vec(m * k, 1, -1.0, 1.0), rand_vec(k * n, 2, -1.0, 1.0));
    let c = ops::matmul_with(
        &Tensor::from_slice(g, &a, &[m, k]).unwrap(),
        &Tensor::from_slice(g, &b, &[k, n]).unwrap(),
        None,
        false,
        false,
        None,
    )
    .unwrap()
    .to_vec()
    .unwrap();
    let want: Vec<f32> = (0..m * n)
        .map(|e| (0..k).map(|i| a[e / n * k + i] as f64 * b[i * n + e % n] as f64).sum::<f64>() as f32)
        .collect();
    assert_close("tuned matmul", &c, &want, 1e-4, 1e-4);
    let used = g.tune_used();
    let (key, pick) = used.iter().find(|(k, _)| k.starts_with("matmul 64x64x64")).expect("a matmul choice");
    let names: Vec<String> = MatmulKernel::candidates(g, m, n, k).1.into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(pick), "{key} -> {pick} is not one of {names:?}");
    key.clone()
}

#[test]
fn choices_are_measured_once_cached_and_reloaded() {
    let dir = cache("reload");
    let g = gpu_with(&dir, true);
    let key = product(&g);
    let file = g.tune_cache_file().expect("a cache file");
    assert!(file.starts_with(&dir), "{file:?}");
    let table = g.tune_table();
    let measured = &table[&key];
    assert!(measured.times_ms.len() >= 2, "every candidate timed: {measured:?}");
    assert!(measured.times_ms.values().all(|t| t.is_finite() && *t > 0.0));
    let bytes = std::fs::read(&file).unwrap();

    // a second Gpu on the same cache uses the stored choice and measures nothing
    let g2 = gpu_with(&dir, true);
    let reloaded = &g2.tune_table()[&key];
    assert_eq!(reloaded.pick, measured.pick);
    for (name, t) in &measured.times_ms {
        assert!((reloaded.times_ms[name] - t).abs() <= 1e-9 * t, "{name}: {t} reloaded as {:?}", reloaded.times_ms);
    }
    product(&g2);
    assert_eq!(g2.tune_used()[&key], measured.pick);
    assert_eq!(std::fs::read(&file).unwrap(), bytes, "a cached choice was measured again");

    // an edited cache is obeyed
    let other = if measured.pick == "shared-128x128" { "tiled-4x4-wg16x16" } else { "shared-128x128" };
    let text = String::from_utf8(bytes)
        .unwrap()
        .replace(&format!("\"pick\": \"{}\"", measured.pick), &format!("\"pick\": \"{other}\""));
    std::fs::write(&file, text).unwrap();
    let g3 = gpu_with(&dir, true);
    product(&g3);
    assert_eq!(g3.tune_used()[&key], other);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pinned_choices_win_and_off_uses_the_rules() {
    let dir = cache("pinned");
    // off: the built-in rule, nothing measured or written
    let g = gpu_with(&dir, false);
    assert!(!g.tuning_enabled());
    let key = product(&g);
    let (rule, names) = MatmulKernel::candidates(&g, 48, 40, 36);
    assert_eq!(g.tune_used()[&key], names[rule].0);
    assert!(g.tune_table().is_empty() && !dir.exists(), "ENMA_TUNE=off measured something");

    // pinned choices win over the rules and over the cache
    for (enabled, pin) in [(false, "shared-128x128"), (true, "tiled-4x4-wg16x16")] {
        let g = gpu_with(&dir, enabled);
        g.pin_tune_choices(&BTreeMap::from([(key.clone(), pin.to_string())]));
        product(&g);
        assert_eq!(g.tune_used()[&key], pin);
    }
    // a pin that names no candidate of the op is ignored
    let g = gpu_with(&dir, false);
    g.pin_tune_choices(&BTreeMap::from([(key.clone(), "no-such-kernel".to_string())]));
    product(&g);
    assert_eq!(g.tune_used()[&key], names[rule].0);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_damaged_cache_is_replaced_and_damaged_run_choices_are_errors() {
    let dir = cache("damaged");
    let file = gpu_with(&dir, true).tune_cache_file().unwrap();
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"{ not json").unwrap();
    let g = gpu_with(&dir, true);
    assert!(g.tune_table().is_empty());
    let key = product(&g);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&key), "the cache was not rewritten: {text}");

    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    assert!(enma::gpu::tune::read_choices(&run.join("tune.json")).unwrap().is_none());
    std::fs::write(run.join("tune.json"), b"[1, 2").unwrap();
    let e = enma::gpu::tune::read_choices(&run.join("tune.json")).unwrap_err().to_string();
    assert!(e.contains("tune.json") && e.contains("delete the file"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
