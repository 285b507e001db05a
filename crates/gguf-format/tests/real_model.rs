//! Tests against the real Gemma 3 270M Q4_K_M model (see `common::real_model`).

mod common;

use std::collections::BTreeMap;

use gguf_format::{GgmlType, GgufFile, ValueType};

#[test]
fn real_model_lists_metadata_and_tensors() {
    let Some(path) = common::real_model() else { return };
    let file = GgufFile::open(&path).unwrap();

    assert_eq!(file.version(), 3);
    assert_eq!(file.metadata().len(), 33);
    assert_eq!(file.tensors().len(), 236);
    assert_eq!(file.metadata().get_str("general.architecture"), Ok("gemma3"));

    let tokens = file.metadata().get_string_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 262144);
    assert_eq!(
        file.metadata().get_array("tokenizer.ggml.tokens").unwrap().element_type(),
        ValueType::String
    );

    let mut counts: BTreeMap<GgmlType, usize> = BTreeMap::new();
    for t in file.tensors() {
        *counts.entry(t.ggml_type).or_default() += 1;
    }
    let expected = BTreeMap::from([
        (GgmlType::F32, 109),
        (GgmlType::Q5_0, 81),
        (GgmlType::Q4_K, 27),
        (GgmlType::Q8_0, 10),
        (GgmlType::Q6_K, 9),
    ]);
    assert_eq!(counts, expected);
}

#[test]
fn real_model_tensor_data_is_in_file() {
    let Some(path) = common::real_model() else { return };
    let file = GgufFile::open(&path).unwrap();
    let file_len = std::fs::metadata(&path).unwrap().len();

    let mut end = 0;
    for t in file.tensors() {
        let data = file.tensor_data(t);
        assert_eq!(data.len(), t.size_bytes, "{}", t.name);
        assert_eq!(file.tensor_bytes(&t.name).map(<[u8]>::len), Some(t.size_bytes));
        end = end.max(file.data_offset() + t.offset + t.size_bytes as u64);
    }
    assert!(end <= file_len);
    assert!(file.tensor("no.such.tensor").is_none());
}
