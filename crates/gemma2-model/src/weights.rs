//! The model's tensors in their roles, checked against the configuration.

use gguf_format::GgmlType;

use crate::config::{Arch, Config};
use crate::error::ModelError;
use crate::tensor::{decode_to_f32, RawTensor, WeightTensor};

/// The tensors of one transformer block.
#[derive(Debug, Clone)]
pub(crate) struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub attn_q: WeightTensor,
    pub attn_k: WeightTensor,
    pub attn_v: WeightTensor,
    /// Gemma 3 only: RMSNorm weights over `head_dim` for Q and K.
    pub attn_q_norm: Option<Vec<f32>>,
    pub attn_k_norm: Option<Vec<f32>>,
    pub attn_output: WeightTensor,
    pub post_attention_norm: Vec<f32>,
    pub ffn_norm: Vec<f32>,
    pub ffn_gate: WeightTensor,
    pub ffn_up: WeightTensor,
    pub ffn_down: WeightTensor,
    pub post_ffw_norm: Vec<f32>,
}

/// Every tensor of a Gemma 2/3 model.
#[derive(Debug, Clone)]
pub(crate) struct Weights {
    pub token_embd: WeightTensor,
    /// The LM head when stored separately; `None` means it is tied to `token_embd`.
    pub output: Option<WeightTensor>,
    pub output_norm: Vec<f32>,
    pub layers: Vec<LayerWeights>,
}

impl Weights {
    /// Returns the LM head: `output.weight` when present, else `token_embd.weight`.
    pub(crate) fn lm_head(&self) -> &WeightTensor {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }
}

/// Takes the tensors of `config`'s architecture from `take` (a lookup by GGUF name) and
/// checks their shapes and types.
///
/// # Errors
/// [`ModelError::MissingTensor`], [`ModelError::WrongShape`] or
/// [`ModelError::UnsupportedTensorType`] naming the first bad tensor.
pub(crate) fn collect_weights(
    config: &Config,
    mut take: impl FnMut(&str) -> Option<RawTensor>,
) -> Result<Weights, ModelError> {
    let n_embd = config.n_embd;
    let q_dim = config.n_head * config.head_dim;
    let kv_dim = config.n_head_kv * config.head_dim;

    // llama.cpp keeps token_embd in the plain CPU buffer because GET_ROWS reads it too, so a
    // tied LM head multiplies with the plain kernels.
    let raw_embd = take("token_embd.weight").ok_or_else(|| ModelError::MissingTensor("token_embd.weight".into()))?;
    let token_embd = to_matrix("token_embd.weight".into(), raw_embd, n_embd, config.n_vocab, MatrixBuffer::Plain)?;

    let mut matrix = |name: String, n_cols: usize, n_rows: usize| -> Result<WeightTensor, ModelError> {
        let raw = take(&name).ok_or_else(|| ModelError::MissingTensor(name.clone()))?;
        to_matrix(name, raw, n_cols, n_rows, MatrixBuffer::Repack)
    };


    let mut layers = Vec::with_capacity(config.n_layer);
    for il in 0..config.n_layer {
        let name = |suffix: &str| format!("blk.{il}.{suffix}.weight");
        layers.push(LayerWeights {
            attn_q: matrix(name("attn_q"), n_embd, q_dim)?,
            attn_k: matrix(name("attn_k"), n_embd, kv_dim)?,
            attn_v: matrix(name("attn_v"), n_embd, kv_dim)?,
            attn_output: matrix(name("attn_output"), q_dim, n_embd)?,
            ffn_gate: matrix(name("ffn_gate"), n_embd, config.n_ff)?,
            ffn_up: matrix(name("ffn_up"), n_embd, config.n_ff)?,
            ffn_down: matrix(name("ffn_down"), config.n_ff, n_embd)?,
            attn_norm: Vec::new(),
            attn_q_norm: None,
            attn_k_norm: None,
            post_attention_norm: Vec::new(),
            ffn_norm: Vec::new(),
            post_ffw_norm: Vec::new(),
        });
    }
    drop(matrix);

    let mut vector = |name: String, n: usize| -> Result<Vec<f32>, ModelError> {
        let raw = take(&name).ok_or_else(|| ModelError::MissingTensor(name.clone()))?;
        to_vector(name, raw, n)
    };
    for (il, layer) in layers.iter_mut().enumerate() {
        let name = |suffix: &str| format!("blk.{il}.{suffix}.weight");
        layer.attn_norm = vector(name("attn_norm"), n_embd)?;
        layer.post_attention_norm = vector(name("post_attention_norm"), n_embd)?;
        layer.ffn_norm = vector(name("ffn_norm"), n_embd)?;
        layer.post_ffw_norm = vector(name("post_ffw_norm"), n_embd)?;
        if config.arch == Arch::Gemma3 {
            layer.attn_q_norm = Some(vector(name("attn_q_norm"), config.head_dim)?);
            layer.attn_k_norm = Some(vector(name("attn_k_norm"), config.head_dim)?);
        }
    }
    let output_norm = vector("output_norm.weight".into(), n_embd)?;
    drop(vector);

    let output = match take("output.weight") {
        Some(raw) => Some(to_matrix(
            "output.weight".into(),
            raw,
            n_embd,
            config.n_vocab,
            MatrixBuffer::Repack,
        )?),
        None => None,
    };

    Ok(Weights {
        token_embd,
        output,
        output_norm,
        layers,
    })
}

/// The llama.cpp CPU buffer a weight matrix is loaded into.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MatrixBuffer {
    /// The plain CPU buffer, for tensors that ops other than MUL_MAT also read.
    Plain,
    /// The `CPU_REPACK` buffer, which llama.cpp offers for every weight used only by MUL_MAT.
    Repack,
}

