//! Gemma's RMSNorm multiplies by `(1 + w)`. Hugging Face import adds the 1 once, as
//! llama.cpp's converter does, and GGUF norm weights are used as stored.

use std::path::Path;

use gemma2_model::ops::rms_norm_rows;
use gemma2_model::{convert_hf_to_gguf, ConvertOptions};
use gguf_format::GgufFile;

#[test]
fn unit_weight_normalizes_once() {
    let mut x = [1.0f32, 2.0, 3.0, 4.0];
    rms_norm_rows(&mut x, &[1.0; 4], 1e-6);
    let expected = [0.365148f32, 0.730297, 1.095445, 1.460593];
    for (got, want) in x.iter().zip(expected) {
        assert!((got - want).abs() < 1e-6, "{x:?}");
    }
}

fn read_f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Reads an F32 tensor from a safetensors file by its Hugging Face name.
fn safetensors_f32(path: &Path, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let offsets = header[name]["data_offsets"].as_array().unwrap();
    let start = 8 + header_len + offsets[0].as_u64().unwrap() as usize;
    let end = 8 + header_len + offsets[1].as_u64().unwrap() as usize;
    read_f32s(&bytes[start..end])
}

#[test]
fn converted_norms_are_hf_plus_one() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf-tiny/gemma3-tiny");
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("tiny.gguf");
    convert_hf_to_gguf(&dir, &out, &ConvertOptions::default()).unwrap();
    let file = GgufFile::open(&out).unwrap();

    for (hf, gguf) in [
        ("model.norm.weight", "output_norm.weight"),
        ("model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"),
        ("model.layers.5.self_attn.q_norm.weight", "blk.5.attn_q_norm.weight"),
        ("model.layers.2.post_feedforward_layernorm.weight", "blk.2.post_ffw_norm.weight"),
    ] {
        let original = safetensors_f32(&dir.join("model.safetensors"), hf);
        let stored = read_f32s(file.tensor_bytes(gguf).unwrap());
        assert_eq!(original.len(), stored.len(), "{gguf}");
        for (w, s) in original.iter().zip(&stored) {
            assert_eq!(*s, w + 1.0, "{gguf}: stored {s} for Hugging Face weight {w}");
        }
    }

    // Matrices are copied unchanged.
    let original = safetensors_f32(&dir.join("model.safetensors"), "model.layers.0.mlp.up_proj.weight");
    assert_eq!(read_f32s(file.tensor_bytes("blk.0.ffn_up.weight").unwrap()), original);
}
