//! Read and write GGUF files, the model container of ggml and llama.cpp.
//!
//! [`GgufFile::open`] memory-maps a file and validates its whole header up front;
//! [`GgufView::parse`] does the same over any byte slice. Tensor data is then borrowed from
//! the map or slice without copying. [`GgufWriter`] streams a GGUF v3 file to disk, one
//! tensor at a time, through a temporary file that is renamed into place only on success.
//! [`HeaderScanner`] finds where a header ends in a growing prefix of a file, for programs
//! that read the header from a stream.
//!
//! ```
//! use gguf_format::{GgmlType, GgufFile, GgufWriter, Metadata, Value};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut metadata = Metadata::new();
//! metadata.insert("general.architecture", Value::from("gemma3"))?;
//! metadata.insert("gemma3.context_length", Value::U32(32768))?;
//!
//! // A 4 x 2 F32 tensor: dims are in GGUF order, so dims[0] = ne[0] = 4 is the row length.
//! let weights: Vec<u8> = (0..8).flat_map(|i| (i as f32).to_le_bytes()).collect();
//! let mut writer = GgufWriter::new(metadata);
//! writer.add_tensor("blk.0.attn_norm.weight", &[4, 2], GgmlType::F32)?;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("tiny.gguf");
//! writer.write_to_path(&path, |_index, _info, out| Ok(out.write_all(&weights)?))?;
//!
//! let file = GgufFile::open(&path)?;
//! assert_eq!(file.metadata().get_str("general.architecture")?, "gemma3");
//! assert_eq!(file.metadata().get_u32("gemma3.context_length")?, 32768);
//! let info = file.tensor("blk.0.attn_norm.weight").unwrap();
//! assert_eq!((info.row_len(), info.n_rows(), info.ggml_type), (4, 2, GgmlType::F32));
//! assert_eq!(file.tensor_data(info), &weights[..]);
//! # Ok(())
//! # }
//! ```
//!
//! # Policies
//!
//! The reader treats every file as untrusted and checks what llama.cpp's `gguf.cpp` checks,
//! plus a few things it does not. Each failure is one [`GgufError`] variant; nothing panics
//! and no allocation is sized by a count that the file size does not bound.
//!
//! - **Versions.** Versions 2 and 3 are read (they share one layout); files are always
//!   written as version 3. Version 1 (32-bit counts) is rejected with
//!   [`GgufError::VersionOne`], as llama.cpp does. Versions 0 and above 3 are rejected.
//! - **Byte order.** Only little-endian files are read. A version field whose low 16 bits
//!   are zero is taken as a big-endian file and rejected with [`GgufError::BigEndian`].
//!   gguf-py's `gguf-convert-endian` command converts such a file to little-endian.
//! - **Nested arrays.** Arrays of arrays are rejected ([`GgufError::NestedArray`]) because
//!   llama.cpp rejects them. Arrays of the 12 other types, strings included, are supported.
//! - **Empty arrays** keep their element type when read and written. gguf-py 0.19 skips
//!   empty arrays on write instead.
//! - **Strings** must be valid UTF-8, as the spec says ([`GgufError::InvalidUtf8`]).
//!   llama.cpp does not check this. Bools must be the byte 0 or 1.
//! - **Truncation.** When the input ends inside the header, the reader returns the error
//!   for the field that was cut: [`GgufError::UnexpectedEof`], or
//!   [`GgufError::CountTooLarge`] for an array whose elements cannot fit in the bytes left.
//!   A structural walk ([`HeaderScanner`]) finds that field before any value is decoded, so
//!   a truncated file fails in the time of the walk, not of a full decode. A fault before
//!   the cut comes first only when the walk checks it: the magic, the version, a count, a
//!   string length, a value type, n_dims, or a key or tensor name that is not UTF-8. Other
//!   faults there, such as a value string that is not UTF-8 or a duplicate key, are not
//!   reported for a truncated file.
//! - **Limits.** Strings and arrays are capped at 2^30 bytes and elements
//!   ([`MAX_STRING_LENGTH`], [`MAX_ARRAY_ELEMENTS`]), as in llama.cpp, and must fit in the
//!   bytes left. Keys must be non-empty and unique, and so must tensor names.
//! - **Alignment.** `general.alignment`, when present, must be a `u32` power of two
//!   (non-zero); otherwise the alignment is 32. A key of another integer type is an error,
//!   not a silent fallback to 32.
//! - **Tensor names** are at most 63 bytes ([`MAX_TENSOR_NAME_LEN`]). ggml stores names in
//!   64 bytes including a NUL, so a 64-byte name, although the spec allows it, would not
//!   load in llama.cpp.
//! - **Dimensions.** A tensor has 1 to 4 dims ([`MAX_DIMS`]), each at least 1. Empty
//!   tensors (a dim of 0) are rejected naming the tensor and axis. Element counts must fit
//!   in `i64`, and `ne[0]` must be a multiple of the type's block size. Unknown ggml type
//!   ids, including the ids ggml removed, are rejected.
//! - **Layout.** Every tensor must be aligned, inside the file and disjoint from the others.
//!   Spec-legal gaps between tensors and any order of offsets are accepted, where llama.cpp
//!   demands the contiguous layout of its writer. [`GgufWriter`] always writes that
//!   contiguous layout, with zero padding after every tensor, so its output loads in both.

mod cursor;
mod decode;
mod encode;
mod error;
mod fields;
mod file;
mod ggml_type;
mod header;
mod limits;
mod metadata;
mod scan;
mod temp_files;
mod tensor_info;
mod value;
mod view;
mod writer;

pub use error::{GgufError, MetadataError};
pub use file::GgufFile;
pub use ggml_type::{GgmlType, UnknownTypeName};
pub use limits::{
    ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, MAX_ARRAY_ELEMENTS, MAX_DIMS,
    MAX_STRING_LENGTH, MAX_TENSOR_NAME_LEN,
};
pub use metadata::Metadata;
pub use scan::{HeaderScanner, ScanStatus};
pub use temp_files::{remove_stale_temp_files, temp_path_for};
pub use tensor_info::TensorInfo;
pub use value::{Array, Value, ValueType};
pub use view::GgufView;
pub use writer::{slice_source, GgufWriter};
