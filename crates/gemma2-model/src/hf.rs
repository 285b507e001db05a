//! Loading of Hugging Face checkpoint folders: `config.json` and safetensors weights,
//! single-file or sharded, renamed to GGUF names with Gemma's norm offset folded in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gguf_format::GgmlType;
use safetensors::{Dtype, SafeTensors};

use crate::error::ModelError;
use crate::hf_config::{read_hf_config, HfConfig};
use crate::names::{hf_to_gguf, is_norm_weight, Mapped};
use crate::tensor::{RawTensor, TensorData};

/// Name of the single-file weights of a checkpoint.
const SINGLE_FILE: &str = "model.safetensors";

/// Name of the index that lists the shards of a sharded checkpoint.
const SHARD_INDEX: &str = "model.safetensors.index.json";

/// A Hugging Face checkpoint read into memory under GGUF tensor names.
#[derive(Debug)]
pub(crate) struct HfCheckpoint {
    pub hf: HfConfig,
    /// Tensors by GGUF name. Norm weights are F32 and already include Gemma's `+ 1`.
    pub tensors: BTreeMap<String, RawTensor>,
    /// `tokenizer.json` when the folder has one.
    pub tokenizer_json: Option<PathBuf>,
}

/// Reads `config.json` and every safetensors shard of the checkpoint in `dir`.
pub(crate) fn read_checkpoint(dir: &Path) -> Result<HfCheckpoint, ModelError> {
    let hf = read_hf_config(&dir.join("config.json"))?;

    let mut tensors = BTreeMap::new();
    for shard in shard_paths(dir)? {
        read_shard(&shard, hf.multimodal_prefix, &mut tensors)?;
    }

    let tokenizer_json = Some(dir.join("tokenizer.json")).filter(|p| p.is_file());
    Ok(HfCheckpoint {
        hf,
        tensors,
        tokenizer_json,
    })
}

/// Lists the safetensors files of a checkpoint: `model.safetensors`, or the distinct files
/// named by the `weight_map` of `model.safetensors.index.json`.
fn shard_paths(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let single = dir.join(SINGLE_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }

    let index_path = dir.join(SHARD_INDEX);
    if !index_path.is_file() {
        return Err(ModelError::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("neither {SINGLE_FILE} nor {SHARD_INDEX} found; is this a Hugging Face checkpoint folder?"),
            ),
        ));
    }

    let invalid = |message: String| ModelError::Safetensors {
        path: index_path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&index_path).map_err(|e| ModelError::io(&index_path, e))?;
    let index: serde_json::Value = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let weight_map = index
        .get("weight_map")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| invalid("missing object 'weight_map'".into()))?;

    let mut files: Vec<&str> = Vec::new();
    for (tensor, file) in weight_map {
        let file = file
            .as_str()
            .ok_or_else(|| invalid(format!("weight_map entry '{tensor}' is {file}, expected a file name")))?;
        if Path::new(file).components().count() != 1 {
            return Err(invalid(format!(
                "weight_map entry '{tensor}' points to '{file}', expected a file in the same folder"
            )));
        }
        if !files.contains(&file) {
            files.push(file);
        }
    }
    files.sort_unstable();
    Ok(files.into_iter().map(|f| dir.join(f)).collect())
}

/// Reads one safetensors file into `tensors`, renaming and converting as it goes.
fn read_shard(
    path: &Path,
    multimodal: bool,
    tensors: &mut BTreeMap<String, RawTensor>,
) -> Result<(), ModelError> {
    let file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    // SAFETY: the map is read-only and dropped before this function returns; a concurrent
    // truncation of the file by another process is outside what a loader can defend against.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
    let invalid = |message: String| ModelError::Safetensors {
        path: path.to_owned(),
        message,
    };
    let st = SafeTensors::deserialize(&map).map_err(|e| invalid(e.to_string()))?;

    for (hf_name, view) in st.tensors() {
        let gguf_name = match hf_to_gguf(&hf_name, multimodal) {
            Mapped::Keep(name) => name,
            Mapped::Skip => continue,
            Mapped::Unknown => {
                return Err(invalid(format!(
                    "tensor '{hf_name}' is not part of a Gemma 2/3 text model"
                )))
            }
        };

        let ggml_type = match view.dtype() {
            Dtype::F32 => GgmlType::F32,
            Dtype::F16 => GgmlType::F16,
            Dtype::BF16 => GgmlType::BF16,
            other => {
                return Err(invalid(format!(
                    "tensor '{hf_name}' has dtype {other:?}; only F32, F16 and BF16 are supported"
                )))
            }
        };

        // safetensors lists the slowest dimension first, GGUF the contiguous one (ne[0]).
        let dims: Vec<u64> = view.shape().iter().rev().map(|&d| d as u64).collect();

        let raw = if is_norm_weight(&hf_name) {
            RawTensor {
                ggml_type: GgmlType::F32,
                dims,
                data: TensorData::Owned(Arc::new(norm_plus_one(ggml_type, view.data()))),
            }
        } else {
            RawTensor {
                ggml_type,
                dims,
                data: TensorData::Owned(Arc::new(view.data().to_vec())),
            }
        };

        if tensors.insert(gguf_name.clone(), raw).is_some() {
            return Err(invalid(format!(
                "tensor '{hf_name}' (GGUF '{gguf_name}') appears twice in the checkpoint"
            )));
        }
    }
    Ok(())
}

/// Converts a Gemma norm weight `w` to little-endian F32 bytes of `w + 1`.
///
/// llama.cpp's converter upcasts BF16 to F32 before adding, but adds to F16 weights in F16
/// (the sum is rounded to f16), so this does the same.
fn norm_plus_one(dtype: GgmlType, bytes: &[u8]) -> Vec<u8> {
    let values: Vec<f32> = match dtype {
        GgmlType::F16 => bytes
            .chunks_exact(2)
            .map(|c| {
                let w = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
                half::f16::from_f32(w + 1.0).to_f32()
            })
            .collect(),
        GgmlType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32() + 1.0)
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) + 1.0)
            .collect(),
    };
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
