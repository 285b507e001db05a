//! Gemma 2 and Gemma 3 (text) forward pass on the CPU, matching llama.cpp.
//!
//! A [`Model`] loads from a GGUF file or a Hugging Face checkpoint folder and evaluates a
//! batch of tokens with [`Model::forward`], returning logits. Its numerics follow llama.cpp's
//! CPU backend by default ([`Numerics::LlamaCpp`]), so that perplexities agree with
//! `llama-perplexity`; [`Numerics::Reference`] keeps activations in f32 to compare against
//! Hugging Face transformers. A [`MatmulHook`] sees the input of every weight matmul, which
//! is what an importance matrix is collected from.
//!
//! # Example
//!
//! Load the tiny Gemma 2 checkpoint that the tests use, score a prompt, then evaluate two
//! prompts as one batch, as llama-imatrix does with its chunks:
//!
//! ```
//! use gemma2_model::Model;
//!
//! let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hf-tiny/gemma2-tiny");
//! let model = Model::from_hf_dir(dir)?;
//! let n_vocab = model.config().n_vocab;
//!
//! // Logits of the last two positions only.
//! let first = [2, 17, 42, 7];
//! let logits = model.forward(&first, 2, None)?;
//! assert_eq!(logits.len(), 2 * n_vocab);
//!
//! // Both sequences in one batch: each row equals its sequence evaluated alone.
//! let second = [2, 99, 5];
//! let mut batched = Vec::new();
//! model.forward_sequences(&[&first, &second], 2, None, &mut |index, rows| {
//!     batched.push((index, rows));
//! })?;
//! assert_eq!(batched[0], (0, logits));
//! assert_eq!(batched[1], (1, model.forward(&second, 2, None)?));
//! # Ok::<(), gemma2_model::ModelError>(())
//! ```

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
