//! Logits of the tiny random Gemma 2 / Gemma 3 checkpoints against Hugging Face transformers.
//!
//! Every folder under `tests/data/hf-tiny/`, and under the directory named by the
//! environment variable `GEMMA_REFERENCE_DIR` when set, holds `config.json`,
//! `model.safetensors`, `reference.json` (`input_ids`) and `logits.f32` (transformers' f32
//! logits, row-major `[seq, vocab]`).

use std::path::{Path, PathBuf};

use gemma2_model::{convert_hf_to_gguf, ConvertOptions, GgmlType, Model, Numerics};

/// Largest accepted difference from transformers' f32 logits.
const TOLERANCE: f32 = 1e-4;

/// Largest accepted difference with llama.cpp's rounding (f16 K/V and GELU table), which
/// moves these scaled-up random weights' logits by a few thousandths.
const LLAMA_CPP_TOLERANCE: f32 = 0.05;

struct Reference {
    dir: PathBuf,
    input_ids: Vec<u32>,
    logits: Vec<f32>,
}

fn reference_dirs() -> Vec<PathBuf> {
    let mut roots = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf-tiny")];
    if let Some(extra) = std::env::var_os("GEMMA_REFERENCE_DIR") {
        roots.push(PathBuf::from(extra));
    }

    let mut dirs = Vec::new();
    for root in roots {
        let entries = std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.join("reference.json").is_file() {
                dirs.push(path);
            }
        }
    }
    dirs.sort();
    dirs
}

fn read_reference(dir: &Path) -> Reference {
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let input_ids = json["input_ids"]
        .as_array()
        .expect("input_ids array")
        .iter()
        .map(|v| v.as_u64().expect("token id") as u32)
        .collect();
    let bytes = std::fs::read(dir.join("logits.f32")).unwrap();
    let logits = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Reference {
        dir: dir.to_owned(),
        input_ids,
        logits,
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "logit counts differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn safetensors_logits_match_transformers() {
    let dirs = reference_dirs();
    assert!(dirs.len() >= 2, "expected the two bundled checkpoints, found {dirs:?}");

    for dir in dirs {
        let reference = read_reference(&dir);
        let model = Model::from_hf_dir(&reference.dir)
            .unwrap()
            .with_numerics(Numerics::Reference);
        let logits = model.forward(&reference.input_ids, 0, None).unwrap();
        let diff = max_abs_diff(&logits, &reference.logits);
        println!("{}: safetensors max abs diff {diff:.3e}", dir.display());
        assert!(diff <= TOLERANCE, "{}: max abs diff {diff}", dir.display());
    }
}

#[test]
fn gguf_f32_logits_match_transformers() {
    let temp = tempfile::tempdir().unwrap();
    for dir in reference_dirs() {
        let reference = read_reference(&dir);
        let gguf = temp.path().join(format!("{}.gguf", dir.file_name().unwrap().to_string_lossy()));
        let options = ConvertOptions {
            out_type: Some(GgmlType::F32),
            name: None,
        };
        let summary = convert_hf_to_gguf(&dir, &gguf, &options).unwrap();
        assert!(summary.n_tensors > 0);

        let model = Model::from_gguf(&gguf).unwrap().with_numerics(Numerics::Reference);
        let from_hf = Model::from_hf_dir(&dir).unwrap();
        assert_eq!(model.config(), from_hf.config(), "{}: configs differ", dir.display());

        let logits = model.forward(&reference.input_ids, 0, None).unwrap();
        let diff = max_abs_diff(&logits, &reference.logits);
        println!("{}: GGUF F32 max abs diff {diff:.3e}", dir.display());
        assert!(diff <= TOLERANCE, "{}: max abs diff {diff}", dir.display());
    }
}

#[test]
fn llama_cpp_numerics_stay_close() {
    for dir in reference_dirs() {
        let reference = read_reference(&dir);
        let model = Model::from_hf_dir(&reference.dir).unwrap();
        let logits = model.forward(&reference.input_ids, 0, None).unwrap();
        let diff = max_abs_diff(&logits, &reference.logits);
        println!("{}: llama.cpp numerics max abs diff {diff:.3e}", dir.display());
        assert!(diff <= LLAMA_CPP_TOLERANCE, "{}: max abs diff {diff}", dir.display());
    }
}

#[test]
fn logits_from_returns_tail_rows() {
    let dir = &reference_dirs()[0];
    let reference = read_reference(dir);
    let model = Model::from_hf_dir(dir).unwrap();
    let all = model.forward(&reference.input_ids, 0, None).unwrap();
    let tail = model.forward(&reference.input_ids, 30, None).unwrap();
    let n_vocab = model.config().n_vocab;
    assert_eq!(tail.len(), 10 * n_vocab);
    assert_eq!(&all[30 * n_vocab..], &tail[..]);
}
