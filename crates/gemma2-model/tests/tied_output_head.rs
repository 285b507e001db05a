//! A GGUF without `output.weight` uses `token_embd.weight` as the LM head, and one whose
//! `output.weight` equals `token_embd.weight` gives the same logits.

use std::path::Path;

use gemma2_model::{convert_hf_to_gguf, ConvertOptions, Model};
use gguf_format::{GgufFile, GgufWriter};

#[test]
fn explicit_output_equals_tied_head() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf-tiny/gemma2-tiny");
    let temp = tempfile::tempdir().unwrap();
    let tied = temp.path().join("tied.gguf");
    convert_hf_to_gguf(&dir, &tied, &ConvertOptions::default()).unwrap();

    let file = GgufFile::open(&tied).unwrap();
    assert!(file.tensor("output.weight").is_none());
    let embd = file.tensor("token_embd.weight").unwrap().clone();

    // Copy every tensor and add output.weight with the embedding's bytes.
    let mut writer = GgufWriter::from_file(&file);
    for info in file.tensors() {
        writer.add_tensor(info.name.clone(), &info.dims, info.ggml_type).unwrap();
    }
    writer.add_tensor("output.weight", &embd.dims, embd.ggml_type).unwrap();
    let untied = temp.path().join("untied.gguf");
    let n_file_tensors = file.tensors().len();
    writer
        .write_to_path(&untied, |index, _info, sink| {
            let source = if index < n_file_tensors { &file.tensors()[index] } else { &embd };
            sink.write_all(file.tensor_data(source))?;
            Ok(())
        })
        .unwrap();

    let tokens = [2u32, 17, 400, 9, 311, 5];
    let a = Model::from_gguf(&tied).unwrap().forward(&tokens, 0, None).unwrap();
    let b = Model::from_gguf(&untied).unwrap().forward(&tokens, 0, None).unwrap();
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(diff <= 1e-6, "max abs diff {diff}");
}
