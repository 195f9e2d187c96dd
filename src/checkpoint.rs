//! Checkpoints: every parameter of a [`ParamStore`] in one `model.safetensors` (readable from
//! Python), metadata as `meta.json`, both written atomically (temporary file, then rename).

use std::collections::HashMap;
use std::path::Path;

use crate::autodiff::ParamStore;
use crate::error::{Error, Result};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = crate::data::hdf5::temp_path(path);
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Saves the parameters and `meta` (JSON) into folder `dir`.
pub fn save(dir: &Path, store: &ParamStore, meta: &serde_json::Value) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let exported = store.export()?;
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
        exported.into_iter().map(|(n, s, v)| (n, s, bytemuck::cast_slice::<f32, u8>(&v).to_vec())).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, s, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).map(|v| (n.clone(), v))
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::invalid("checkpoint", e.to_string()))?;
    let mut info = HashMap::new();
    info.insert("format".to_string(), "enma".to_string());
    let data = safetensors::serialize(views, Some(info)).map_err(|e| Error::invalid("checkpoint", e.to_string()))?;
    write_atomic(&dir.join("model.safetensors"), &data)?;
    let meta = serde_json::to_vec_pretty(meta).map_err(|e| Error::invalid("checkpoint", e.to_string()))?;
    write_atomic(&dir.join("meta.json"), &meta)
}

/// Loads parameters saved by [`save`] into `store` (which must hold the same names and shapes)
/// and returns the metadata.
pub fn load(dir: &Path, store: &ParamStore) -> Result<serde_json::Value> {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::invalid("checkpoint", format!("{}: not a valid safetensors file: {e}", path.display())))?;
    for p in store.params() {
        let name = store.name(&p)?.to_string();
        let t = st
            .tensor(&name)
            .map_err(|_| Error::invalid("checkpoint", format!("{}: no tensor `{name}`", path.display())))?;
        if t.dtype() != safetensors::Dtype::F32 {
            return Err(Error::invalid("checkpoint", format!("tensor `{name}` is {:?}, expected F32", t.dtype())));
        }
        let values: Vec<f32> = bytemuck::pod_collect_to_vec(t.data());
        store.set(&p, t.shape(), &values)?;
    }
    let mpath = dir.join("meta.json");
    let meta = std::fs::read(&mpath).map_err(io(&mpath))?;
    serde_json::from_slice(&meta).map_err(|e| Error::invalid("checkpoint", format!("{}: {e}", mpath.display())))
}
