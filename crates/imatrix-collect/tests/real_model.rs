//! Collection on Gemma 3 270M against llama.cpp's imatrix of the same run.
//!
//! llama.cpp made `tests/data/imatrix-en.gguf` with `llama-imatrix -c 512 --chunks 40` on
//! calibration_datav3.txt and the F32 dequantization of the Q4_K_M model. This test rebuilds
//! that F32 base from the Q4_K_M file, collects with the same settings (llama.cpp's default
//! batch sizes, so four chunks per batch), and requires every count and every `in_sum2`
//! value to be bit-identical to llama.cpp's.
#![cfg(feature = "gemma2")]

use std::path::PathBuf;
use std::sync::Arc;

use gemma2_model::Model;
use gguf_format::{GgmlType, GgufFile, GgufWriter};
use imatrix_collect::{collect_from_text, compare, CollectParams, Imatrix};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Returns the model path, or `None` (after a loud message) when it is missing outside CI.
fn model_path() -> Option<PathBuf> {
    let path = std::env::var_os("GEMMA3_270M_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models/gemma-3-270m-q4_k_m.gguf"));
    if path.exists() {
        return Some(path);
    }

    let message = format!(
        "model missing: {} (run scripts/fetch-model.sh)",
        path.display()
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    eprintln!("\n*** skipped: {message} ***\n");
    None
}

/// Returns the bytes of `source` with every tensor dequantized to F32, as
/// `llama-quantize --allow-requantize MODEL base-f32.gguf F32` writes them. The base stays in
/// memory (about 1.1 GB), so a failed run leaves nothing on disk.
fn f32_base(source: &GgufFile) -> Vec<u8> {
    let mut writer = GgufWriter::from_file(source);
    for info in source.tensors() {
        writer
            .add_tensor(info.name.clone(), &info.dims, GgmlType::F32)
            .unwrap();
    }
    let mut bytes = Vec::new();
    writer
        .write_to(&mut bytes, |index, _info, sink| {
            let info = &source.tensors()[index];
            let values = kquant::dequantize(
                info.ggml_type,
                source.tensor_data(info),
                info.dims[0] as usize,
            )
            .unwrap_or_else(|e| panic!("dequantizing {}: {e}", info.name));
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            sink.write_all(&bytes)?;
            Ok(())
        })
        .unwrap();
    bytes
}

#[test]
fn matches_llama_imatrix_on_f32_base() {
    let Some(path) = model_path() else { return };
    let quantized = GgufFile::open(&path).unwrap();
    let base = GgufFile::from_bytes(f32_base(&quantized)).unwrap();
    drop(quantized);
    let model = Model::from_gguf_file(Arc::new(base)).unwrap();

    let text = std::fs::read(repo_root().join("data/calibration_datav3.txt"))
        .expect("data/calibration_datav3.txt");
    let params = CollectParams {
        n_ctx: 512,
        chunks: Some(40),
        dataset: "calibration_datav3.txt".to_owned(),
        ..CollectParams::default()
    };
    let outcome = collect_from_text(&model, &text, &params, |report| {
        if let Some(ppl) = report.ppl {
            eprintln!(
                "[{}/{}] {:.1} s, PPL {:.4}",
                report.done, report.total, report.elapsed_s, ppl.ppl
            );
        }
    })
    .unwrap();

    let reference =
        Imatrix::load(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/imatrix-en.gguf"))
            .unwrap();
    let report = compare(&outcome.imatrix, &reference);
    eprintln!("{report}");
    eprintln!(
        "collected {} chunks, {} tokens in {:.1} s: {:.1} tokens/s, PPL {:?}",
        outcome.n_chunks,
        outcome.n_tokens,
        outcome.elapsed_s,
        outcome.tokens_per_second(),
        outcome.ppl
    );

    eprintln!("min cosine {:.10}", report.min_cosine().unwrap_or(0.0));

    assert_eq!(outcome.imatrix.chunk_count(), reference.chunk_count());
    assert!(
        report.only_in_a.is_empty(),
        "only in ours: {:?}",
        report.only_in_a
    );
    assert!(
        report.only_in_b.is_empty(),
        "only in llama.cpp's: {:?}",
        report.only_in_b
    );
    assert!(
        report.shape_differences.is_empty(),
        "{:?}",
        report.shape_differences
    );
    assert_eq!(report.tensors.len(), 126);
    for tensor in &report.tensors {
        assert_eq!(tensor.count_a, tensor.count_b, "{}: counts", tensor.name);
    }

    let mut differing = Vec::new();
    for (name, ours) in outcome.imatrix.entries() {
        let theirs = reference.entry(name).expect("same names, checked above");
        let n_diff = ours
            .in_sum2()
            .iter()
            .zip(theirs.in_sum2())
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        if n_diff > 0 {
            differing.push(format!("{name}: {n_diff} of {} values", ours.in_sum2().len()));
        }
    }
    eprintln!("in_sum2 values that differ from llama.cpp's: {} tensors", differing.len());
    assert!(differing.is_empty(), "in_sum2 differs from llama-imatrix's:\n{}", differing.join("\n"));
}