/// Checks that `raw` is a `n_cols x n_rows` matrix whose rows are whole blocks.
fn to_matrix(
    name: String,
    raw: RawTensor,
    n_cols: usize,
    n_rows: usize,
    buffer: MatrixBuffer,
) -> Result<WeightTensor, ModelError> {
    let expected = vec![n_cols as u64, n_rows as u64];
    if raw.dims != expected {
        return Err(ModelError::WrongShape {
            name,
            actual: raw.dims,
            expected,
        });
    }

    let block_size = raw.ggml_type.block_size();
    if n_cols % block_size != 0 {
        return Err(ModelError::UnsupportedTensorType {
            name,
            ggml_type: raw.ggml_type,
            reason: format!("rows of {n_cols} elements are not whole blocks of {block_size}"),
        });
    }

    let expected_bytes = n_cols / block_size * raw.ggml_type.type_size() * n_rows;
    if raw.data.bytes().len() != expected_bytes {
        return Err(ModelError::InvalidInput(format!(
            "tensor '{name}' has {} bytes, expected {expected_bytes} for {:?} {n_cols} x {n_rows}",
            raw.data.bytes().len(),
            raw.ggml_type
        )));
    }

    Ok(WeightTensor {
        name,
        ggml_type: raw.ggml_type,
        n_cols,
        n_rows,
        data: raw.data,
        repacked: buffer == MatrixBuffer::Repack,
    })
}

/// Checks that `raw` is a vector of `n` elements and decodes it to f32.
fn to_vector(name: String, raw: RawTensor, n: usize) -> Result<Vec<f32>, ModelError> {
    let expected = vec![n as u64];
    if raw.dims != expected {
        return Err(ModelError::WrongShape {
            name,
            actual: raw.dims,
            expected,
        });
    }
    if !matches!(raw.ggml_type, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
        return Err(ModelError::UnsupportedTensorType {
            name,
            ggml_type: raw.ggml_type,
            reason: "norm weights must be F32, F16 or BF16".into(),
        });
    }
    let expected_bytes = n * raw.ggml_type.type_size();
    if raw.data.bytes().len() != expected_bytes {
        return Err(ModelError::InvalidInput(format!(
            "tensor '{name}' has {} bytes, expected {expected_bytes}",
            raw.data.bytes().len()
        )));
    }

    let mut values = vec![0.0; n];
    decode_to_f32(&name, raw.ggml_type, raw.data.bytes(), n, &mut values)?;
    if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::InvalidInput(format!(
            "tensor '{name}' has a non-finite value {} at index {bad}",
            values[bad]
        )));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::tensor::TensorData;

    /// Returns a one-layer Gemma 3 configuration small enough to fill with zeros.
    fn tiny_config() -> Config {
        Config {
            arch: Arch::Gemma3,
            n_embd: 32,
            n_layer: 1,
            n_head: 2,
            n_head_kv: 1,
            head_dim: 16,
            n_ff: 64,
            n_vocab: 8,
            n_ctx_train: 128,
            rms_eps: 1e-6,
            sliding_window: 16,
            swa_pattern: 6,
            attn_softcap: None,
            final_softcap: None,
            rope_base_global: 1e6,
            rope_base_local: 1e4,
            rope_scale: 1.0,
            query_scale: 0.25,
        }
    }

    /// Returns an F32 tensor of zeros with the shape `collect_weights` expects for `name`.
    fn zeros_for(config: &Config, name: &str) -> RawTensor {
        let q_dim = (config.n_head * config.head_dim) as u64;
        let kv_dim = (config.n_head_kv * config.head_dim) as u64;
        let n_embd = config.n_embd as u64;
        let n_ff = config.n_ff as u64;
        let kind = name.trim_start_matches("blk.0.").trim_end_matches(".weight");
        let dims = match kind {
            "token_embd" | "output" => vec![n_embd, config.n_vocab as u64],
            "attn_q" => vec![n_embd, q_dim],
            "attn_k" | "attn_v" => vec![n_embd, kv_dim],
            "attn_output" => vec![q_dim, n_embd],
            "ffn_gate" | "ffn_up" => vec![n_embd, n_ff],
            "ffn_down" => vec![n_ff, n_embd],
            "attn_q_norm" | "attn_k_norm" => vec![config.head_dim as u64],
            _ => vec![n_embd],
        };
        let n: u64 = dims.iter().product();
        RawTensor {
            ggml_type: GgmlType::F32,
            dims,
            data: TensorData::Owned(Arc::new(vec![0u8; n as usize * 4])),
        }
    }

    #[test]
    fn tied_head_stays_plain() {
        let config = tiny_config();
        let weights = collect_weights(&config, |name| {
            (name != "output.weight").then(|| zeros_for(&config, name))
        })
        .unwrap();

        assert!(weights.output.is_none());
        assert!(!weights.lm_head().repacked);
        let layer = &weights.layers[0];
        for w in [&layer.attn_q, &layer.attn_k, &layer.attn_v, &layer.attn_output] {
            assert!(w.repacked, "{} should be repacked", w.name);
        }
        for w in [&layer.ffn_gate, &layer.ffn_up, &layer.ffn_down] {
            assert!(w.repacked, "{} should be repacked", w.name);
        }
    }

    #[test]
    fn separate_head_is_repacked() {
        let config = tiny_config();
        let weights = collect_weights(&config, |name| Some(zeros_for(&config, name))).unwrap();

        assert_eq!(weights.lm_head().name, "output.weight");
        assert!(weights.lm_head().repacked);
        assert!(!weights.token_embd.repacked);
    }
}
