//! The F32 base every cell is quantized from and compared against.

use std::path::{Path, PathBuf};

use gguf_format::{GgmlType, GgufFile};
use gemma2_model::{convert_hf_to_gguf, ConvertOptions};
use kquant::pipeline::{quantize_model, QuantizeOptions};
use kquant::plan::FileType;
use serde::{Deserialize, Serialize};

use crate::cache::{cache_key, read_cached, sha256_file, write_json, Cached};
use crate::error::StudyError;
use crate::runner::{Runner, Timer, QUANTIZE_UNITS};
use crate::TOOL_VERSION;

/// The base model on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaseModel {
    /// The F32 GGUF file.
    pub path: PathBuf,
    /// sha256 of the input model (for a folder: of its files' hashes).
    pub source_sha256: String,
    /// sha256 of the base file.
    pub sha256: String,
    /// Whether the input held quantized tensors, so the base is their exact dequantization.
    pub from_quantized: bool,
    /// The step's cache key, which every later key includes.
    pub key: String,
}

/// Makes `out/models/base-f32.gguf` from the study's model, or reuses it.
///
/// A GGUF input is written as F32 with `allow_requantize`, so quantized tensors are
/// dequantized exactly, as `llama-quantize --allow-requantize MODEL base.gguf F32` does.
/// A Hugging Face folder is converted with F32 weights.
pub(crate) fn make_base(runner: &mut Runner<'_>) -> Result<BaseModel, StudyError> {
    let model = runner.spec.model.clone();
    let step = "base F32";
    runner.announce(step);

    let source_sha256 = if model.is_dir() { hash_folder(&model)? } else { sha256_file(&model)? };
    let key = cache_key(&[("step", "base"), ("tool", TOOL_VERSION), ("model", &source_sha256)]);
    let path = runner.folder("models").join("base-f32.gguf");
    let record = runner.folder("cache").join("base.json");

    if let Some(cached) = read_cached::<BaseModel>(&record, &key) {
        if path.is_file() {
            runner.record(step, cached.seconds, false);
            runner.advance(QUANTIZE_UNITS, step);
            return Ok(cached.value);
        }
    }

    let timer = Timer::start();
    let from_quantized = if model.is_dir() {
        let options = ConvertOptions { out_type: Some(GgmlType::F32), name: None };
        convert_hf_to_gguf(&model, &path, &options).map_err(|e| StudyError::Model { path: model.clone(), source: e })?;
        false
    } else {
        let source = GgufFile::open(&model).map_err(|e| StudyError::InvalidSpec(format!("model {}: {e}", model.display())))?;
        let from_quantized = source.tensors().iter().any(|t| t.ggml_type.is_quantized());
        let mut options = QuantizeOptions::new(FileType::F32);
        options.allow_requantize = true;
        options.cancel = runner.cancel.clone();
        std::fs::create_dir_all(runner.folder("models")).map_err(|e| StudyError::io(runner.folder("models"), e))?;
        quantize_model(&source, &path, &options, &mut |_| {}).map_err(|e| StudyError::Quantize { cell: "base".into(), source: e })?;
        from_quantized
    };

    let base = BaseModel { sha256: sha256_file(&path)?, path, source_sha256, from_quantized, key: key.clone() };
    let seconds = timer.seconds();
    write_json(&record, &Cached { key, seconds, value: base.clone() })?;
    runner.record(step, seconds, true);
    runner.advance(QUANTIZE_UNITS, step);
    Ok(base)
}

/// Hashes a Hugging Face folder: the sha256 of every regular file's name and sha256, in
/// name order.
fn hash_folder(folder: &Path) -> Result<String, StudyError> {
    let entries = std::fs::read_dir(folder).map_err(|e| StudyError::io(folder, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| StudyError::io(folder, e))?.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();

    let mut parts = Vec::new();
    for path in &files {
        parts.push((crate::runner::file_name(path), sha256_file(path)?));
    }
    let borrowed: Vec<(&str, &str)> = parts.iter().map(|(n, h)| (n.as_str(), h.as_str())).collect();
    Ok(cache_key(&borrowed))
}
