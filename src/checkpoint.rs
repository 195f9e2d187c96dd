//! Checkpoints: every parameter of a [`ParamStore`] in one `model.safetensors` (readable from
//! Python), metadata as `meta.json`, both written atomically (temporary file, then rename).

use std::collections::HashMap;
use std::path::Path;

use crate::autodiff::ParamStore;
use crate::error::{Error, Result};
use crate::optim::OptimState;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = crate::data::hdf5::temp_path(path);
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Writes named f32 tensors `(name, shape, values)` as one safetensors file, atomically.
fn write_tensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)], info: HashMap<String, String>) -> Result<()> {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, v)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), bytemuck::cast_slice(v))
                .map(|t| (n.clone(), t))
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::invalid("checkpoint", e.to_string()))?;
    let data = safetensors::serialize(views, Some(info)).map_err(|e| Error::invalid("checkpoint", e.to_string()))?;
    write_atomic(path, &data)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(io(path))
}

fn parse<'b>(path: &Path, bytes: &'b [u8]) -> Result<safetensors::SafeTensors<'b>> {
    safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
        Error::invalid(
            "checkpoint",
            format!("{}: not a valid safetensors file ({e}); the file is damaged", path.display()),
        )
    })
}

/// The f32 values of tensor `name` of `st`, which must have `shape`.
fn tensor_values(path: &Path, st: &safetensors::SafeTensors, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    let t = st.tensor(name).map_err(|_| {
        Error::invalid("checkpoint", format!("{}: no tensor `{name}` (expected shape {shape:?})", path.display()))
    })?;
    if t.dtype() != safetensors::Dtype::F32 {
        return Err(Error::invalid(
            "checkpoint",
            format!("{}: tensor `{name}` is {:?}, expected F32", path.display(), t.dtype()),
        ));
    }
    if t.shape() != shape {
        return Err(Error::invalid(
            "checkpoint",
            format!(
                "{}: tensor `{name}` has shape {:?}, the model expects {shape:?} (a checkpoint of another configuration?)",
                path.display(),
                t.shape()
            ),
        ));
    }
    Ok(bytemuck::pod_collect_to_vec(t.data()))
}

/// The file metadata: one key, `enma`, holding a JSON object (`{"step": 6}` in training
/// checkpoints). One key keeps the header deterministic (safetensors takes a `HashMap`), so the
/// same weights give the same bytes.
fn info(step: Option<u64>) -> HashMap<String, String> {
    let value = match step {
        Some(s) => serde_json::json!({ "step": s }),
        None => serde_json::json!({}),
    };
    HashMap::from([("enma".to_string(), value.to_string())])
}

fn write_meta(dir: &Path, meta: &serde_json::Value) -> Result<()> {
    let meta = serde_json::to_vec_pretty(meta).map_err(|e| Error::invalid("checkpoint", e.to_string()))?;
    write_atomic(&dir.join("meta.json"), &meta)
}

/// Saves the parameters and `meta` (JSON) into folder `dir`.
pub fn save(dir: &Path, store: &ParamStore, meta: &serde_json::Value) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    write_tensors(&dir.join("model.safetensors"), &store.export()?, info(None))?;
    write_meta(dir, meta)
}

/// Saves a resumable checkpoint after `state.step` steps: the parameters, the optimiser state
/// (`optimizer.safetensors`: moments `adamw.m`, `adamw.v`) and `meta` with `"step"` set. Each
/// file is written atomically and names its step, so files of different steps (a crash between
/// two writes) are detected on loading.
pub fn save_training(dir: &Path, store: &ParamStore, state: &OptimState, meta: &serde_json::Value) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let moments = [
        ("adamw.m".to_string(), vec![state.m.len()], state.m.clone()),
        ("adamw.v".to_string(), vec![state.v.len()], state.v.clone()),
    ];
    write_tensors(&dir.join("optimizer.safetensors"), &moments, info(Some(state.step)))?;
    write_tensors(&dir.join("model.safetensors"), &store.export()?, info(Some(state.step)))?;
    let mut meta = meta.clone();
    meta["step"] = serde_json::json!(state.step);
    write_meta(dir, &meta)
}

/// The step a safetensors file's metadata names.
fn bytes_step(bytes: &[u8]) -> Option<u64> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).ok()?;
    let v: serde_json::Value = serde_json::from_str(meta.metadata().as_ref()?.get("enma")?).ok()?;
    v["step"].as_u64()
}

/// Loads parameters saved by [`save`] into `store` (which must hold the same names and shapes)
/// and returns the metadata.
pub fn load(dir: &Path, store: &ParamStore) -> Result<serde_json::Value> {
    let path = dir.join("model.safetensors");
    let bytes = read_file(&path)?;
    let st = parse(&path, &bytes)?;
    let mut expected = std::collections::HashSet::new();
    for p in store.params() {
        let name = store.name(&p)?.to_string();
        let values = tensor_values(&path, &st, &name, store.shape(&p)?)?;
        store.set(&p, store.shape(&p)?, &values)?;
        expected.insert(name);
    }
    if let Some(extra) = st.names().into_iter().find(|n| !expected.contains(*n)) {
        return Err(Error::invalid(
            "checkpoint",
            format!(
                "{}: tensor `{extra}` is not a parameter of this model (a checkpoint of another configuration?)",
                path.display()
            ),
        ));
    }
    let mpath = dir.join("meta.json");
    let meta: serde_json::Value = serde_json::from_slice(&read_file(&mpath)?)
        .map_err(|e| Error::invalid("checkpoint", format!("{}: {e}", mpath.display())))?;
    if let Some(step) = meta.get("step").and_then(|s| s.as_u64()) {
        let model_step = bytes_step(&bytes);
        if model_step.is_some_and(|s| s != step) {
            return Err(Error::invalid(
                "checkpoint",
                format!(
                    "{}: parameters of step {model_step:?} but meta.json of step {step}; the save was interrupted — delete the folder or restore a backup",
                    dir.display()
                ),
            ));
        }
    }
    Ok(meta)
}

/// The optimiser state of a checkpoint written by [`save_training`].
pub fn load_optimizer(dir: &Path, step: u64) -> Result<OptimState> {
    let path = dir.join("optimizer.safetensors");
    let bytes = read_file(&path)?;
    let st = parse(&path, &bytes)?;
    let file_step = bytes_step(&bytes);
    if file_step != Some(step) {
        return Err(Error::invalid(
            "checkpoint",
            format!(
                "{}: optimiser state of step {file_step:?}, the checkpoint is at step {step}; the save was interrupted",
                path.display()
            ),
        ));
    }
    let n = st.tensor("adamw.m").map(|t| t.shape().iter().product::<usize>()).unwrap_or(0);
    Ok(OptimState {
        step,
        m: tensor_values(&path, &st, "adamw.m", &[n])?,
        v: tensor_values(&path, &st, "adamw.v", &[n])?,
    })
}
