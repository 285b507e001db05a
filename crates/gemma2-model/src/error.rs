//! The error type of model loading, conversion and evaluation.

use std::path::PathBuf;

use gguf_format::GgmlType;

/// An error from loading, converting or evaluating a Gemma model.
///
/// Every variant names the offending file, key, tensor or value, so that the message alone
/// tells the user what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// The GGUF container itself is invalid.
    #[error("{path}: invalid GGUF file: {message}")]
    Gguf {
        /// The GGUF file.
        path: PathBuf,
        /// The reader's description of the fault.
        message: String,
    },

    /// `general.architecture` (or the Hugging Face `model_type`) names a model this crate
    /// does not implement.
    #[error("unsupported architecture '{0}' (supported: gemma2, gemma3)")]
    UnsupportedArchitecture(String),

    /// A required metadata key is absent.
    #[error("missing metadata key '{0}'")]
    MissingKey(String),

    /// A metadata key has the wrong type or an out-of-range value.
    #[error("invalid metadata key '{key}': {message}")]
    InvalidKey {
        /// The full key, such as `gemma2.attention.head_count`.
        key: String,
        /// The fault in the value and the value expected.
        message: String,
    },

    /// A Hugging Face `config.json` is not valid JSON or lacks a field.
    #[error("{path}: invalid config.json: {message}")]
    InvalidHfConfig {
        /// The config file.
        path: PathBuf,
        /// The JSON error or the missing field.
        message: String,
    },

    /// A safetensors file or its index is invalid.
    #[error("{path}: invalid safetensors file: {message}")]
    Safetensors {
        /// The safetensors or index file.
        path: PathBuf,
        /// The reader's description of the fault.
        message: String,
    },

    /// A tensor the architecture needs is not in the file.
    #[error("missing tensor '{0}'")]
    MissingTensor(String),

    /// A tensor has a shape other than the configuration implies.
    #[error("tensor '{name}' has shape {actual:?}, expected {expected:?} (ne[0] first)")]
    WrongShape {
        /// The GGUF tensor name.
        name: String,
        /// The shape in the file, `ne[0]` first.
        actual: Vec<u64>,
        /// The shape the hyperparameters imply, `ne[0]` first.
        expected: Vec<u64>,
    },

    /// A tensor is stored in a type the forward pass cannot use in that role.
    #[error("tensor '{name}' has type {ggml_type:?}, which is not supported here ({reason})")]
    UnsupportedTensorType {
        /// The GGUF tensor name.
        name: String,
        /// The stored type.
        ggml_type: GgmlType,
        /// The reason the type cannot be used.
        reason: String,
    },

    /// A token id is not below the vocabulary size.
    #[error("token id {token} at position {position} is out of range (vocabulary size {n_vocab})")]
    TokenOutOfRange {
        /// The token id.
        token: u32,
        /// Its index in the input.
        position: usize,
        /// The model's vocabulary size.
        n_vocab: usize,
    },

    /// The input is empty, longer than the model allows, or `logits_from` is past its end.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A quantization kernel rejected its input.
    #[error("tensor '{name}': {message}")]
    Kernel {
        /// The GGUF tensor name.
        name: String,
        /// The kernel's error message.
        message: String,
    },

    /// The tokenizer could not be built from the model's files.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

impl ModelError {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }
}
