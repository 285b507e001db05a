//! ggml block quantization formats, bit-exact with ggml.

pub mod blocks;
pub mod plan;
pub(crate) mod solvers;
mod traits;

pub use traits::QuantBlock;
