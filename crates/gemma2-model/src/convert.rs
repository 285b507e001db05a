//! Conversion of a Hugging Face checkpoint folder to a GGUF file, as llama.cpp's
//! `convert_hf_to_gguf.py` writes it for Gemma 2 and Gemma 3.

use std::path::Path;

use gguf_format::{GgmlType, GgufWriter, Metadata, Value};

use crate::config::{Arch, Config};
use crate::error::ModelError;
use crate::hf::read_checkpoint;
use crate::tensor::{decode_to_f32, RawTensor};
use crate::tokenizer::gguf_metadata_from_tokenizer_json;

/// `general.quantization_version` that llama.cpp's converter writes (ggml's
/// `GGML_QNT_VERSION`).
const QUANTIZATION_VERSION: u32 = 2;

/// Options of [`convert_hf_to_gguf`].
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Type of the 2-D weight tensors: `None` keeps each tensor's stored type; `Some` must
    /// be F32, F16 or BF16. Norm weights are always written as F32, as llama.cpp does.
    pub out_type: Option<GgmlType>,
    /// `general.name`; the folder name when `None`.
    pub name: Option<String>,
}

/// Summary of a finished [`convert_hf_to_gguf`] call.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertSummary {
    /// The hyperparameters written to the `{arch}.*` keys.
    pub config: Config,
    /// Number of tensors written.
    pub n_tensors: usize,
    /// Total size of the tensor data, in bytes.
    pub data_bytes: u64,
}

