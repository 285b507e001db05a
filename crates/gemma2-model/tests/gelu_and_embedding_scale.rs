//! Gemma uses tanh-GELU (not erf-GELU) and scales embeddings by `sqrt(n_embd)` in f32.

use gemma2_model::ops::{embedding_scale, gelu_tanh};

#[test]
fn gelu_is_tanh_approximation() {
    assert!((gelu_tanh(1.0) - 0.841192).abs() < 1e-6);
    // erf-GELU(1) is 0.841345, so the check must distinguish the two.
    assert!((gelu_tanh(1.0) - 0.841345).abs() > 1e-4);
    assert_eq!(gelu_tanh(0.0), 0.0);
    assert!((gelu_tanh(-3.0) + 0.003637).abs() < 1e-5);
    assert!((gelu_tanh(3.0) - 2.996363).abs() < 1e-5);
}

#[test]
fn embedding_scale_stays_f32() {
    assert!((embedding_scale(1152) - 33.941125).abs() < 1e-5);
    assert_eq!(embedding_scale(2304), 48.0);
    assert!((embedding_scale(3584) - 59.8665).abs() < 1e-4);
    // Hugging Face transformers in bf16 would use 55.5 for 3072; llama.cpp keeps f32.
    assert!((embedding_scale(3072) - 55.4256).abs() < 1e-4);
}
