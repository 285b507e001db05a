//! The error type of every fallible function in this crate.

use gguf_format::GgmlType;

/// An input that cannot be quantized or dequantized, with the value at fault.
///
/// Every public function checks its inputs before it writes a byte, so an error never
/// leaves NaN or Inf behind in a returned buffer. The functions that write into a
/// caller's buffer (`quantize_into`, `dequantize_into`) zero it when they fail after
/// writing has started.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum QuantError {
    /// The row length is not a multiple of the type's block size.
    #[error(
        "row length (ne0) {n_per_row} is not a multiple of {ggml_type}'s block size {block_size}; \
         pick a type whose block size divides ne0, or keep the tensor in F16/F32"
    )]
    RowLength {
        /// Elements per row (`ne[0]`).
        n_per_row: usize,
        /// The requested type.
        ggml_type: GgmlType,
        /// Elements per block of `ggml_type`.
        block_size: usize,
    },

    /// One row's size in bytes overflows `usize`.
    #[error(
        "row length (ne0) {n_per_row} is too large: one row of {ggml_type} would not fit in memory"
    )]
    RowTooLong {
        /// Elements per row (`ne[0]`).
        n_per_row: usize,
        /// The requested type.
        ggml_type: GgmlType,
    },

    /// The row length is zero.
    #[error("row length (ne0) is 0; a row needs at least one element")]
    EmptyRow,

    /// The source slice does not hold a whole number of rows.
    #[error(
        "source has {len} values, which is not a whole number of rows of {n_per_row}; \
         pass rows * n_per_row values"
    )]
    SourceLength {
        /// Values in the source slice.
        len: usize,
        /// Elements per row (`ne[0]`).
        n_per_row: usize,
    },

    /// A source weight is NaN or infinite.
    #[error(
        "source value {value} at row {row}, column {column} is not finite; \
         fix the tensor that produced it before quantizing"
    )]
    NonFinite {
        /// Row index, counted from 0.
        row: usize,
        /// Column index within the row, counted from 0.
        column: usize,
        /// The offending value.
        value: f32,
    },

    /// The importance vector does not have one value per column.
    #[error(
        "imatrix has {found} values, expected {expected} (one per column, ne0); \
         was it collected on another model?"
    )]
    ImatrixLength {
        /// Elements per row (`ne[0]`).
        expected: usize,
        /// Length of the importance vector passed in.
        found: usize,
    },

    /// An importance value is NaN or infinite.
    #[error(
        "imatrix value {value} at column {column} is not finite; \
         recollect the imatrix or quantize this tensor without it"
    )]
    ImatrixNonFinite {
        /// Column index, counted from 0.
        column: usize,
        /// The offending value.
        value: f32,
    },

    /// An importance value is negative.
    #[error(
        "imatrix value {value} at column {column} is negative, but importance values are \
         means of squared activations; recollect the imatrix or quantize without it"
    )]
    ImatrixNegative {
        /// Column index, counted from 0.
        column: usize,
        /// The offending value.
        value: f32,
    },

    /// Quantized input bytes are not a whole number of rows.
    #[error(
        "data has {found} bytes, which is not a whole number of rows of {expected} bytes; \
         check the tensor's type and row length (ne0)"
    )]
    DataLength {
        /// Bytes per row, or bytes per block where no row length is known.
        expected: usize,
        /// Bytes passed in.
        found: usize,
    },

    /// An output buffer has the wrong length.
    #[error("output buffer has {found} elements, expected {expected}")]
    OutputLength {
        /// Required length, in bytes for quantized output and in `f32` values otherwise.
        expected: usize,
        /// Length of the buffer passed in.
        found: usize,
    },

    /// A block's scale overflows the f16 (or BF16) field it is stored in.
    #[error(
        "{ggml_type} cannot store block {block} of row {row}: its largest magnitude {amax} \
         makes the block scale overflow f16; keep this tensor in BF16 or F32, or rescale it"
    )]
    ScaleOverflow {
        /// The requested type.
        ggml_type: GgmlType,
        /// Row index, counted from 0.
        row: usize,
        /// Block index within the row (the column for F16, whose blocks hold one value).
        block: usize,
        /// Largest absolute source value in that block.
        amax: f32,
    },

    /// Quantized data holds a NaN or infinite value or block scale.
    #[error(
        "{ggml_type} data holds the non-finite value {value} at block {block}; \
         the tensor is corrupt, so re-create it from its source weights"
    )]
    NonFiniteData {
        /// The type of the data.
        ggml_type: GgmlType,
        /// Block index counted from the start of the data (the element index for F32, F16 and BF16).
        block: usize,
        /// The offending value, converted to f32.
        value: f32,
    },

    /// A weight matrix's bytes do not match its type and shape.
    #[error(
        "weight data has {found} bytes, expected {expected} for {n_rows} rows of {n_cols} \
         {ggml_type} values; check the tensor's type and shape (ne0, ne1)"
    )]
    MatrixData {
        /// The weight type.
        ggml_type: GgmlType,
        /// Rows (`ne[1]`).
        n_rows: usize,
        /// Columns (`ne[0]`).
        n_cols: usize,
        /// `n_rows` times the row size in bytes.
        expected: usize,
        /// Bytes passed in.
        found: usize,
    },

    /// An activation slice does not hold `n_batch` rows of `n_cols` values.
    #[error(
        "activations have {found} values, expected {expected} ({n_batch} rows of {n_cols}); \
         pass n_batch * n_cols values, row-major"
    )]
    ActivationLength {
        /// Activation rows requested.
        n_batch: usize,
        /// Values per row.
        n_cols: usize,
        /// `n_batch * n_cols`.
        expected: usize,
        /// Values passed in.
        found: usize,
    },

    /// Pre-quantized activations do not fit the weight matrix they are multiplied with.
    #[error(
        "{weight_type} weights with {weight_cols} columns need {expected_type} activations \
         with {weight_cols} columns, found {found_type} with {found_cols}; quantize the input \
         with quantize_activations(vec_dot_type({weight_type}), ..)"
    )]
    ActivationMismatch {
        /// The weight type.
        weight_type: GgmlType,
        /// Columns of the weight matrix.
        weight_cols: usize,
        /// The weight type's vec-dot type.
        expected_type: GgmlType,
        /// The type the activations were quantized to.
        found_type: GgmlType,
        /// Columns of the activations.
        found_cols: usize,
    },

    /// The type has no quantizer or dequantizer in this crate.
    #[error(
        "{0} is not supported by kquant; supported types are F32, F16, BF16, Q4_0, Q4_1, \
         Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL and IQ4_XS"
    )]
    UnsupportedType(GgmlType),
}
