//! The loaded model and its constructors.

use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::error::ModelError;
use crate::hf::read_checkpoint;
use crate::tokenizer::GemmaTokenizer;
use crate::weights::{collect_weights, Weights};
use crate::Numerics;

/// Token id of `<bos>` in every Gemma vocabulary, used when the file sets none.
pub const DEFAULT_BOS_TOKEN: u32 = 2;

/// Token id of `<eos>` in every Gemma vocabulary, used when the file sets none.
pub const DEFAULT_EOS_TOKEN: u32 = 1;

/// A Gemma 2 or Gemma 3 text model ready to evaluate.
///
/// Weights loaded from GGUF stay in the memory-mapped file; weights imported from
/// safetensors are held in memory in their stored type (F32, F16 or BF16).
#[derive(Debug, Clone)]
pub struct Model {
    pub(crate) config: Config,
    pub(crate) weights: Weights,
    pub(crate) numerics: Numerics,
    pub(crate) bos_token: u32,
    pub(crate) eos_token: u32,
    pub(crate) tokenizer: Option<Arc<GemmaTokenizer>>,
}

impl Model {
    /// Loads a Hugging Face checkpoint folder: `config.json` (`gemma2`, `gemma3_text` or the
    /// text part of `gemma3`) and `model.safetensors`, or the shards listed in
    /// `model.safetensors.index.json`.
    ///
    /// Tensors are renamed to their GGUF names and every `*norm.weight` gets Gemma's `+ 1`,
    /// as llama.cpp's converter does, so both loaders share one forward pass. The query scale
    /// comes from `query_pre_attn_scalar`.
    ///
    /// # Errors
    /// [`ModelError::Io`] when a file cannot be read, [`ModelError::InvalidHfConfig`] or
    /// [`ModelError::Safetensors`] for malformed files, [`ModelError::UnsupportedArchitecture`]
    /// for another `model_type`, and [`ModelError::MissingTensor`] /
    /// [`ModelError::WrongShape`] when the weights do not match the config.
    pub fn from_hf_dir(dir: impl AsRef<Path>) -> Result<Model, ModelError> {
        let checkpoint = read_checkpoint(dir.as_ref())?;
        let config = checkpoint.hf.config.clone();
        config.validate()?;

        let mut tensors = checkpoint.tensors;
        let weights = collect_weights(&config, |name| tensors.remove(name))?;
        if let Some(name) = tensors.keys().next() {
            return Err(ModelError::InvalidInput(format!(
                "unexpected tensor '{name}' for a {}-layer model",
                config.n_layer
            )));
        }

        let tokenizer = match &checkpoint.tokenizer_json {
            Some(path) => Some(Arc::new(
                GemmaTokenizer::from_tokenizer_json(path).map_err(|e| ModelError::Tokenizer(e.to_string()))?,
            )),
            None => None,
        };

        Ok(Model {
            config,
            weights,
            numerics: Numerics::default(),
            bos_token: checkpoint.hf.bos_token_id,
            eos_token: checkpoint.hf.eos_token_id,
            tokenizer,
        })
    }

    /// Returns the hyperparameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Returns the tokenizer: from the `tokenizer.ggml.*` keys of a GGUF file, or from the
    /// `tokenizer.json` of a Hugging Face folder; `None` when the file has neither.
    pub fn tokenizer(&self) -> Option<&GemmaTokenizer> {
        self.tokenizer.as_deref()
    }

    /// Returns the id of the beginning-of-sequence token.
    pub fn bos_token(&self) -> u32 {
        self.bos_token
    }

    /// Returns the id of the end-of-sequence token.
    pub fn eos_token(&self) -> u32 {
        self.eos_token
    }

    /// Returns the rounding mode of the forward pass.
    pub fn numerics(&self) -> Numerics {
        self.numerics
    }

    /// Sets the rounding mode of the forward pass and returns the model.
    pub fn with_numerics(mut self, numerics: Numerics) -> Model {
        self.numerics = numerics;
        self
    }
}
