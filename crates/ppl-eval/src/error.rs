//! The error type of every fallible operation in this crate.

use std::path::PathBuf;

/// A boxed error from a [`LogitsModel`](crate::LogitsModel) implementation.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from a perplexity, KL-divergence or comparison run.
#[derive(Debug, thiserror::Error)]
pub enum PplError {
    /// The context size leaves no token to score in a chunk.
    #[error("invalid context size n_ctx = {n_ctx}: need at least {min} so that each chunk scores a token; pass a larger -c")]
    InvalidContextSize {
        /// The rejected context size, in tokens.
        n_ctx: usize,
        /// The smallest accepted context size, in tokens.
        min: usize,
    },

    /// The text is shorter than two context windows, so no two chunks fit.
    #[error("need at least {required} tokens to evaluate perplexity with n_ctx = {n_ctx}, but the text has only {n_tokens} tokens (BOS included); use a longer text or a smaller -c")]
    TooFewTokens {
        /// Tokens in the input, BOS included.
        n_tokens: usize,
        /// The context size, in tokens.
        n_ctx: usize,
        /// Tokens needed: 2 * n_ctx.
        required: usize,
    },

    /// The chunk limit is zero, so nothing would be scored.
    #[error("invalid chunk limit 0: pass at least 1 chunk, or no limit to use every full chunk")]
    ZeroChunks,

    /// The model reports an empty vocabulary.
    #[error("model has n_vocab = 0; the model file is missing its vocabulary")]
    EmptyVocabulary,

    /// A token id lies outside the model's vocabulary.
    #[error("token id {token} at position {position} is out of range for n_vocab = {n_vocab}; were the tokens made by another model's tokenizer?")]
    TokenOutOfRange {
        /// The offending token id.
        token: u32,
        /// Index of the token in the input stream.
        position: usize,
        /// The model's vocabulary size.
        n_vocab: usize,
    },

    /// The model failed to evaluate a chunk.
    #[error("model evaluation failed on chunk {chunk}: {source}")]
    Model {
        /// 1-based chunk number.
        chunk: usize,
        /// The model's error.
        #[source]
        source: BoxError,
    },

    /// The model returned a logits buffer of the wrong length.
    #[error("model returned {actual} logits for chunk {chunk}, expected {expected} ({rows} rows of n_vocab = {n_vocab}); the LogitsModel implementation is inconsistent")]
    LogitsLength {
        /// 1-based chunk number.
        chunk: usize,
        /// Logits returned.
        actual: usize,
        /// Logits expected.
        expected: usize,
        /// Output rows requested.
        rows: usize,
        /// The model's vocabulary size.
        n_vocab: usize,
    },

    /// A logit is NaN or infinite, so no probability can be computed from its row.
    #[error("non-finite logit {value} in chunk {chunk} at position {position} (vocab entry {vocab_index}); the model produced invalid output")]
    NonFiniteLogit {
        /// 1-based chunk number.
        chunk: usize,
        /// Position inside the chunk (0-based, 0 is the BOS slot).
        position: usize,
        /// Index of the first non-finite entry in the row.
        vocab_index: usize,
        /// The offending value.
        value: f32,
    },

    /// The KL-divergence base file was written for another vocabulary size.
    #[error("KL-divergence base file has n_vocab = {file}, but the model has n_vocab = {model}; write the base file with a model of the same vocabulary")]
    VocabularyMismatch {
        /// n_vocab stored in the file.
        file: usize,
        /// n_vocab of the model under test.
        model: usize,
    },

    /// The KL-divergence base file is malformed.
    #[error("invalid KL-divergence base file {path}: {reason}")]
    InvalidBaseFile {
        /// The file being read.
        path: PathBuf,
        /// The fault, with the offending values.
        reason: String,
    },

    /// Two runs scored different tokens, so they cannot be paired.
    #[error("cannot pair runs: {reason}; evaluate both models on the same tokens with the same n_ctx and chunk count")]
    Unpaired {
        /// The difference between the runs.
        reason: String,
    },

    /// The model file carries no tokenizer, so text cannot be turned into tokens.
    #[error("the model has no tokenizer; use a GGUF file with tokenizer.ggml.* metadata or pass token ids")]
    MissingTokenizer,

    /// The tokenizer failed on the input text.
    #[error("tokenizing the input text failed: {source}")]
    Tokenize {
        /// The tokenizer's error.
        #[source]
        source: BoxError,
    },

    /// An I/O operation failed on a file.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl PplError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = PplError> = std::result::Result<T, E>;
