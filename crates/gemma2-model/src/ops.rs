//! Numeric building blocks of the forward pass, public so that tools and tests can check
//! them against llama.cpp one at a time.

pub use crate::forward::gelu::gelu_tanh;
pub use crate::forward::norm::rms_norm_rows;

/// Returns `cap * tanh(value / cap)`, computed as llama.cpp does: multiply by `1 / cap`,
/// take tanh, multiply by `cap`. Gemma 2 applies it to attention scores (cap 50) and to
/// output logits (cap 30).
pub fn soft_cap(value: f32, cap: f32) -> f32 {
    (value * (1.0 / cap)).tanh() * cap
}

/// Returns the factor that token embeddings are multiplied by: `sqrt(n_embd)` in f32, as
/// llama.cpp computes it (Hugging Face transformers rounds it to the activation dtype).
pub fn embedding_scale(n_embd: usize) -> f32 {
    (n_embd as f32).sqrt()
}
