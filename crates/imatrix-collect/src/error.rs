//! The crate's error type.

use std::path::PathBuf;

/// Errors from reading, writing, combining, comparing and collecting importance matrices.
///
/// Every variant names the offending value (tensor, entry index, byte count) so that the
/// message alone shows the user what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImatrixError {
    /// A file could not be opened, read, written or renamed into place.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// The GGUF container itself is invalid (bad magic, truncated header, bad tensor info)
    /// or could not be written.
    #[error("GGUF imatrix: {0}")]
    Gguf(#[from] gguf_format::GgufError),

    /// A GGUF file is valid but is not an imatrix (`general.type` differs).
    #[error("GGUF file has general.type = {found:?}, expected \"imatrix\"; is it a model file?")]
    NotImatrix {
        /// The `general.type` value found, or `<missing>`.
        found: String,
    },

    /// A required metadata key is absent or has the wrong type.
    #[error("GGUF imatrix metadata: {0}")]
    Metadata(#[from] gguf_format::MetadataError),

    /// A legacy `.dat` file ended before a field that its header announced.
    #[error("legacy imatrix: unexpected end of file in {what} of entry {entry}: needs {needed} bytes, {left} left")]
    UnexpectedEof {
        /// Index of the entry being read (the trailer reports the entry count).
        entry: usize,
        /// The field being read, e.g. `values`.
        what: &'static str,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the file.
        left: u64,
    },

    /// A count or length field is negative or above this crate's cap for it.
    #[error("{context}: {field} = {value} is outside 0..={max}")]
    OutOfRange {
        /// Location of the field, e.g. `legacy imatrix entry 3`.
        context: String,
        /// The field name, e.g. `name length`.
        field: &'static str,
        /// The value read.
        value: i64,
        /// The largest value accepted.
        max: i64,
    },

    /// A tensor name is not valid UTF-8.
    #[error("{context}: name is not valid UTF-8")]
    InvalidName {
        /// Location of the name.
        context: String,
    },

    /// The same tensor name occurs twice in one file.
    #[error("duplicate imatrix entry {tensor}")]
    DuplicateEntry {
        /// The repeated tensor name.
        tensor: String,
    },

    /// A stored sum of squares or count is NaN, infinite or negative.
    #[error("tensor {tensor}: {what}[{index}] = {value} is not a finite non-negative number; the imatrix is corrupt")]
    InvalidValue {
        /// The weight tensor name.
        tensor: String,
        /// `in_sum2` or `counts`.
        what: &'static str,
        /// Index of the value inside the vector.
        index: usize,
        /// The value found.
        value: f64,
    },

    /// The `in_sum2` and `counts` tensors of one entry disagree in shape, or one is missing.
    #[error("tensor {tensor}: {detail}")]
    ShapeMismatch {
        /// The weight tensor name.
        tensor: String,
        /// Description of the disagreement, with both shapes.
        detail: String,
    },

    /// Bytes remain after the last field of a legacy `.dat` file.
    #[error("legacy imatrix: {count} unexpected bytes after the trailer")]
    TrailingBytes {
        /// Number of extra bytes.
        count: u64,
    },

    /// An imatrix entry has another column count than the weight it should apply to.
    #[error("tensor {tensor}: imatrix has {found} columns, expected {expected}; was it collected on another model?")]
    ColumnMismatch {
        /// The weight tensor name.
        tensor: String,
        /// Columns (ne\[0\]) in the imatrix.
        found: usize,
        /// Columns (ne\[0\]) of the weight.
        expected: usize,
    },

    /// An imatrix entry has another matrix count (experts) than the weight it should apply to.
    #[error("tensor {tensor}: imatrix has {found} matrices, expected {expected}; was it collected on another model?")]
    MatrixCountMismatch {
        /// The weight tensor name.
        tensor: String,
        /// Matrices (n_mat) in the imatrix.
        found: usize,
        /// Matrices (experts) of the weight.
        expected: usize,
    },

    /// A quantization type that needs an imatrix found no entry for a tensor.
    #[error("missing importance matrix for tensor {tensor}; collect one with this model or choose a type above 2 bits")]
    MissingImportance {
        /// The weight tensor name.
        tensor: String,
    },

    /// Two imatrices that should be combined use different chunk sizes.
    #[error("cannot combine imatrices with chunk_size {first} and {second}; collect both with the same n_ctx")]
    ChunkSizeMismatch {
        /// The first chunk size.
        first: u32,
        /// The other chunk size.
        second: u32,
    },

    /// A mixing weight is negative, NaN or infinite, or all weights are zero.
    #[error("invalid mixing weight {weight} for source {index}; weights must be finite, >= 0, and not all 0")]
    InvalidWeight {
        /// Index of the source.
        index: usize,
        /// The weight given.
        weight: f64,
    },

    /// An operation that needs at least one imatrix got none.
    #[error("no imatrix given; pass at least one")]
    NoInput,

    /// The text is too short for the requested context size.
    #[error("text has {n_tokens} tokens, but n_ctx = {n_ctx} needs at least {required}; use a longer text or a smaller n_ctx")]
    TooFewTokens {
        /// Tokens in the text, BOS included.
        n_tokens: usize,
        /// Context size per chunk.
        n_ctx: usize,
        /// Minimum token count (2 * n_ctx).
        required: usize,
    },

    /// Collection parameters are unusable.
    #[error("invalid collection parameter {name} = {value}: {reason}")]
    InvalidParameter {
        /// The parameter, e.g. `n_ctx`.
        name: &'static str,
        /// Its value.
        value: String,
        /// Reason for the rejection.
        reason: &'static str,
    },

    /// A matmul input reported to the collector is inconsistent.
    #[error("matmul input for {tensor}: {detail}")]
    BadActivation {
        /// The weight tensor name.
        tensor: String,
        /// Description of the fault.
        detail: String,
    },

    /// The model failed to evaluate a batch of chunks.
    #[error("model evaluation failed on {}: {source}", chunk_label(.chunk, .n_chunks))]
    Model {
        /// Index of the batch's first chunk in the text (skipped chunks included).
        chunk: usize,
        /// Chunks in the batch, evaluated together (`n_batch / n_ctx`, fewer at the end).
        n_chunks: usize,
        /// The model's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The calibration text could not be tokenized.
    #[error("tokenization failed: {detail}")]
    Tokenizer {
        /// The tokenizer's message.
        detail: String,
    },

    /// The JSON serialisation of a report failed.
    #[error("JSON output failed: {0}")]
    Json(#[from] serde_json::Error),
}

impl ImatrixError {
    /// Builds an [`ImatrixError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Names chunk `chunk`, or the chunks `chunk..chunk + n_chunks` of a batch.
fn chunk_label(chunk: &usize, n_chunks: &usize) -> String {
    match *n_chunks {
        0 | 1 => format!("chunk {chunk}"),
        n => format!("chunks {chunk} to {}", chunk + n - 1),
    }
}
