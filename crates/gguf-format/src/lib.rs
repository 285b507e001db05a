//! Read and write GGUF files, the model container of ggml and llama.cpp.

mod ggml_type;

pub use ggml_type::{GgmlType, UnknownTypeName};