/// Converts the Hugging Face checkpoint in `dir` (see [`crate::Model::from_hf_dir`]) to a
/// GGUF file at `out`.
///
/// Tensors get their GGUF names, every `*norm.weight` gets Gemma's `+ 1` and is stored as
/// F32, and the tied `lm_head` is dropped. Metadata: `general.architecture`, `general.name`,
/// `general.file_type`, `general.quantization_version`, the `{arch}.*` hyperparameters
/// llama.cpp's converter writes, and the `tokenizer.ggml.*` keys when the folder has a
/// `tokenizer.json`. The file is written to a temporary file in the same folder
/// and renamed into place, so `out` is never left half-written.
///
/// NOTE: GGUF has no key for `query_pre_attn_scalar`, because llama.cpp infers the query
/// scale from the model size. A checkpoint whose scalar breaks that rule therefore loads
/// from GGUF with another scale than from safetensors.
///
/// # Errors
/// The loading errors of [`crate::Model::from_hf_dir`]; [`ModelError::InvalidInput`] for an
/// `out_type` other than F32/F16/BF16; [`ModelError::Gguf`] when writing fails.
pub fn convert_hf_to_gguf(
    dir: impl AsRef<Path>,
    out: impl AsRef<Path>,
    options: &ConvertOptions,
) -> Result<ConvertSummary, ModelError> {
    let dir = dir.as_ref();
    let out = out.as_ref();
    if let Some(t) = options.out_type {
        if !matches!(t, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
            return Err(ModelError::InvalidInput(format!(
                "output type {t:?} is not supported; choose F32, F16 or BF16 (quantize afterwards)"
            )));
        }
    }

    let checkpoint = read_checkpoint(dir)?;
    let config = checkpoint.hf.config.clone();
    config.validate()?;

    // Load through the model builder first, so that a missing tensor or a wrong shape is
    // reported before anything is written.
    let mut check = checkpoint.tensors.clone();
    crate::weights::collect_weights(&config, |name| check.remove(name))?;
    if let Some(name) = check.keys().next() {
        return Err(ModelError::InvalidInput(format!(
            "unexpected tensor '{name}' for a {}-layer model",
            config.n_layer
        )));
    }

    let mut tensors: Vec<(String, RawTensor)> = checkpoint.tensors.into_iter().collect();
    tensors.sort_by_key(|(name, _)| tensor_order(name));

    let file_type = options.out_type.unwrap_or_else(|| dominant_type(&tensors));
    let name = options.name.clone().unwrap_or_else(|| {
        dir.file_name()
            .map_or_else(|| "gemma".to_owned(), |n| n.to_string_lossy().into_owned())
    });
    let mut metadata = metadata(&config, &name, file_type, &checkpoint.hf)?;
    if let Some(path) = &checkpoint.tokenizer_json {
        let pairs = gguf_metadata_from_tokenizer_json(path, Some(config.n_vocab))
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        for (key, value) in pairs {
            metadata.set(key, value);
        }
    }

    let mut writer = GgufWriter::new(metadata);
    let mut converted: Vec<(GgmlType, &RawTensor, String)> = Vec::with_capacity(tensors.len());
    for (name, raw) in &tensors {
        let target = match options.out_type {
            Some(t) if raw.dims.len() == 2 => t,
            _ => raw.ggml_type,
        };
        writer
            .add_tensor(name.clone(), &raw.dims, target)
            .map_err(|e| gguf_error(out, e))?;
        converted.push((target, raw, name.clone()));
    }

    let mut data_bytes = 0u64;
    writer
        .write_to_path(out, |index, _info, sink| {
            let (target, raw, name) = &converted[index];
            let bytes = encode(name, raw, *target).map_err(|e| {
                gguf_format::GgufError::Write(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
            })?;
            data_bytes += bytes.len() as u64;
            sink.write_all(&bytes)?;
            Ok(())
        })
        .map_err(|e| gguf_error(out, e))?;

    Ok(ConvertSummary {
        config,
        n_tensors: converted.len(),
        data_bytes,
    })
}

/// Sorts `token_embd` first, then the blocks by number, then `output_norm`.
fn tensor_order(name: &str) -> (usize, String) {
    match name.strip_prefix("blk.").and_then(|rest| rest.split_once('.')) {
        Some((layer, suffix)) => (1 + layer.parse::<usize>().unwrap_or(usize::MAX - 2), suffix.to_owned()),
        None if name == "token_embd.weight" => (0, String::new()),
        None => (usize::MAX, name.to_owned()),
    }
}

/// Returns the type of the largest share of 2-D tensors, for `general.file_type`.
fn dominant_type(tensors: &[(String, RawTensor)]) -> GgmlType {
    let mut counts: Vec<(GgmlType, usize)> = Vec::new();
    for (_, raw) in tensors.iter().filter(|(_, raw)| raw.dims.len() == 2) {
        match counts.iter_mut().find(|(t, _)| *t == raw.ggml_type) {
            Some((_, n)) => *n += 1,
            None => counts.push((raw.ggml_type, 1)),
        }
    }
    counts.into_iter().max_by_key(|&(_, n)| n).map_or(GgmlType::F32, |(t, _)| t)
}

/// Returns llama's `general.file_type` code (`enum llama_ftype`) for a float type.
fn llama_ftype(ggml_type: GgmlType) -> u32 {
    match ggml_type {
        GgmlType::F16 => 1,
        GgmlType::BF16 => 32,
        _ => 0,
    }
}

/// Builds the metadata llama.cpp's converter writes for this configuration.
fn metadata(
    config: &Config,
    name: &str,
    file_type: GgmlType,
    hf: &crate::hf_config::HfConfig,
) -> Result<Metadata, ModelError> {
    let arch = config.arch.gguf_name();
    let key = |k: &str| format!("{arch}.{k}");
    let as_u32 = |field: &str, v: usize| -> Result<Value, ModelError> {
        u32::try_from(v).map(Value::U32).map_err(|_| ModelError::InvalidKey {
            key: format!("{arch}.{field}"),
            message: format!("{v} does not fit in u32"),
        })
    };

    let mut m = Metadata::new();
    m.set("general.architecture", Value::String(arch.into()));
    m.set("general.name", Value::String(name.into()));
    m.set("general.file_type", Value::U32(llama_ftype(file_type)));
    m.set("general.quantization_version", Value::U32(QUANTIZATION_VERSION));

    m.set(key("context_length"), as_u32("context_length", config.n_ctx_train)?);
    m.set(key("embedding_length"), as_u32("embedding_length", config.n_embd)?);
    m.set(key("block_count"), as_u32("block_count", config.n_layer)?);
    m.set(key("feed_forward_length"), as_u32("feed_forward_length", config.n_ff)?);
    m.set(key("attention.head_count"), as_u32("attention.head_count", config.n_head)?);
    m.set(key("attention.head_count_kv"), as_u32("attention.head_count_kv", config.n_head_kv)?);
    m.set(key("attention.layer_norm_rms_epsilon"), Value::F32(config.rms_eps));
    m.set(key("attention.key_length"), as_u32("attention.key_length", config.head_dim)?);
    m.set(key("attention.value_length"), as_u32("attention.value_length", config.head_dim)?);
    m.set(key("attention.sliding_window"), as_u32("attention.sliding_window", config.sliding_window)?);

    match config.arch {
        Arch::Gemma2 => {
            if let Some(cap) = config.attn_softcap {
                m.set(key("attn_logit_softcapping"), Value::F32(cap));
            }
            if let Some(cap) = config.final_softcap {
                m.set(key("final_logit_softcapping"), Value::F32(cap));
            }
            m.set(key("rope.freq_base"), Value::F32(config.rope_base_global));
        }
        Arch::Gemma3 => {
            m.set(key("rope.freq_base"), Value::F32(config.rope_base_global));
            if config.rope_scale != 1.0 {
                m.set(key("rope.scaling.type"), Value::String("linear".into()));
                m.set(key("rope.scaling.factor"), Value::F32(config.rope_scale));
            }
        }
    }

    m.set("tokenizer.ggml.bos_token_id", Value::U32(hf.bos_token_id));
    m.set("tokenizer.ggml.eos_token_id", Value::U32(hf.eos_token_id));
    Ok(m)
}

/// Returns the bytes of `raw` in `target` type (F32, F16 or BF16).
fn encode(name: &str, raw: &RawTensor, target: GgmlType) -> Result<Vec<u8>, ModelError> {
    if raw.ggml_type == target {
        return Ok(raw.data.bytes().to_vec());
    }

    let n_per_row = raw.dims.first().copied().unwrap_or(1) as usize;
    let n_values: usize = raw.dims.iter().product::<u64>() as usize;
    let mut values = vec![0.0f32; n_values];
    decode_to_f32(name, raw.ggml_type, raw.data.bytes(), n_per_row, &mut values)?;

    let bytes = match target {
        GgmlType::F16 => values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
        GgmlType::BF16 => values.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    };
    Ok(bytes)
}

fn gguf_error(path: &Path, e: gguf_format::GgufError) -> ModelError {
    ModelError::Gguf {
        path: path.to_owned(),
        message: e.to_string(),
    }
}
