//! Hyperparameters come from the `<arch>.` keys of GGUF metadata, with documented defaults,
//! and bad metadata is an error that names the key.

use gemma2_model::{Arch, Config, ModelError};
use gguf_format::{Metadata, Value};

/// Builds the tensor-less Gemma 2 2B metadata of a real GGUF file.
fn gemma2_metadata() -> Metadata {
    let mut m = Metadata::new();
    m.set("general.architecture", Value::String("gemma2".into()));
    m.set("gemma2.context_length", Value::U32(8192));
    m.set("gemma2.embedding_length", Value::U32(2304));
    m.set("gemma2.block_count", Value::U32(26));
    m.set("gemma2.feed_forward_length", Value::U32(9216));
    m.set("gemma2.attention.head_count", Value::U32(8));
    m.set("gemma2.attention.head_count_kv", Value::U32(4));
    m.set("gemma2.attention.key_length", Value::U32(256));
    m.set("gemma2.attention.value_length", Value::U32(256));
    m.set("gemma2.attention.layer_norm_rms_epsilon", Value::F32(1e-6));
    m.set("gemma2.attention.sliding_window", Value::U32(4096));
    m.set("gemma2.attn_logit_softcapping", Value::F32(50.0));
    m.set("gemma2.final_logit_softcapping", Value::F32(30.0));
    m
}

#[test]
fn gemma2_keys_fill_config() {
    let config = Config::from_gguf_metadata(&gemma2_metadata(), 256_000).unwrap();
    assert_eq!(config.arch, Arch::Gemma2);
    assert_eq!(config.n_embd, 2304);
    assert_eq!(config.n_layer, 26);
    assert_eq!(config.n_head, 8);
    assert_eq!(config.n_head_kv, 4);
    assert_eq!(config.head_dim, 256);
    assert_eq!(config.n_ff, 9216);
    assert_eq!(config.n_ctx_train, 8192);
    assert_eq!(config.sliding_window, 4096);
    assert_eq!(config.attn_softcap, Some(50.0));
    assert_eq!(config.final_softcap, Some(30.0));
    assert_eq!(config.query_scale, 1.0 / 16.0);
    assert!(config.is_sliding(0));
    assert!(!config.is_sliding(1));
}

#[test]
fn llama_architecture_is_rejected() {
    let mut m = gemma2_metadata();
    m.set("general.architecture", Value::String("llama".into()));
    let err = Config::from_gguf_metadata(&m, 256_000).unwrap_err();
    assert!(matches!(err, ModelError::UnsupportedArchitecture(ref a) if a == "llama"));
    assert!(err.to_string().contains("unsupported architecture 'llama'"), "{err}");
}

#[test]
fn missing_head_count_names_full_key() {
    let mut m = gemma2_metadata();
    m.remove("gemma2.attention.head_count");
    let err = Config::from_gguf_metadata(&m, 256_000).unwrap_err();
    assert!(matches!(err, ModelError::MissingKey(ref k) if k == "gemma2.attention.head_count"));
    assert!(err.to_string().contains("gemma2.attention.head_count"), "{err}");
}

#[test]
fn optional_keys_take_llama_cpp_defaults() {
    let mut m = gemma2_metadata();
    for key in [
        "gemma2.attention.sliding_window",
        "gemma2.attn_logit_softcapping",
        "gemma2.final_logit_softcapping",
        "gemma2.attention.head_count_kv",
    ] {
        m.remove(key);
    }
    let config = Config::from_gguf_metadata(&m, 256_000).unwrap();
    assert_eq!(config.sliding_window, 4096);
    assert_eq!(config.attn_softcap, Some(50.0));
    assert_eq!(config.final_softcap, Some(30.0));
    assert_eq!(config.n_head_kv, config.n_head);
    assert_eq!(config.rope_base_global, 10_000.0);
    assert_eq!(config.rope_scale, 1.0);
}

#[test]
fn wrong_key_type_is_invalid_key() {
    let mut m = gemma2_metadata();
    m.set("gemma2.block_count", Value::String("26".into()));
    let err = Config::from_gguf_metadata(&m, 256_000).unwrap_err();
    assert!(matches!(err, ModelError::InvalidKey { ref key, .. } if key == "gemma2.block_count"), "{err}");
}

#[test]
fn gemma3_requires_sliding_window() {
    let mut m = Metadata::new();
    m.set("general.architecture", Value::String("gemma3".into()));
    for (key, value) in [
        ("context_length", 32768),
        ("embedding_length", 640),
        ("block_count", 18),
        ("feed_forward_length", 2048),
        ("attention.head_count", 4),
        ("attention.head_count_kv", 1),
        ("attention.key_length", 256),
        ("attention.value_length", 256),
    ] {
        m.set(format!("gemma3.{key}"), Value::U32(value));
    }
    m.set("gemma3.attention.layer_norm_rms_epsilon", Value::F32(1e-6));
    let err = Config::from_gguf_metadata(&m, 262_144).unwrap_err();
    assert!(matches!(err, ModelError::MissingKey(ref k) if k == "gemma3.attention.sliding_window"), "{err}");
}
