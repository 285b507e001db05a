//! Loading a model from a GGUF file, with the weights left in the memory map.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use gguf_format::GgufFile;

use crate::config::Config;
use crate::error::ModelError;
use crate::model::{Model, DEFAULT_BOS_TOKEN, DEFAULT_EOS_TOKEN};
use crate::tensor::{RawTensor, TensorData};
use crate::tokenizer::GemmaTokenizer;
use crate::weights::collect_weights;
use crate::Numerics;

/// Key of the beginning-of-sequence token id.
const BOS_KEY: &str = "tokenizer.ggml.bos_token_id";

/// Key of the end-of-sequence token id.
const EOS_KEY: &str = "tokenizer.ggml.eos_token_id";

/// Key whose presence means the file carries a tokenizer.
const TOKENIZER_MODEL_KEY: &str = "tokenizer.ggml.model";

impl Model {
    /// Loads a Gemma 2 or Gemma 3 GGUF file.
    ///
    /// The file is memory-mapped and the model keeps it open: quantized weights are used in
    /// place, never copied. Every tensor type that `kquant` can multiply works (F32, F16,
    /// BF16, Q4_0 ... Q8_0, Q2_K ... Q6_K, IQ4_NL, IQ4_XS). Hyperparameters come from the
    /// `{arch}.*` keys with llama.cpp's defaults (see [`Config::from_gguf_metadata`]); norm
    /// weights are used as stored, because llama.cpp's converter has already added Gemma's
    /// `+ 1`. Without `output.weight`, the LM head is `token_embd.weight`.
    ///
    /// # Errors
    /// [`ModelError::Io`] when the file cannot be opened or mapped, [`ModelError::Gguf`] for an
    /// invalid file, the errors of
    /// [`Config::from_gguf_metadata`], [`ModelError::MissingTensor`],
    /// [`ModelError::WrongShape`] and [`ModelError::UnsupportedTensorType`] naming the tensor,
    /// and [`ModelError::InvalidInput`] for a tensor that is not part of the architecture.
    pub fn from_gguf(path: impl AsRef<Path>) -> Result<Model, ModelError> {
        let path = path.as_ref();
        let file = GgufFile::open(path).map_err(|e| match e {
            gguf_format::GgufError::Io { path, source } => ModelError::Io { path, source },
            other => ModelError::Gguf {
                path: path.to_owned(),
                message: other.to_string(),
            },
        })?;
        Model::from_gguf_file(Arc::new(file))
    }

    /// Builds a model from an open GGUF file (memory-mapped or in memory); see
    /// [`Model::from_gguf`].
    ///
    /// # Errors
    /// As [`Model::from_gguf`], except for opening the file.
    pub fn from_gguf_file(file: Arc<GgufFile>) -> Result<Model, ModelError> {
        let n_vocab = match file.tensor("token_embd.weight") {
            Some(info) if info.dims.len() == 2 => info.dims[1] as usize,
            Some(info) => {
                return Err(ModelError::WrongShape {
                    name: "token_embd.weight".into(),
                    actual: info.dims.clone(),
                    expected: vec![0, 0],
                })
            }
            None => return Err(ModelError::MissingTensor("token_embd.weight".into())),
        };
        let metadata = file.metadata();
        let config = Config::from_gguf_metadata(metadata, n_vocab)?;

        let mut remaining: HashMap<&str, usize> = file
            .tensors()
            .iter()
            .enumerate()
            .map(|(index, info)| (info.name.as_str(), index))
            .collect();
        let weights = collect_weights(&config, |name| {
            let index = remaining.remove(name)?;
            let info = &file.tensors()[index];
            Some(RawTensor {
                ggml_type: info.ggml_type,
                dims: info.dims.clone(),
                data: TensorData::Gguf {
                    file: Arc::clone(&file),
                    index,
                },
            })
        })?;
        if let Some(name) = remaining.keys().min() {
            return Err(ModelError::InvalidInput(format!(
                "unexpected tensor '{name}' for a {}-layer {} model",
                config.n_layer,
                config.arch.gguf_name()
            )));
        }

        let token_id = |key: &str, default: u32| -> Result<u32, ModelError> {
            match metadata.get(key) {
                None => Ok(default),
                Some(value) => value
                    .as_integer()
                    .and_then(|v| u32::try_from(v).ok())
                    .filter(|&id| (id as usize) < n_vocab)
                    .ok_or_else(|| ModelError::InvalidKey {
                        key: key.into(),
                        message: format!("expected a token id below {n_vocab}, found {value:?}"),
                    }),
            }
        };
        let bos_token = token_id(BOS_KEY, DEFAULT_BOS_TOKEN)?;
        let eos_token = token_id(EOS_KEY, DEFAULT_EOS_TOKEN)?;

        let tokenizer = if metadata.contains_key(TOKENIZER_MODEL_KEY) {
            let tokenizer = GemmaTokenizer::from_gguf_metadata(metadata).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
            Some(Arc::new(tokenizer))
        } else {
            None
        };

        Ok(Model {
            config,
            weights,
            numerics: Numerics::default(),
            bos_token,
            eos_token,
            tokenizer,
        })
    }
}
