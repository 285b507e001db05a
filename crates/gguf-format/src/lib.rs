//! Read and write GGUF files, the model container of ggml and llama.cpp.
//!
//! [`GgufFile::open`] memory-maps a file and validates its whole header up front;
//! [`GgufView::parse`] does the same over any byte slice. Tensor data is then borrowed
//! from the map or slice without copying.

mod cursor;
mod decode;
mod encode;
mod error;
mod file;
mod ggml_type;
mod header;
mod limits;
mod metadata;
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
pub use tensor_info::TensorInfo;
pub use value::{Array, Value, ValueType};
pub use view::GgufView;
pub use writer::GgufWriter;
