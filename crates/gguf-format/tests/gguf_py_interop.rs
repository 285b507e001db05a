//! Interop with gguf-py: its files read the same here, and files written here read the same
//! in its `GGUFReader`.

mod common;

use std::path::{Path, PathBuf};

use gguf_format::{Array, GgmlType, GgufFile, GgufWriter, Metadata, Value, ValueType};
use serde_json::{json, Value as Json};

const FIXTURES: [&str; 3] = [
    "gguf_py_all_types.gguf",
    "gguf_py_aligned64.gguf",
    "gguf_py_no_tensors.gguf",
];

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Returns gguf-py's name for a value type (`GGUFValueType` member names).
fn gguf_py_type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::U8 => "UINT8",
        ValueType::I8 => "INT8",
        ValueType::U16 => "UINT16",
        ValueType::I16 => "INT16",
        ValueType::U32 => "UINT32",
        ValueType::I32 => "INT32",
        ValueType::F32 => "FLOAT32",
        ValueType::Bool => "BOOL",
        ValueType::String => "STRING",
        ValueType::Array => "ARRAY",
        ValueType::U64 => "UINT64",
        ValueType::I64 => "INT64",
        ValueType::F64 => "FLOAT64",
    }
}

/// Converts a scalar to the JSON form of `make_gguf_fixtures.py` (floats as bit patterns).
fn scalar_json(v: &Value) -> Json {
    match v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::F32(x) => json!(x.to_bits()),
        Value::Bool(x) => json!(x),
        Value::String(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F64(x) => json!(x.to_bits()),
        Value::Array(_) => panic!("arrays are not scalars"),
    }
}

/// Describes `file` in the JSON form that `describe()` in `make_gguf_fixtures.py` produces.
fn describe(file: &GgufFile) -> Json {
    let metadata: Vec<Json> = file
        .metadata()
        .iter()
        .map(|(key, value)| match value {
            Value::Array(array) => {
                let items: Vec<Json> = (0..array.len()).map(|i| scalar_json(&array.get(i).unwrap())).collect();
                json!({
                    "key": key,
                    "type": "ARRAY",
                    "element_type": gguf_py_type_name(array.element_type()),
                    "value": items,
                })
            }
            scalar => json!({ "key": key, "type": gguf_py_type_name(scalar.value_type()), "value": scalar_json(scalar) }),
        })
        .collect();

    let tensors: Vec<Json> = file
        .tensors()
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "dims": t.dims,
                "ggml_type": t.ggml_type.name(),
                "offset": t.offset,
                "size_bytes": t.size_bytes,
                "sha256": common::sha256_hex(file.tensor_data(t)),
            })
        })
        .collect();

    json!({
        "version": file.version(),
        "alignment": file.alignment(),
        "data_offset": file.data_offset(),
        "metadata": metadata,
        "tensors": tensors,
    })
}

/// Copies `file` (metadata and tensors) through [`GgufWriter`] into memory.
fn rewrite(file: &GgufFile) -> Vec<u8> {
    let mut writer = GgufWriter::from_file(file);
    for t in file.tensors() {
        writer
            .add_tensor(t.name.clone(), &t.dims, t.ggml_type)
            .unwrap();
    }
    writer
        .write_to_vec(|_, info, out| Ok(out.write_all(file.tensor_bytes(&info.name).unwrap())?))
        .unwrap()
}

#[test]
fn gguf_py_fixtures_read_identically() {
    let expected: Json = serde_json::from_str(
        &std::fs::read_to_string(data_dir().join("gguf_py_expected.json")).unwrap(),
    )
    .unwrap();

    for name in FIXTURES {
        let file = GgufFile::open(data_dir().join(name)).unwrap();
        let ours = describe(&file);
        let theirs = &expected[name];

        assert_eq!(ours["version"], theirs["version"], "{name}");
        assert_eq!(ours["alignment"], theirs["alignment"], "{name}");
        assert_eq!(ours["data_offset"], theirs["data_offset"], "{name}");
        assert_eq!(ours["metadata"], theirs["metadata"], "{name}");
        assert_eq!(ours["tensors"], theirs["tensors"], "{name}");
    }
}

