//! Loading and saving weights under their PyTorch names.
//!
//! - [`load_tensors`] reads a safetensors file, or a PyTorch `.pth`/`.pt` file
//!   through candle's pickle reader, either a bare `state_dict` or a training
//!   checkpoint holding one under `"state_dict"` (as `train_semantic.py` of U-TAE
//!   saves them).
//! - [`save_safetensors`] writes a `VarMap` plus the [`Buffers`] (running
//!   statistics) atomically: a temporary file in the same folder renamed into place,
//!   so a crash never leaves a half-written file under the final name.
//! - [`load_weights`] is its counterpart: it sets every variable of a `VarMap` and
//!   every buffer from a weight file, so a model built in another process computes
//!   exactly what the saved one did. (`VarMap::load` alone restores the variables
//!   but not the running statistics of BatchNorm, which evaluation-mode forwards
//!   use.)

use std::collections::HashMap;
use std::path::Path;

use sits_core::io::IfExists;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use crate::error::{ModelError, Result};
use crate::nn::Buffers;

fn weights_err(path: &Path, reason: impl std::fmt::Display) -> ModelError {
    ModelError::Weights {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// All tensors of a weight file, by name. `.safetensors` files are read directly;
/// `.pth`/`.pt`/`.bin` through the pickle reader, looking inside `"state_dict"`
/// when the file is a checkpoint dictionary.
pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let named = |e: candle_core::Error| weights_err(path, e);
    match ext.as_str() {
        "safetensors" => candle_core::safetensors::load(path, device).map_err(named),
        "pth" | "pt" | "bin" | "ckpt" | "tar" => {
            // A checkpoint dictionary first, else a bare state_dict.
            let tensors = match candle_core::pickle::read_all_with_key(path, Some("state_dict")) {
                Ok(t) if !t.is_empty() => t,
                _ => candle_core::pickle::read_all(path).map_err(named)?,
            };
            if tensors.is_empty() {
                return Err(weights_err(
                    path,
                    "no tensor found (neither a state_dict nor a checkpoint with `state_dict`)",
                ));
            }
            tensors
                .into_iter()
                .map(|(k, v)| {
                    Ok((
                        k.strip_prefix("module.").map(str::to_string).unwrap_or(k),
                        v.to_device(device).map_err(named)?,
                    ))
                })
                .collect()
        }
        _ => Err(weights_err(
            path,
            "unknown weight format (expected .safetensors or .pth)",
        )),
    }
}

/// A `VarBuilder` over the tensors of a weight file (see [`load_tensors`]).
pub fn var_builder(path: &Path, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
    Ok(VarBuilder::from_tensors(
        load_tensors(path, device)?,
        dtype,
        device,
    ))
}

/// Sets every variable of `vars` and every buffer of `buffers` from the weight file
/// at `path` (any format [`load_tensors`] reads), converting to each one's dtype.
/// Returns how many tensors were set. Fails, naming the file and the tensor, when
/// the file lacks a variable or a buffer of the model or has it in another shape;
/// tensors of the file that the model does not have (an optimiser state, a
/// pretext decoder not built this time) are ignored.
pub fn load_weights(path: &Path, vars: &VarMap, buffers: &Buffers) -> Result<usize> {
    set_weights(&load_tensors(path, &Device::Cpu)?, path, vars, buffers)
}

/// [`load_weights`] on tensors already read from `source` (named in the errors),
/// for callers that need other tensors of the same file too, such as an optimiser
/// state in a training checkpoint.
pub fn set_weights(
    tensors: &HashMap<String, Tensor>,
    source: &Path,
    vars: &VarMap,
    buffers: &Buffers,
) -> Result<usize> {
    let set = |name: &str, var: &candle_core::Var| -> Result<()> {
        let t = tensors
            .get(name)
            .ok_or_else(|| weights_err(source, format!("no tensor `{name}`")))?;
        if t.dims() != var.dims() {
            return Err(weights_err(
                source,
                format!(
                    "`{name}` has shape {:?}, the model expects {:?}",
                    t.dims(),
                    var.dims()
                ),
            ));
        }
        t.to_dtype(var.dtype())
            .and_then(|t| t.to_device(var.device()))
            .and_then(|t| var.set(&t))
            .map_err(|e| weights_err(source, format!("`{name}`: {e}")))
    };
    let mut n = 0;
    for (name, var) in vars
        .data()
        .lock()
        .map_err(|_| weights_err(source, "the VarMap lock is poisoned"))?
        .iter()
    {
        set(name, var)?;
        n += 1;
    }
    for (name, var) in buffers.vars() {
        set(&name, &var)?;
        n += 1;
    }
    Ok(n)
}

/// Writes the trainable variables and the buffers to `path` as safetensors,
/// atomically. Names are the PyTorch names the models were built with. An existing
/// `path` is refused unless `if_exists` is [`IfExists::Replace`] (and is never a
/// folder).
pub fn save_safetensors(
    path: &Path,
    vars: &VarMap,
    buffers: &Buffers,
    if_exists: IfExists,
) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() && if_exists == IfExists::Replace => {}
        Ok(_) => {
            return Err(ModelError::Exists {
                path: path.to_path_buf(),
                reason: "exists; choose another output or ask to replace it \
                         (IfExists::Replace, which replaces files only)"
                    .into(),
            })
        }
        Err(_) => {}
    }
    let mut all: HashMap<String, Tensor> = vars
        .data()
        .lock()
        .map_err(|_| weights_err(path, "the VarMap lock is poisoned"))?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    for (k, v) in buffers.tensors() {
        if all.insert(k.clone(), v).is_some() {
            return Err(weights_err(
                path,
                format!("`{k}` is both a variable and a buffer"),
            ));
        }
    }
    save_tensors_atomic(path, &all)
}

/// Writes named tensors as safetensors with [`sits_core::io::write_atomic_with`]:
/// readers see the old file or the complete new one.
pub fn save_tensors_atomic(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    sits_core::io::write_atomic_with(path, |_, tmp| {
        candle_core::safetensors::save(tensors, tmp).map_err(std::io::Error::other)
    })
    .map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}
