//! `quantize_model_to_writer` on small in-memory models: the bytes match `quantize_model`'s
//! file, checks that fail before writing leave the writer empty, and bad weights give typed
//! errors.

use std::collections::BTreeMap;

use gguf_format::{GgmlType, GgufFile, GgufWriter, Metadata, Value};
use kquant::pipeline::{quantize_model, quantize_model_to_writer, ImportanceMatrix, PipelineError, QuantizeOptions};
use kquant::plan::FileType;

const TENSOR: &str = "blk.0.ffn_up.weight";

/// Returns a one-layer F32 model with one 256 x 4 tensor whose values come from `value`.
fn f32_model(value: impl Fn(usize) -> f32) -> GgufFile {
    let mut metadata = Metadata::new();
    metadata.insert("general.architecture", Value::String("gemma2".into())).unwrap();
    metadata.insert("gemma2.block_count", Value::U32(1)).unwrap();
    metadata.insert("gemma2.attention.head_count", Value::U32(1)).unwrap();

    let mut writer = GgufWriter::new(metadata);
    writer.add_tensor(TENSOR, &[256, 4], GgmlType::F32).unwrap();
    let mut bytes = Vec::new();
    writer
        .write_to(&mut bytes, |_, _, out| {
            let values: Vec<f32> = (0..1024).map(&value).collect();
            out.write_all(bytemuck::cast_slice(&values))?;
            Ok(())
        })
        .unwrap();
    GgufFile::from_bytes(bytes).unwrap()
}

#[test]
fn writer_bytes_equal_file_bytes() {
    let source = f32_model(|i| (i as f32 * 0.01).sin());
    let options = QuantizeOptions::new(FileType::Q4_K_M);

    let mut streamed = Vec::new();
    quantize_model_to_writer(&source, &mut streamed, &options, &mut |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.gguf");
    quantize_model(&source, &path, &options, &mut |_| {}).unwrap();

    assert_eq!(streamed, std::fs::read(&path).unwrap());
}

#[test]
fn writer_stays_empty_on_bad_imatrix() {
    let source = f32_model(|i| (i as f32 * 0.01).sin());
    let mut options = QuantizeOptions::new(FileType::Q4_K_M);
    options.imatrix = Some(ImportanceMatrix {
        file: "short.gguf".into(),
        datasets: Vec::new(),
        chunk_count: 1,
        entries: BTreeMap::from([(TENSOR.to_owned(), vec![1.0; 100])]),
    });

    let mut out = Vec::new();
    let error = quantize_model_to_writer(&source, &mut out, &options, &mut |_| {}).unwrap_err();

    assert!(matches!(error, PipelineError::ImatrixLength { expected: 256, found: 100, .. }), "{error}");
    assert!(out.is_empty(), "{} bytes written", out.len());
}

#[test]
fn nan_weight_is_a_quant_error() {
    let source = f32_model(|i| if i == 300 { f32::NAN } else { 0.5 });
    let options = QuantizeOptions::new(FileType::Q8_0);

    let mut out = Vec::new();
    let error = quantize_model_to_writer(&source, &mut out, &options, &mut |_| {}).unwrap_err();

    assert!(matches!(error, PipelineError::Quant { ref tensor, .. } if tensor == TENSOR), "{error}");
    assert!(error.to_string().contains(TENSOR), "{error}");
}
