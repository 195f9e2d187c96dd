//! The autotuner: ops with more than one kernel pick one by measuring the candidates on the
//! adapter in use, once per shape class, and remember the choice.
//!
//! A choice is keyed by `"<op> <class>"` (the op names its candidates and how it buckets shapes).
//! Choices live in a JSON file per adapter (name, backend, driver, driver info) and enma version
//! under the user's cache folder (`$ENMA_CACHE_DIR`, else `$XDG_CACHE_HOME/enma`, else
//! `~/.cache/enma`), in `tune/`. `ENMA_TUNE=off` (or [`TuneSettings::enabled`] = false) uses the
//! built-in rules instead and measures nothing. Choices can be pinned (a training run stores the
//! ones it used and `--resume` pins them), which wins over the cache and over `off`, so the same
//! choices give the same numbers.
//!
//! Measuring: every candidate runs once (compiling its pipeline), then is timed (GPU timestamps
//! where the adapter has them, else the wall clock between syncs) until it has at least 5
//! samples and 30 ms, at most 15 samples; the fastest median wins. The built-in rule's candidate
//! is timed first; a later one whose fastest sample is over twice the best median so far stops
//! sampling there, since it cannot win. A candidate that fails (e.g. a binding over the device's limit) is skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::context::Gpu;
use crate::error::{Error, Result};

/// How the tuner behaves. The default reads `ENMA_TUNE` and the cache folder's variables.
#[derive(Debug, Clone)]
pub struct TuneSettings {
    /// Measure candidates (true) or use the built-in rules (false).
    pub enabled: bool,
    /// The cache folder (`None`: keep choices in memory only).
    pub cache_dir: Option<PathBuf>,
}

impl Default for TuneSettings {
    fn default() -> Self {
        let enabled = !matches!(
            std::env::var("ENMA_TUNE").unwrap_or_default().to_ascii_lowercase().as_str(),
            "off" | "0" | "false" | "no"
        );
        TuneSettings { enabled, cache_dir: default_cache_dir() }
    }
}

/// `$ENMA_CACHE_DIR`, else `$XDG_CACHE_HOME/enma`, else `$HOME/.cache/enma`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("ENMA_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|p| p.join("enma")))
        .or_else(|| var("HOME").map(|p| p.join(".cache").join("enma")))
}

/// One measured (or pinned, or rule-made) choice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TuneChoice {
    /// The candidate picked.
    pub pick: String,
    /// Median milliseconds of each candidate measured (empty when not measured).
    #[serde(default)]
    pub times_ms: BTreeMap<String, f64>,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    enma: String,
    adapter: String,
    backend: String,
    driver: String,
    driver_info: String,
    choices: BTreeMap<String, TuneChoice>,
}

pub(crate) struct Tuner {
    settings: TuneSettings,
    file: Option<PathBuf>,
    header: (String, String, String, String),
    table: BTreeMap<String, TuneChoice>,
    pinned: BTreeMap<String, String>,
    used: BTreeMap<String, String>,
}

fn fnv64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

impl Tuner {
    pub(crate) fn new(settings: TuneSettings, name: &str, backend: &str, driver: &str, driver_info: &str) -> Tuner {
        let version = env!("CARGO_PKG_VERSION");
        let stem: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
            .collect::<String>()
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let id = fnv64(&format!("{name}\n{backend}\n{driver}\n{driver_info}\n{version}"));
        let file = settings.cache_dir.as_ref().map(|d| d.join("tune").join(format!("{stem}-{id:016x}.json")));
        let mut t = Tuner {
            settings,
            file,
            header: (name.into(), backend.into(), driver.into(), driver_info.into()),
            table: BTreeMap::new(),
            pinned: BTreeMap::new(),
            used: BTreeMap::new(),
        };
        if let Some(f) = &t.file {
            t.table = read_cache(f);
        }
        t
    }

    /// Adds one choice to the cache file, unless another process has stored one for `key`
    /// meanwhile: then that one is returned, so that every process on this adapter computes
    /// with the same kernels. The file is read and written under a lock file (a crashed holder's
    /// lock is ignored after 2 s) and replaced by a rename.
    fn save(&self, key: &str, choice: &TuneChoice) -> Result<Option<TuneChoice>> {
        let Some(f) = &self.file else { return Ok(None) };
        let dir = f.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.display().to_string(), source: e })?;
        let lock = f.with_extension("lock");
        let start = Instant::now();
        let held = loop {
            match std::fs::File::create_new(&lock) {
                Ok(_) => break true,
                Err(_) if start.elapsed() < Duration::from_secs(2) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => break false,
            }
        };
        let result = (|| {
            let mut choices = read_cache(f);
            if let Some(theirs) = choices.get(key) {
                return Ok(Some(theirs.clone()));
            }
            choices.insert(key.to_string(), choice.clone());
            let (adapter, backend, driver, driver_info) = self.header.clone();
            let c =
                CacheFile { enma: env!("CARGO_PKG_VERSION").into(), adapter, backend, driver, driver_info, choices };
            let bytes = serde_json::to_vec_pretty(&c).map_err(|e| Error::invalid("tuning cache", e.to_string()))?;
            crate::checkpoint::write_atomic(f, &bytes).map(|_| None)
        })();
        if held {
            let _ = std::fs::remove_file(&lock);
        }
        result
    }
}