#[test]
fn gguf_py_fixtures_rewrite_byte_identical() {
    for name in FIXTURES {
        let original = std::fs::read(data_dir().join(name)).unwrap();
        let file = GgufFile::from_bytes(original.clone()).unwrap();
        assert!(
            rewrite(&file) == original,
            "{name}: our writer's bytes differ from gguf-py's"
        );
    }
}

/// Builds a file with every value type, an empty typed array and tensors of several types.
fn all_types_file() -> Vec<u8> {
    let mut m = Metadata::new();
    m.insert("general.architecture", "gemma3".into()).unwrap();
    m.insert("t.u8", Value::U8(7)).unwrap();
    m.insert("t.i8", Value::I8(-7)).unwrap();
    m.insert("t.u16", Value::U16(700)).unwrap();
    m.insert("t.i16", Value::I16(-700)).unwrap();
    m.insert("t.u32", Value::U32(70000)).unwrap();
    m.insert("t.i32", Value::I32(-70000)).unwrap();
    m.insert("t.f32", Value::F32(0.1)).unwrap();
    m.insert("t.bool", Value::Bool(false)).unwrap();
    m.insert("t.string", "▁日本 text".into()).unwrap();
    m.insert("t.u64", Value::U64(1 << 40)).unwrap();
    m.insert("t.i64", Value::I64(-(1 << 40))).unwrap();
    m.insert("t.f64", Value::F64(-0.3)).unwrap();
    m.insert(
        "t.tokens",
        Value::Array(Array::String(vec![
            "<pad>".into(),
            "▁a".into(),
            "日本".into(),
        ])),
    )
    .unwrap();
    m.insert("t.scores", Value::from(vec![0.5f32, -1.0, 2.25]))
        .unwrap();
    m.insert("t.types", Value::from(vec![1i32, 2, 3])).unwrap();
    m.insert("t.flags", Value::from(vec![true, false])).unwrap();
    m.insert("t.u64s", Value::from(vec![u64::MAX, 0])).unwrap();
    m.insert("t.empty", Value::Array(Array::String(Vec::new())))
        .unwrap();
    m.insert("t.after_empty", Value::U32(42)).unwrap();

    let mut writer = GgufWriter::new(m);
    writer.add_tensor("w.f32", &[4, 3], GgmlType::F32).unwrap();
    writer
        .add_tensor("w.q8_0", &[64, 2], GgmlType::Q8_0)
        .unwrap();
    writer.add_tensor("w.q6_k", &[256], GgmlType::Q6_K).unwrap();
    writer
        .add_tensor("w.f16", &[3, 1, 2, 1], GgmlType::F16)
        .unwrap();
    writer
        .write_to_vec(|i, info, out| {
            let bytes: Vec<u8> = (0..info.size_bytes).map(|j| (i * 31 + j) as u8).collect();
            Ok(out.write_all(&bytes)?)
        })
        .unwrap()
}

#[test]
fn our_file_reads_identically_in_gguf_py() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ours.gguf");
    std::fs::write(&path, all_types_file()).unwrap();
    let ours = describe(&GgufFile::open(&path).unwrap());

    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
    let script = "import sys, json\n\
                  sys.path.insert(0, sys.argv[1])\n\
                  from make_gguf_fixtures import describe\n\
                  print(json.dumps(describe(sys.argv[2])))\n";
    let Some(stdout) = common::run_python(script, &[&scripts, &path]) else {
        return;
    };
    let theirs: Json = serde_json::from_str(&stdout).unwrap();

    assert_eq!(ours["version"], theirs["version"]);
    assert_eq!(ours["alignment"], theirs["alignment"]);
    assert_eq!(ours["data_offset"], theirs["data_offset"]);
    assert_eq!(ours["metadata"], theirs["metadata"]);
    assert_eq!(ours["tensors"], theirs["tensors"]);
}
