//! Error types: [`GgufError`] for reading and writing files, [`MetadataError`] for typed
//! metadata look-ups.

use std::path::PathBuf;

use crate::value::ValueType;
use crate::GgmlType;

/// Everything that can go wrong reading, validating or writing a GGUF file.
///
/// Each variant names one fault. Offsets are byte positions from the start of the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// Opening, mapping, writing, syncing or renaming a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Writing to the output stream failed (for example inside a tensor data callback).
    #[error("writing GGUF data failed: {0}")]
    Write(#[from] std::io::Error),

    /// The file does not start with the bytes `GGUF`.
    #[error(
        "not a GGUF file: the first 4 bytes are {found:02x?}, expected \"GGUF\" (47 47 55 46)"
    )]
    BadMagic { found: Vec<u8> },

    /// The version field is 0 or above 3.
    #[error("unsupported GGUF version {version}; this reader supports versions 2 and 3")]
    UnsupportedVersion { version: u32 },

    /// Version 1 stored counts and lengths as 32-bit integers; llama.cpp dropped it and so
    /// does this reader.
    #[error("unsupported GGUF version 1 (32-bit counts); convert the file again with a current llama.cpp or gguf-py")]
    VersionOne,

    /// The version field has its low 16 bits zero, the sign of a big-endian file.
    #[error("GGUF version field reads {version:#010x}: the file is big-endian (byte order mismatch), which this little-endian reader does not support; convert it with gguf-py's gguf-convert-endian command")]
    BigEndian { version: u32 },

    /// The input ended inside a field.
    #[error("unexpected end of file at byte {offset} while reading {field}: needs {needed} bytes, {available} left")]
    UnexpectedEof {
        field: String,
        offset: u64,
        needed: u64,
        available: u64,
    },

    /// A declared count (tensors, metadata pairs, array elements) cannot fit in the file or
    /// exceeds its cap.
    #[error("{field} at byte {offset} is {count}, but {reason}")]
    CountTooLarge {
        field: String,
        count: u64,
        offset: u64,
        reason: String,
    },

    /// A string length exceeds [`MAX_STRING_LENGTH`](crate::MAX_STRING_LENGTH).
    #[error(
        "{field} at byte {offset} declares a length of {len} bytes, over the cap of {max} bytes"
    )]
    StringTooLong {
        field: String,
        offset: u64,
        len: u64,
        max: u64,
    },

    /// A string is not valid UTF-8 (the GGUF spec requires UTF-8).
    #[error("{field} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 { field: String, offset: u64 },

    /// A metadata key is empty.
    #[error("metadata pair {index} has an empty key; keys must be non-empty")]
    EmptyKey { index: usize },

    /// A metadata key appears twice.
    #[error("duplicate metadata key '{key}'")]
    DuplicateKey { key: String },

    /// A value type id is not one of GGUF's 13 types.
    #[error("metadata key '{key}' has unknown value type {type_id} at byte {offset}; valid types are 0 to 12")]
    UnknownValueType {
        key: String,
        type_id: u32,
        offset: u64,
    },

    /// An array's elements are arrays, which llama.cpp rejects.
    #[error("metadata key '{key}' is an array of arrays (at byte {offset}); nested arrays are not supported")]
    NestedArray { key: String, offset: u64 },

    /// A bool is stored as a byte other than 0 or 1.
    #[error("metadata key '{key}' has bool byte {byte} at byte {offset}; expected 0 or 1")]
    InvalidBool { key: String, byte: u8, offset: u64 },

    /// `general.alignment` is stored with a type other than `u32`.
    #[error("general.alignment has type {found}, but it must be u32")]
    AlignmentNotU32 { found: ValueType },

    /// `general.alignment` is zero or not a power of two.
    #[error(
        "general.alignment is {alignment}, but it must be a non-zero power of two (such as 32)"
    )]
    InvalidAlignment { alignment: u32 },

    /// A tensor name is empty.
    #[error("tensor {index} has an empty name")]
    EmptyTensorName { index: usize },

    /// A tensor name exceeds [`MAX_TENSOR_NAME_LEN`](crate::MAX_TENSOR_NAME_LEN) bytes.
    #[error("tensor name '{name}' is {len} bytes long, over the maximum of {max} bytes (ggml's GGML_MAX_NAME minus the NUL)")]
    TensorNameTooLong {
        name: String,
        len: usize,
        max: usize,
    },

    /// Two tensors share a name.
    #[error("duplicate tensor name '{name}'")]
    DuplicateTensorName { name: String },

    /// A tensor has no dimensions.
    #[error("tensor '{tensor}' has 0 dimensions; at least 1 is required")]
    NoDimensions { tensor: String },

    /// A tensor has more than [`MAX_DIMS`](crate::MAX_DIMS) dimensions.
    #[error("tensor '{tensor}' has {n_dims} dimensions; ggml supports at most {max}")]
    TooManyDimensions {
        tensor: String,
        n_dims: u64,
        max: usize,
    },

    /// A dimension is zero or negative (as a signed 64-bit value).
    #[error("tensor '{tensor}': dimension {axis} must be positive, got {value}")]
    InvalidDimension {
        tensor: String,
        axis: usize,
        value: i128,
    },

    /// The element count or byte size of a tensor overflows 64 bits (or `usize`).
    #[error("tensor '{tensor}' with dims {dims:?} is too large: its element count or byte size overflows")]
    TensorTooLarge { tensor: String, dims: Vec<u64> },

    /// A tensor's ggml type id is unknown or was removed from ggml.
    #[error("tensor '{tensor}' has unknown ggml type id {type_id}")]
    UnknownGgmlType { tensor: String, type_id: u32 },

    /// A tensor's row length is not a multiple of its type's block size.
    #[error("tensor '{tensor}': row length (ne0) {row_len} is not a multiple of the {ggml_type} block size {block_size}")]
    RowNotBlockAligned {
        tensor: String,
        row_len: u64,
        ggml_type: GgmlType,
        block_size: usize,
    },

    /// A tensor's offset is not a multiple of the alignment.
    #[error("tensor '{tensor}' has data offset {offset}, which is not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        tensor: String,
        offset: u64,
        alignment: u64,
    },

    /// A tensor's data runs past the end of the file.
    #[error("tensor '{tensor}' data (offset {offset}, {size_bytes} bytes) runs past the end of the data section ({data_len} bytes); the file may be truncated")]
    TensorOutOfBounds {
        tensor: String,
        offset: u64,
        size_bytes: u64,
        data_len: u64,
    },

    /// Two tensors' data ranges overlap.
    #[error("tensors '{first}' and '{second}' overlap: '{second}' starts at offset {second_offset}, before '{first}' ends at {first_end}")]
    OverlappingTensors {
        first: String,
        second: String,
        first_end: u64,
        second_offset: u64,
    },

    /// The data section starts past the end of the file.
    #[error("tensor data section starts at byte {data_offset}, past the end of the file ({file_len} bytes); the file is truncated")]
    DataSectionPastEnd { data_offset: u64, file_len: u64 },

    /// A tensor data callback wrote more or fewer bytes than the tensor's size.
    #[error("tensor '{tensor}': the data callback wrote {written} bytes, expected {expected}")]
    WrongTensorDataLength {
        tensor: String,
        expected: u64,
        written: u64,
    },

    /// A tensor data callback failed for a reason of its own.
    #[error("producing data for tensor '{tensor}' failed: {source}")]
    TensorSource {
        tensor: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A typed metadata look-up failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// A typed metadata look-up that found no value or a value of another type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The key is not present.
    #[error("metadata key '{key}' not found")]
    Missing { key: String },

    /// The key is present with another value type.
    #[error("metadata key '{key}' has type {found}, expected {expected}")]
    WrongType {
        key: String,
        expected: ValueType,
        found: ValueType,
    },

    /// The key is an array of another element type.
    #[error("metadata key '{key}' is an array of {found}, expected an array of {expected}")]
    WrongArrayType {
        key: String,
        expected: ValueType,
        found: ValueType,
    },
}