/// The choices in a cache file; none when it is missing or damaged (only a lost speed-up: the
/// file is rewritten with the next choice).
fn read_cache(f: &Path) -> BTreeMap<String, TuneChoice> {
    std::fs::read(f)
        .ok()
        .and_then(|b| serde_json::from_slice::<CacheFile>(&b).ok())
        .map(|c| c.choices)
        .unwrap_or_default()
}

/// Median of a few samples.
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

impl Gpu {
    /// Whether the tuner measures candidates (`ENMA_TUNE` unset or not `off`).
    pub fn tuning_enabled(&self) -> bool {
        self.tuner().settings.enabled
    }

    /// The tuning cache file of this adapter, if choices are kept on disk.
    pub fn tune_cache_file(&self) -> Option<PathBuf> {
        self.tuner().file.clone()
    }

    /// Every choice known for this adapter (the cache, plus what this process measured).
    pub fn tune_table(&self) -> BTreeMap<String, TuneChoice> {
        self.tuner().table.clone()
    }

    /// The choices this `Gpu` has used so far (key → candidate), measured, cached, pinned or
    /// made by the built-in rules.
    pub fn tune_used(&self) -> BTreeMap<String, String> {
        self.tuner().used.clone()
    }

    /// Pins choices (e.g. those a training run stored): they win over the cache and over
    /// `ENMA_TUNE=off` wherever they name one of the op's candidates.
    pub fn pin_tune_choices(&self, choices: &BTreeMap<String, String>) {
        let mut t = self.tuner();
        t.pinned.extend(choices.iter().map(|(k, v)| (k.clone(), v.clone())));
    }

    fn tuner(&self) -> std::sync::MutexGuard<'_, Tuner> {
        self.inner.tuner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Picks one of `candidates` (name, value) for `op` on shapes of `class`: a pinned choice,
    /// else (tuning on) a cached or freshly measured one, else `candidates[rule]`. `run`
    /// records the op with one candidate on the real inputs; its results are thrown away. The
    /// GPU is synchronised before measuring, so call this outside of timing loops.
    pub fn tune<T: Clone>(
        &self,
        op: &str,
        class: &str,
        candidates: &[(String, T)],
        rule: usize,
        mut run: impl FnMut(&T) -> Result<()>,
    ) -> Result<T> {
        if candidates.is_empty() {
            return Err(Error::invalid(op, "the tuner was given no candidate"));
        }
        let rule = rule.min(candidates.len() - 1);
        let key = format!("{op} {class}");
        let find = |name: &str| candidates.iter().position(|(n, _)| n == name);
        let known = {
            let t = self.tuner();
            let pinned = t.pinned.get(&key).and_then(|n| find(n));
            let cached = t.table.get(&key).and_then(|c| find(&c.pick));
            match (pinned, t.settings.enabled, cached) {
                (Some(i), _, _) => Some(i),
                (None, false, _) => Some(rule),
                (None, true, Some(i)) => Some(i),
                _ if candidates.len() == 1 => Some(0),
                _ => None,
            }
        };
        let pick = match known {
            Some(i) => i,
            None => {
                let mut times = BTreeMap::new();
                let mut best: Option<(usize, Duration)> = None;
                self.sync()?;
                // The rule's candidate first: it is usually good, and sets the bar that lets the
                // slow ones stop early.
                let order = std::iter::once(rule).chain((0..candidates.len()).filter(|&i| i != rule));
                for i in order {
                    let (name, value) = &candidates[i];
                    let Some(d) = self.time_candidate(best.map(|(_, b)| b), || run(value)) else { continue };
                    times.insert(name.clone(), d.as_secs_f64() * 1e3);
                    if best.is_none_or(|(_, b)| d < b) {
                        best = Some((i, d));
                    }
                }
                let mut pick = best.map(|(i, _)| i).unwrap_or(rule);
                let mut choice = TuneChoice { pick: candidates[pick].0.clone(), times_ms: times };
                let mut t = self.tuner();
                // Not writable (read-only home, full disk): the choice still holds for this process.
                if let Ok(Some(theirs)) = t.save(&key, &choice)
                    && let Some(i) = find(&theirs.pick)
                {
                    (pick, choice) = (i, theirs);
                }
                t.table.insert(key.clone(), choice);
                pick
            }
        };
        self.tuner().used.insert(key, candidates[pick].0.clone());
        Ok(candidates[pick].1.clone())
    }

    /// Median time of `f` (GPU timestamps where the adapter has them, else the wall clock
    /// between syncs), or `None` when it fails. A candidate whose fastest sample is over twice
    /// `best` (the best median so far) cannot win and stops sampling there.
    fn time_candidate(&self, best: Option<Duration>, mut f: impl FnMut() -> Result<()>) -> Option<Duration> {
        f().ok()?;
        self.sync().ok()?;
        let mut samples: Vec<Duration> = Vec::new();
        let start = Instant::now();
        while samples.len() < 15 && (samples.len() < 5 || start.elapsed() < Duration::from_millis(30)) {
            let (_, d, _) = self.time(false, &mut f).ok()?;
            samples.push(d);
            if best.is_some_and(|b| samples.iter().min().is_some_and(|&m| m > 2 * b)) {
                break;
            }
        }
        Some(median(samples))
    }
}

/// The power of two at or above `n` (a shape bucket), at least 1.
pub fn bucket(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

/// Reads a run folder's `tune.json` (key → candidate), if there is one.
pub fn read_choices(path: &Path) -> Result<Option<BTreeMap<String, String>>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            Error::invalid(
                path.display().to_string(),
                format!("damaged tuning choices ({e}); delete the file to let the tuner choose again"),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io { path: path.display().to_string(), source: e }),
    }
}
