//! Parsing of Hugging Face `config.json` files (`gemma2` and `gemma3_text`).

use std::path::Path;

use serde_json::Value;

use crate::config::{Arch, Config, DEFAULT_ROPE_BASE, GEMMA2_DEFAULT_SLIDING_WINDOW, GEMMA3_LOCAL_ROPE_BASE};
use crate::error::ModelError;

/// Gemma 3's global RoPE base when `rope_theta` is absent (transformers' default).
const GEMMA3_DEFAULT_ROPE_THETA: f64 = 1_000_000.0;

/// The parts of a Hugging Face checkpoint's `config.json` that the model needs.
#[derive(Debug, Clone)]
pub(crate) struct HfConfig {
    pub config: Config,
    /// Id of the beginning-of-sequence token (`bos_token_id`, 2 for every Gemma).
    pub bos_token_id: u32,
    /// Id of the end-of-sequence token (`eos_token_id`, the first when it is a list).
    pub eos_token_id: u32,
    /// Whether tensor names carry the multimodal `language_model.` prefix.
    pub multimodal_prefix: bool,
}

/// Reads and parses `config.json` at `path`.
pub(crate) fn read_hf_config(path: &Path) -> Result<HfConfig, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    let root: Value = serde_json::from_str(&text).map_err(|e| ModelError::InvalidHfConfig {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    parse_hf_config(&root).map_err(|message| ModelError::InvalidHfConfig {
        path: path.to_owned(),
        message,
    })?
}

/// Parses a `config.json` value; the outer error is a message for
/// [`ModelError::InvalidHfConfig`], the inner one an unsupported architecture.
fn parse_hf_config(root: &Value) -> Result<Result<HfConfig, ModelError>, String> {
    let model_type = root
        .get("model_type")
        .and_then(Value::as_str)
        .ok_or("missing string field 'model_type'")?;

    // The multimodal Gemma 3 checkpoints nest the text model's settings in `text_config`.
    let (arch, fields, multimodal_prefix) = match model_type {
        "gemma2" => (Arch::Gemma2, root, false),
        "gemma3_text" => (Arch::Gemma3, root, false),
        "gemma3" => {
            let text = root
                .get("text_config")
                .ok_or("model_type 'gemma3' without a 'text_config' object")?;
            (Arch::Gemma3, text, true)
        }
        other => return Ok(Err(ModelError::UnsupportedArchitecture(other.to_owned()))),
    };
    let fields = Fields(fields);

    let n_embd = fields.usize("hidden_size", None)?;
    let n_head = fields.usize("num_attention_heads", None)?;
    let head_dim = fields.usize("head_dim", Some(n_embd / n_head.max(1)))?;
    let n_layer = fields.usize("num_hidden_layers", None)?;
    let query_pre_attn_scalar = fields.f64("query_pre_attn_scalar", Some(head_dim as f64))?;

    let (default_window, rope_base_global, rope_base_local) = match arch {
        Arch::Gemma2 => {
            let theta = fields.f64("rope_theta", Some(DEFAULT_ROPE_BASE as f64))?;
            (GEMMA2_DEFAULT_SLIDING_WINDOW, theta, theta)
        }
        Arch::Gemma3 => (
            4096,
            fields.f64("rope_theta", Some(GEMMA3_DEFAULT_ROPE_THETA))?,
            fields.f64("rope_local_base_freq", Some(GEMMA3_LOCAL_ROPE_BASE as f64))?,
        ),
    };

    let swa_pattern = swa_pattern(&fields, arch, n_layer)?;

    let config = Config {
        arch,
        n_embd,
        n_layer,
        n_head,
        n_head_kv: fields.usize("num_key_value_heads", Some(n_head))?,
        head_dim,
        n_ff: fields.usize("intermediate_size", None)?,
        n_vocab: fields.usize("vocab_size", None)?,
        n_ctx_train: fields.usize("max_position_embeddings", Some(8192))?,
        rms_eps: fields.f64("rms_norm_eps", Some(1e-6))? as f32,
        sliding_window: fields.usize("sliding_window", Some(default_window))?,
        swa_pattern,
        attn_softcap: fields.optional_f64("attn_logit_softcapping")?.map(|c| c as f32),
        final_softcap: fields.optional_f64("final_logit_softcapping")?.map(|c| c as f32),
        rope_base_global: rope_base_global as f32,
        rope_base_local: rope_base_local as f32,
        rope_scale: linear_rope_factor(&fields)?,
        query_scale: (1.0 / query_pre_attn_scalar.sqrt()) as f32,
    };

    let eos_token_id = match root.get("eos_token_id").or_else(|| fields.0.get("eos_token_id")) {
        Some(Value::Array(ids)) => ids.first().and_then(Value::as_u64).unwrap_or(1),
        Some(value) => value.as_u64().unwrap_or(1),
        None => 1,
    };
    let bos_token_id = root
        .get("bos_token_id")
        .or_else(|| fields.0.get("bos_token_id"))
        .and_then(Value::as_u64)
        .unwrap_or(2);

    Ok(Ok(HfConfig {
        config,
        bos_token_id: bos_token_id as u32,
        eos_token_id: eos_token_id as u32,
        multimodal_prefix,
    }))
}

/// Derives the local/global layer pattern from `layer_types` when present, else from
/// `sliding_window_pattern`, else the family default; it must be periodic with one global
/// layer per period, as llama.cpp assumes.
fn swa_pattern(fields: &Fields<'_>, arch: Arch, n_layer: usize) -> Result<usize, String> {
    let Some(types) = fields.0.get("layer_types").and_then(Value::as_array) else {
        let pattern = fields
            .0
            .get("sliding_window_pattern")
            .or_else(|| fields.0.get("_sliding_window_pattern"))
            .and_then(Value::as_u64)
            .map_or(arch.default_swa_pattern(), |p| p as usize);
        return Ok(pattern);
    };

    let sliding: Vec<bool> = types
        .iter()
        .map(|t| match t.as_str() {
            Some("sliding_attention") => Ok(true),
            Some("full_attention") => Ok(false),
            _ => Err(format!("unknown entry {t} in 'layer_types' (expected \"sliding_attention\" or \"full_attention\")")),
        })
        .collect::<Result<_, _>>()?;
    if sliding.len() != n_layer {
        return Err(format!(
            "'layer_types' has {} entries but num_hidden_layers is {n_layer}",
            sliding.len()
        ));
    }

    let pattern = sliding.iter().position(|&s| !s).map_or(n_layer + 1, |first_global| first_global + 1);
    let periodic = sliding
        .iter()
        .enumerate()
        .all(|(il, &s)| s == (il % pattern < pattern - 1));
    if !periodic {
        return Err(format!(
            "'layer_types' {sliding:?} is not periodic with one global layer last in each period"
        ));
    }
    Ok(pattern)
}

/// Reads the linear factor of `rope_scaling` (1.0 when absent or null).
fn linear_rope_factor(fields: &Fields<'_>) -> Result<f32, String> {
    let Some(scaling) = fields.0.get("rope_scaling").filter(|v| !v.is_null()) else {
        return Ok(1.0);
    };
    let kind = scaling
        .get("rope_type")
        .or_else(|| scaling.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("linear");
    if kind != "linear" && kind != "default" {
        return Err(format!("rope_scaling type '{kind}' is not supported (only 'linear')"));
    }
    let factor = scaling.get("factor").and_then(Value::as_f64).unwrap_or(1.0);
    Ok(factor as f32)
}

/// Typed access to the fields of one JSON object.
struct Fields<'a>(&'a Value);

impl Fields<'_> {
    fn usize(&self, key: &str, default: Option<usize>) -> Result<usize, String> {
        match self.0.get(key).filter(|v| !v.is_null()) {
            Some(value) => value
                .as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| format!("field '{key}' is {value}, expected a non-negative integer")),
            None => default.ok_or_else(|| format!("missing field '{key}'")),
        }
    }

    fn f64(&self, key: &str, default: Option<f64>) -> Result<f64, String> {
        match self.optional_f64(key)? {
            Some(value) => Ok(value),
            None => default.ok_or_else(|| format!("missing field '{key}'")),
        }
    }

    fn optional_f64(&self, key: &str) -> Result<Option<f64>, String> {
        match self.0.get(key).filter(|v| !v.is_null()) {
            Some(value) => value
                .as_f64()
                .map(Some)
                .ok_or_else(|| format!("field '{key}' is {value}, expected a number")),
            None => Ok(None),
        }
    }
}
