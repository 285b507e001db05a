//! Tests against the real Gemma 3 270M Q4_K_M model (see `common::real_model`). Its
//! truncated headers are tested in `real_model_truncation.rs`.

mod common;

use std::collections::BTreeMap;

use gguf_format::{GgmlType, GgufFile, GgufWriter, Value, ValueType};

#[test]
fn real_model_lists_metadata_and_tensors() {
    let Some(path) = common::real_model() else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();

    assert_eq!(file.version(), 3);
    assert_eq!(file.metadata().len(), 33);
    assert_eq!(file.tensors().len(), 236);
    assert_eq!(
        file.metadata().get_str("general.architecture"),
        Ok("gemma3")
    );

    let tokens = file
        .metadata()
        .get_string_array("tokenizer.ggml.tokens")
        .unwrap();
    assert_eq!(tokens.len(), 262144);
    assert_eq!(
        file.metadata()
            .get_array("tokenizer.ggml.tokens")
            .unwrap()
            .element_type(),
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
    let Some(path) = common::real_model() else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let file_len = std::fs::metadata(&path).unwrap().len();

    let mut end = 0;
    for t in file.tensors() {
        let data = file.tensor_data(t);
        assert_eq!(data.len(), t.size_bytes, "{}", t.name);
        assert_eq!(
            file.tensor_bytes(&t.name).map(<[u8]>::len),
            Some(t.size_bytes)
        );
        end = end.max(file.data_offset() + t.offset + t.size_bytes as u64);
    }
    assert!(end <= file_len);
    assert!(file.tensor("no.such.tensor").is_none());
}

/// Rewrites `file` through [`GgufWriter`] with all its metadata and tensors, after `edit`
/// has changed the metadata.
fn rewrite(file: &GgufFile, path: &std::path::Path, edit: impl FnOnce(&mut GgufWriter)) {
    let mut writer = GgufWriter::from_file(file);
    for t in file.tensors() {
        writer
            .add_tensor(t.name.clone(), &t.dims, t.ggml_type)
            .unwrap();
    }
    edit(&mut writer);

    writer
        .write_to_path(path, |_, info, out| {
            out.write_all(file.tensor_bytes(&info.name).unwrap())?;
            Ok(())
        })
        .unwrap();
}

#[test]
fn real_model_rewrite_is_byte_identical() {
    let Some(path) = common::real_model() else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("rewritten.gguf");

    rewrite(&file, &out_path, |_| {});

    let original = std::fs::read(&path).unwrap();
    let rewritten = std::fs::read(&out_path).unwrap();
    assert_eq!(rewritten.len(), original.len());
    let first_difference = original.iter().zip(&rewritten).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "first differing byte");
}

#[test]
fn real_model_realigned_to_64_keeps_tensors() {
    let Some(path) = common::real_model() else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("aligned64.gguf");

    rewrite(&file, &out_path, |w| {
        w.metadata_mut().set("general.alignment", Value::U32(64))
    });

    let realigned = GgufFile::open(&out_path).unwrap();
    assert_eq!(realigned.alignment(), 64);
    assert_eq!(realigned.data_offset() % 64, 0);
    assert_eq!(realigned.tensors().len(), file.tensors().len());
    for t in file.tensors() {
        let info = realigned.tensor(&t.name).unwrap();
        assert_eq!(info.offset % 64, 0, "{}", t.name);
        assert_eq!(
            realigned.tensor_data(info),
            file.tensor_data(t),
            "{}",
            t.name
        );
    }

    // gguf-py must find every tensor at the same place with the same bytes.
    let script = r#"
import sys, hashlib
from gguf import GGUFReader
reader = GGUFReader(sys.argv[1])
print(reader.alignment)
for t in reader.tensors:
    print(t.name, t.data_offset, hashlib.sha256(t.data.tobytes()).hexdigest())
"#;
    let Some(stdout) = common::run_python(script, &[&out_path]) else {
        return;
    };
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("64"));

    let mut seen = 0;
    for line in lines {
        let fields: Vec<&str> = line.split(' ').collect();
        let info = realigned.tensor(fields[0]).unwrap();
        assert_eq!(
            fields[1],
            (realigned.data_offset() + info.offset).to_string(),
            "{}",
            info.name
        );
        assert_eq!(
            fields[2],
            common::sha256_hex(realigned.tensor_data(info)),
            "{}",
            info.name
        );
        seen += 1;
    }
    assert_eq!(seen, 236);
}
