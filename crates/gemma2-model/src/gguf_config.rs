//! Hyperparameters from GGUF metadata (`{arch}.*` keys), with llama.cpp's defaults.

use gguf_format::{Metadata, Value};

use crate::config::{
    Arch, Config, DEFAULT_ROPE_BASE, GEMMA2_DEFAULT_ATTN_SOFTCAP, GEMMA2_DEFAULT_FINAL_SOFTCAP,
    GEMMA2_DEFAULT_SLIDING_WINDOW, GEMMA3_LOCAL_ROPE_BASE,
};
use crate::error::ModelError;

/// Key of the architecture name.
pub(crate) const ARCHITECTURE_KEY: &str = "general.architecture";

impl Config {
    /// Reads the hyperparameters from GGUF metadata. `n_vocab` is the number of rows of
    /// `token_embd.weight`, which GGUF does not store as a key.
    ///
    /// Required keys (prefix `gemma2.` or `gemma3.`): `context_length`, `embedding_length`,
    /// `block_count`, `feed_forward_length`, `attention.head_count`,
    /// `attention.layer_norm_rms_epsilon`, and for Gemma 3 `attention.sliding_window`.
    /// Defaults where a key is absent, as in llama.cpp:
    /// - `attention.head_count_kv`: `head_count`; `attention.key_length` and
    ///   `value_length`: `embedding_length / head_count`.
    /// - `rope.freq_base`: 10000; `rope.scaling.type`/`factor`: no scaling.
    /// - Gemma 2: `attention.sliding_window` 4096, `attn_logit_softcapping` 50,
    ///   `final_logit_softcapping` 30; even layers local.
    /// - Gemma 3: local layers use RoPE base 10000 without scaling, and every sixth layer
    ///   (5, 11, 17, ...) is global; no attention soft-cap, and a final soft-cap only when
    ///   `final_logit_softcapping` is present and non-zero.
    /// - Query scale: `1/sqrt(key_length)`, except the 27B sizes (Gemma 2 with 46 layers,
    ///   Gemma 3 with 62): `1/sqrt(embedding_length / head_count)`.
    ///
    /// # Errors
    /// [`ModelError::UnsupportedArchitecture`] unless `general.architecture` is `gemma2` or
    /// `gemma3`; [`ModelError::MissingKey`] with the full key; [`ModelError::InvalidKey`]
    /// for a value of the wrong type or out of range.
    pub fn from_gguf_metadata(metadata: &Metadata, n_vocab: usize) -> Result<Config, ModelError> {
        let arch_name = match metadata.get(ARCHITECTURE_KEY) {
            Some(Value::String(name)) => name.as_str(),
            Some(other) => {
                return Err(ModelError::InvalidKey {
                    key: ARCHITECTURE_KEY.into(),
                    message: format!("expected a string, found {:?}", other.value_type()),
                })
            }
            None => return Err(ModelError::MissingKey(ARCHITECTURE_KEY.into())),
        };
        let arch = Arch::from_gguf_name(arch_name)?;
        let keys = Keys {
            metadata,
            prefix: arch.gguf_name(),
        };

        let n_embd = keys.required_usize("embedding_length")?;
        let n_layer = keys.required_usize("block_count")?;
        let n_head = keys.required_usize("attention.head_count")?;
        let head_dim_default = if n_head == 0 { 0 } else { n_embd / n_head };
        let head_dim = keys.optional_usize("attention.key_length")?.unwrap_or(head_dim_default);
        let value_length = keys.optional_usize("attention.value_length")?.unwrap_or(head_dim_default);
        if value_length != head_dim {
            return Err(ModelError::InvalidKey {
                key: keys.full("attention.value_length"),
                message: format!("{value_length} differs from attention.key_length {head_dim}; Gemma uses one head size"),
            });
        }

        let sliding_window = match (arch, keys.optional_usize("attention.sliding_window")?) {
            (_, Some(window)) => window,
            (Arch::Gemma2, None) => GEMMA2_DEFAULT_SLIDING_WINDOW,
            (Arch::Gemma3, None) => return Err(ModelError::MissingKey(keys.full("attention.sliding_window"))),
        };

        let (attn_softcap, final_softcap) = match arch {
            Arch::Gemma2 => (
                Some(keys.optional_f32("attn_logit_softcapping")?.unwrap_or(GEMMA2_DEFAULT_ATTN_SOFTCAP)),
                Some(keys.optional_f32("final_logit_softcapping")?.unwrap_or(GEMMA2_DEFAULT_FINAL_SOFTCAP)),
            ),
            Arch::Gemma3 => (None, keys.optional_f32("final_logit_softcapping")?.filter(|&c| c != 0.0)),
        };

        let rope_base_global = keys.optional_f32("rope.freq_base")?.unwrap_or(DEFAULT_ROPE_BASE);
        let rope_base_local = match arch {
            Arch::Gemma2 => rope_base_global,
            Arch::Gemma3 => GEMMA3_LOCAL_ROPE_BASE,
        };

        let config = Config {
            arch,
            n_embd,
            n_layer,
            n_head,
            n_head_kv: keys.optional_usize("attention.head_count_kv")?.unwrap_or(n_head),
            head_dim,
            n_ff: keys.required_usize("feed_forward_length")?,
            n_vocab,
            n_ctx_train: keys.required_usize("context_length")?,
            rms_eps: keys.required_f32("attention.layer_norm_rms_epsilon")?,
            sliding_window,
            swa_pattern: arch.default_swa_pattern(),
            attn_softcap,
            final_softcap,
            rope_base_global,
            rope_base_local,
            rope_scale: rope_scale(&keys)?,
            query_scale: Config::llama_cpp_query_scale(arch, n_layer, n_embd, n_head.max(1), head_dim.max(1)),
        };
        config.validate()?;
        Ok(config)
    }
}

