//! Gemma 3 local layers use RoPE base 10000 without scaling; global layers (5, 11, ...) use
//! `rope.freq_base` and the linear scaling factor.

use gemma2_model::Config;
use gguf_format::{Metadata, Value};

fn gemma3_metadata(scaling: bool) -> Metadata {
    let mut m = Metadata::new();
    m.set("general.architecture", Value::String("gemma3".into()));
    for (key, value) in [
        ("context_length", 131_072),
        ("embedding_length", 32),
        ("block_count", 6),
        ("feed_forward_length", 64),
        ("attention.head_count", 4),
        ("attention.head_count_kv", 1),
        ("attention.key_length", 8),
        ("attention.value_length", 8),
        ("attention.sliding_window", 1024),
    ] {
        m.set(format!("gemma3.{key}"), Value::U32(value));
    }
    m.set("gemma3.attention.layer_norm_rms_epsilon", Value::F32(1e-6));
    m.set("gemma3.rope.freq_base", Value::F32(1e6));
    if scaling {
        m.set("gemma3.rope.scaling.type", Value::String("linear".into()));
        m.set("gemma3.rope.scaling.factor", Value::F32(8.0));
    }
    m
}

#[test]
fn local_and_global_layers_differ() {
    let config = Config::from_gguf_metadata(&gemma3_metadata(true), 64).unwrap();
    for il in 0..5 {
        assert!(config.is_sliding(il), "layer {il} should be local");
        assert_eq!(config.rope_params(il), (10_000.0, 1.0), "layer {il}");
    }
    assert!(!config.is_sliding(5));
    assert_eq!(config.rope_params(5), (1e6, 8.0));
}

#[test]
fn no_scaling_keys_means_factor_one() {
    let config = Config::from_gguf_metadata(&gemma3_metadata(false), 64).unwrap();
    assert_eq!(config.rope_params(5), (1e6, 1.0));
    assert_eq!(config.rope_params(0), (10_000.0, 1.0));
}
