//! ggml block quantization formats, bit-exact with ggml.

pub mod blocks;
mod traits;

pub use traits::QuantBlock;