/// Reads `rope.scaling.type` and `rope.scaling.factor`: the linear factor, or 1.0.
fn rope_scale(keys: &Keys<'_>) -> Result<f32, ModelError> {
    let kind = match keys.metadata.get(&keys.full("rope.scaling.type")) {
        None => None,
        Some(Value::String(kind)) => Some(kind.as_str()),
        Some(other) => {
            return Err(ModelError::InvalidKey {
                key: keys.full("rope.scaling.type"),
                message: format!("expected a string, found {:?}", other.value_type()),
            })
        }
    };
    let factor = keys.optional_f32("rope.scaling.factor")?;
    match kind {
        None | Some("none") => Ok(1.0),
        Some("linear") => Ok(factor.filter(|&f| f != 0.0).unwrap_or(1.0)),
        Some(other) => Err(ModelError::InvalidKey {
            key: keys.full("rope.scaling.type"),
            message: format!("'{other}' is not supported (expected 'linear' or 'none')"),
        }),
    }
}

/// Typed access to the `{arch}.*` keys.
struct Keys<'a> {
    metadata: &'a Metadata,
    prefix: &'static str,
}

impl Keys<'_> {
    fn full(&self, key: &str) -> String {
        format!("{}.{key}", self.prefix)
    }

    fn optional_usize(&self, key: &str) -> Result<Option<usize>, ModelError> {
        let full = self.full(key);
        let Some(value) = self.metadata.get(&full) else {
            return Ok(None);
        };
        value
            .as_integer()
            .and_then(|v| usize::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| ModelError::InvalidKey {
                key: full,
                message: format!("expected a non-negative integer, found {value:?}"),
            })
    }

    fn required_usize(&self, key: &str) -> Result<usize, ModelError> {
        self.optional_usize(key)?
            .ok_or_else(|| ModelError::MissingKey(self.full(key)))
    }

    fn optional_f32(&self, key: &str) -> Result<Option<f32>, ModelError> {
        let full = self.full(key);
        match self.metadata.get(&full) {
            None => Ok(None),
            Some(Value::F32(v)) => Ok(Some(*v)),
            Some(Value::F64(v)) => Ok(Some(*v as f32)),
            Some(other) => Err(ModelError::InvalidKey {
                key: full,
                message: format!("expected a float, found {other:?}"),
            }),
        }
    }

    fn required_f32(&self, key: &str) -> Result<f32, ModelError> {
        self.optional_f32(key)?
            .ok_or_else(|| ModelError::MissingKey(self.full(key)))
    }
}
