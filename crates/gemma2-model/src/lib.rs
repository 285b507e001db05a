//! Gemma 2 and Gemma 3 (text) forward pass on the CPU, matching llama.cpp.
//!
//! A [`Model`] loads from a GGUF file or a Hugging Face checkpoint folder and evaluates a
//! batch of tokens with [`Model::forward`], returning logits. Its numerics follow llama.cpp's
//! CPU backend by default ([`Numerics::LlamaCpp`]), so that perplexities agree with
//! `llama-perplexity`; [`Numerics::Reference`] keeps activations in f32 to compare against
//! Hugging Face transformers. A [`MatmulHook`] sees the input of every weight matmul, which
//! is what an importance matrix is collected from.

mod config;
mod convert;
mod error;
mod forward;
mod generate;
mod gguf_config;
mod gguf_load;
mod hf;
mod hf_config;
mod hook;
mod model;
mod names;
pub mod ops;
mod tensor;
pub mod tokenizer;
mod weights;

pub use config::{
    Arch, Config, DEFAULT_ROPE_BASE, GEMMA2_DEFAULT_ATTN_SOFTCAP, GEMMA2_DEFAULT_FINAL_SOFTCAP,
    GEMMA2_DEFAULT_SLIDING_WINDOW, GEMMA2_SWA_PATTERN, GEMMA3_LOCAL_ROPE_BASE, GEMMA3_SWA_PATTERN,
};
pub use convert::{convert_hf_to_gguf, ConvertOptions, ConvertSummary};
pub use error::ModelError;
pub use gguf_format::GgmlType;
pub use hook::MatmulHook;
pub use model::{Model, DEFAULT_BOS_TOKEN, DEFAULT_EOS_TOKEN};
pub use tokenizer::{GemmaTokenizer, TokenizerError};

/// Rounding mode of the forward pass: llama.cpp's CPU backend or plain f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Numerics {
    /// Round as llama.cpp's CPU backend does: K and V to f16 (its default KV cache type),
    /// GELU through ggml's f16 lookup table, and activations to the weight's vec-dot type
    /// before each matmul. RoPE fuses the multiply-adds that GCC fuses in ggml. Attention
    /// follows ggml's tiled flash-attention order in both modes.
    #[default]
    LlamaCpp,
    /// Keep K, V and the GELU input in f32 and compute RoPE angles as Hugging Face
    /// transformers does; for comparing against transformers' f32 logits. Matmul inputs
    /// are still rounded to the weight's vec-dot type (a no-op for F32 weights).
    Reference,
}
