//! The error type of the tokenizer module.

use std::path::PathBuf;

use gguf_format::MetadataError;

/// An error from building, running or exporting a [`GemmaTokenizer`](super::GemmaTokenizer).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A GGUF tokenizer key is missing or has the wrong type.
    #[error("invalid GGUF tokenizer metadata: {0}")]
    Metadata(#[from] MetadataError),

    /// `tokenizer.ggml.model` names a tokenizer other than SentencePiece (`llama`).
    #[error(
        "tokenizer.ggml.model is '{found}', expected 'llama' (SentencePiece); \
         only SentencePiece vocabularies such as Gemma's are supported"
    )]
    UnsupportedModel {
        /// The value found in the file.
        found: String,
    },

    /// The vocabulary has no tokens.
    #[error("the vocabulary is empty; tokenizer.ggml.tokens must list at least one token")]
    EmptyVocab,

    /// The vocabulary has more tokens than a 32-bit signed token id can address.
    #[error("the vocabulary has {n_vocab} tokens, more than llama.cpp's limit of {max}")]
    VocabTooLarge {
        /// Number of tokens.
        n_vocab: usize,
        /// Largest supported count.
        max: usize,
    },

    /// A per-token array does not have one entry per token.
    #[error("{field} has {found} entries but the vocabulary has {n_vocab} tokens")]
    LengthMismatch {
        /// The array, e.g. `tokenizer.ggml.scores`.
        field: &'static str,
        /// Its length.
        found: usize,
        /// Number of tokens.
        n_vocab: usize,
    },

    /// A token type code is outside llama.cpp's `llama_token_type` range 0..=6.
    #[error("token {id} has token type {code}; valid codes are 0 (undefined) to 6 (byte)")]
    InvalidTokenType {
        /// Token id.
        id: u32,
        /// The code found.
        code: i32,
    },

    /// A token score is NaN or infinite, which would make the merge order undefined.
    #[error("token {id} ('{piece}') has the non-finite score {score}")]
    NonFiniteScore {
        /// Token id.
        id: u32,
        /// Token text.
        piece: String,
        /// The score found.
        score: f32,
    },

    /// A special token id (`bos`, `eos`, `unk`, `padding`) is not a token of the vocabulary.
    #[error("the {role} token id {id} is out of range for a vocabulary of {n_vocab} tokens")]
    SpecialIdOutOfRange {
        /// The special token's role: "bos", "eos", "unknown" or "padding".
        role: &'static str,
        /// The id found.
        id: u64,
        /// Number of tokens.
        n_vocab: usize,
    },

    /// A byte-fallback piece `<0xXX>` is missing, so that byte could not be encoded.
    #[error(
        "the vocabulary has no byte-fallback token '<0x{byte:02X}>'; \
         SentencePiece vocabularies with byte_fallback list all 256 of them"
    )]
    MissingByteToken {
        /// The byte without a token.
        byte: u8,
    },

    /// `add_bos` was requested but the vocabulary defines no BOS token.
    #[error(
        "a BOS token was requested but the vocabulary defines none (tokenizer.ggml.bos_token_id)"
    )]
    NoBosToken,

    /// `add_eos_token` is set but the vocabulary defines no EOS token.
    #[error(
        "the vocabulary sets add_eos_token but defines no EOS token (tokenizer.ggml.eos_token_id)"
    )]
    NoEosToken,

    /// A token id passed to [`decode`](super::GemmaTokenizer::decode) is not in the vocabulary.
    #[error("token id {id} is out of range for a vocabulary of {n_vocab} tokens")]
    IdOutOfRange {
        /// The id found.
        id: u32,
        /// Number of tokens.
        n_vocab: usize,
    },

    /// Reading a tokenizer file failed.
    #[error("failed to read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A `tokenizer.json` or `tokenizer_config.json` is not valid JSON or lacks a field.
    #[error("invalid {path}: {reason}")]
    InvalidJson {
        /// The file.
        path: PathBuf,
        /// The fault, in words.
        reason: String,
    },

    /// A `tokenizer.json` describes a tokenizer this module cannot reproduce.
    #[error("unsupported {path}: {reason}")]
    UnsupportedTokenizerJson {
        /// The file.
        path: PathBuf,
        /// The unsupported feature and the reason.
        reason: String,
    },

    /// The special-token matcher could not be built from the vocabulary.
    #[error("failed to build the special-token matcher: {0}")]
    SpecialTokenMatcher(String),

    /// The Hugging Face `tokenizers` crate rejected the model or failed to run it.
    #[error("tokenizers: {0}")]
    Hf(String),
}

impl TokenizerError {
    pub(crate) fn hf(error: impl std::fmt::Display) -> Self {
        TokenizerError::Hf(error.to_string())
    }
}
