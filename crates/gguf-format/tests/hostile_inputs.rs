//! Malformed and hostile GGUF files: each must give one typed error, never a panic.

mod common;

use common::RawGguf;
use gguf_format::{
    Array, GgmlType, GgufError, GgufView, GgufWriter, Metadata, MetadataError, Value, ValueType,
};

const F32: u32 = 0;
const TYPE_U8: u32 = 0;
const TYPE_U32: u32 = 4;
const TYPE_I32: u32 = 5;
const TYPE_STRING: u32 = 8;
const TYPE_ARRAY: u32 = 9;

fn parse_err(bytes: &[u8]) -> GgufError {
    match GgufView::parse(bytes) {
        Ok(_) => panic!("expected an error for {} bytes", bytes.len()),
        Err(e) => e,
    }
}

/// Returns a v3 file with one F32 tensor `t.weight` of `dims` at offset 0, padded and with
/// room for its data when the size is small.
fn one_tensor(dims: &[i64]) -> Vec<u8> {
    let mut raw = RawGguf::new(3, 1, 0);
    raw.tensor_info("t.weight", dims, F32, 0).pad_to(32);
    raw.bytes.extend_from_slice(&[0; 64]);
    raw.finish()
}

#[test]
fn empty_key_is_rejected_with_its_index() {
    let bytes: Vec<u8> = [
        &b"GGUF"[..],
        &3u32.to_le_bytes(),
        &0u64.to_le_bytes(),
        &1u64.to_le_bytes(),
        &0u64.to_le_bytes(),
        &TYPE_U8.to_le_bytes(),
        &[0],
    ]
    .concat();
    assert_eq!(bytes.len(), 37);

    let err = parse_err(&bytes);
    assert!(matches!(err, GgufError::EmptyKey { index: 0 }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "metadata pair 0 has an empty key; keys must be non-empty"
    );

    // The writer rejects it both when inserted and when set.
    let mut m = Metadata::new();
    assert!(matches!(
        m.insert("", Value::U8(0)),
        Err(GgufError::EmptyKey { index: 0 })
    ));
    m.set("", Value::U8(0));
    let err = GgufWriter::new(m)
        .write_to_vec(|_, _, _| Ok(()))
        .unwrap_err();
    assert!(matches!(err, GgufError::EmptyKey { index: 0 }), "{err:?}");
}

#[test]
fn zero_dimension_names_tensor_and_axis() {
    let err = parse_err(&one_tensor(&[4, 0]));
    assert!(
        matches!(&err, GgufError::InvalidDimension { tensor, axis: 1, value: 0 } if tensor == "t.weight"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "tensor 't.weight': dimension 1 must be positive, got 0"
    );

    let err = parse_err(&one_tensor(&[0, 4]));
    assert!(
        matches!(
            err,
            GgufError::InvalidDimension {
                axis: 0,
                value: 0,
                ..
            }
        ),
        "{err:?}"
    );

    let err = parse_err(&one_tensor(&[4, -3]));
    assert!(
        matches!(
            err,
            GgufError::InvalidDimension {
                axis: 1,
                value: -3,
                ..
            }
        ),
        "{err:?}"
    );

    // Products that wrap to 0 or past i64::MAX fail through checked multiplication.
    for dims in [[1 << 32, 1 << 32], [1 << 62, 4], [i64::MAX, 2]] {
        let err = parse_err(&one_tensor(&dims));
        assert!(
            matches!(err, GgufError::TensorTooLarge { .. }),
            "{dims:?}: {err:?}"
        );
    }

    // Empty tensors cannot be written either.
    let err = GgufWriter::default()
        .add_tensor("t.weight", &[4, 0], GgmlType::F32)
        .unwrap_err();
    assert!(
        matches!(err, GgufError::InvalidDimension { axis: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn declared_counts_are_bounded_by_file_size() {
    // (a) tensor count 2^63: negative as i64.
    let err = parse_err(&RawGguf::new(3, 0x8000_0000_0000_0000, 0).finish());
    assert!(
        matches!(&err, GgufError::CountTooLarge { field, .. } if field == "tensor count"),
        "{err:?}"
    );

    // A tensor count that fits i64 but not the bytes left: parsing stops at the end.
    let err = parse_err(&RawGguf::new(3, 1000, 0).finish());
    assert!(
        matches!(&err, GgufError::UnexpectedEof { field, .. } if field == "length of name of tensor 0"),
        "{err:?}"
    );

    // (b) an array of 2^62 u32 values in a file that ends after the count.
    let mut raw = RawGguf::new(3, 0, 1);
    raw.string(b"a").u32(TYPE_ARRAY).u32(TYPE_U32).u64(1 << 62);
    let err = parse_err(&raw.finish());
    assert!(
        matches!(err, GgufError::CountTooLarge { count, .. } if count == 1 << 62),
        "{err:?}"
    );

    // An array count larger than the file, under the 2^30 cap.
    let mut raw = RawGguf::new(3, 0, 1);
    raw.string(b"a")
        .u32(TYPE_ARRAY)
        .u32(TYPE_U32)
        .u64(100)
        .u32(1)
        .u32(2);
    let err = parse_err(&raw.finish());
    assert!(
        matches!(&err, GgufError::CountTooLarge { count: 100, reason, .. } if reason.contains("400 bytes")),
        "{err:?}"
    );

    // (c) a key length of 2^48 - 1 in a 32-byte file.
    let mut raw = RawGguf::new(3, 0, 1);
    raw.u64(0x0000_FFFF_FFFF_FFFF);
    let bytes = raw.finish();
    assert_eq!(bytes.len(), 32);
    let err = parse_err(&bytes);
    assert!(
        matches!(
            err,
            GgufError::StringTooLong {
                len: 0x0000_FFFF_FFFF_FFFF,
                offset: 24,
                ..
            }
        ),
        "{err:?}"
    );

    // A string value length of 2^40.
    let mut raw = RawGguf::new(3, 0, 1);
    raw.string(b"k").u32(TYPE_STRING).u64(1 << 40);
    let err = parse_err(&raw.finish());
    assert!(
        matches!(&err, GgufError::StringTooLong { len, field, .. } if *len == 1 << 40 && field.contains("'k'")),
        "{err:?}"
    );

    // A string length under the cap but past the end of the file.
    let mut raw = RawGguf::new(3, 0, 1);
    raw.string(b"k").u32(TYPE_STRING).u64(10).u8(b'x');
    let err = parse_err(&raw.finish());
    assert!(
        matches!(
            err,
            GgufError::UnexpectedEof {
                needed: 10,
                available: 1,
                ..
            }
        ),
        "{err:?}"
    );

    // (d), (e) n_dims of 10^6 and 5: ggml supports at most 4.
    for n_dims in [1_000_000u32, 5] {
        let mut raw = RawGguf::new(3, 1, 0);
        raw.string(b"t").u32(n_dims);
        raw.bytes.extend_from_slice(&[1; 64]);
        let err = parse_err(&raw.finish());
        assert!(
            matches!(err, GgufError::TooManyDimensions { n_dims: n, max: 4, .. } if n == u64::from(n_dims)),
            "{err:?}"
        );
    }
    let err = parse_err(&one_tensor(&[1, 1, 1, 1, 1]));
    assert!(
        matches!(err, GgufError::TooManyDimensions { n_dims: 5, .. }),
        "{err:?}"
    );
}

#[test]
fn duplicate_and_long_names_are_rejected() {
    // (a) two tensors with one name.
    let mut raw = RawGguf::new(3, 2, 0);
    raw.tensor_info("token_embd.weight", &[4], F32, 0)
        .tensor_info("token_embd.weight", &[4], F32, 32)
        .pad_to(32);
    raw.bytes.extend_from_slice(&[0; 64]);
    let err = parse_err(&raw.finish());
    assert_eq!(err.to_string(), "duplicate tensor name 'token_embd.weight'");

    // (b) one key twice.
    let mut raw = RawGguf::new(3, 0, 2);
    for _ in 0..2 {
        raw.string(b"general.architecture")
            .u32(TYPE_STRING)
            .string(b"gemma3");
    }
    let err = parse_err(&raw.finish());
    assert!(
        matches!(&err, GgufError::DuplicateKey { key } if key == "general.architecture"),
        "{err:?}"
    );

    // (c) 64 bytes is one too many (llama.cpp's 64-byte buffer includes the NUL); 63 loads.
    let name64 = "n".repeat(64);
    let name63 = "n".repeat(63);
    for (name, ok) in [(&name64, false), (&name63, true)] {
        let mut raw = RawGguf::new(3, 1, 0);
        raw.tensor_info(name, &[4], F32, 0)
            .pad_to(32)
            .f32_run(0.0, 4);
        let result = GgufView::parse(&raw.bytes).map(|v| v.tensors()[0].name.clone());
        match (result, ok) {
            (Ok(read), true) => assert_eq!(&read, name),
            (
                Err(GgufError::TensorNameTooLong {
                    len: 64, max: 63, ..
                }),
                false,
            ) => {}
            (other, _) => panic!("name of {} bytes: {other:?}", name.len()),
        }
    }

    // The writer rejects the same.
    let mut writer = GgufWriter::default();
    writer
        .add_tensor("token_embd.weight", &[4], GgmlType::F32)
        .unwrap();
    let err = writer
        .add_tensor("token_embd.weight", &[4], GgmlType::F32)
        .unwrap_err();
    assert!(
        matches!(err, GgufError::DuplicateTensorName { .. }),
        "{err:?}"
    );
    let err = writer
        .add_tensor(name64.clone(), &[4], GgmlType::F32)
        .unwrap_err();
    assert!(
        matches!(err, GgufError::TensorNameTooLong { len: 64, .. }),
        "{err:?}"
    );
    writer.add_tensor(name63, &[4], GgmlType::F32).unwrap();
    let err = writer.add_tensor("", &[4], GgmlType::F32).unwrap_err();
    assert!(matches!(err, GgufError::EmptyTensorName { .. }), "{err:?}");
}

/// Builds the three-tensor file of the alignment tests: `general.alignment` written by
/// `alignment_kv`, `general.name` = 36 × `x`, F32 `[4]` tensors `a`, `b`, `c` at offsets 0,
/// 64 and 128 holding 1-4, 5-8 and 9-12. With a u32 or i32 key the tensor infos end at
/// byte 224.
fn three_tensors(
    alignment_kv: impl FnOnce(&mut RawGguf),
    data_start: usize,
    pad_last: bool,
) -> Vec<u8> {
    let mut raw = RawGguf::new(3, 3, 2);
    alignment_kv(&mut raw);
    raw.string(b"general.name")
        .u32(TYPE_STRING)
        .string(&[b'x'; 36]);
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        raw.tensor_info(name, &[4], F32, 64 * i as u64);
    }
    assert!(raw.bytes.len() <= data_start);

    raw.bytes.resize(data_start, 0);
    for i in 0..3 {
        raw.bytes.resize(data_start + 64 * i, 0);
        raw.f32_run(1.0 + 4.0 * i as f32, 4);
    }
    if pad_last {
        raw.bytes.resize(data_start + 192, 0);
    }
    raw.finish()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn alignment_key_sets_data_layout() {
    // 64: data starts at 256, tensors at 256, 320 and 384.
    let bytes = three_tensors(
        |r| {
            r.kv_u32("general.alignment", 64);
        },
        256,
        true,
    );
    let view = GgufView::parse(&bytes).unwrap();
    assert_eq!(view.alignment(), 64);
    assert_eq!(view.data_offset(), 256);
    assert_eq!(f32s(view.tensor_bytes("a").unwrap()), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(f32s(view.tensor_bytes("b").unwrap()), [5.0, 6.0, 7.0, 8.0]);
    assert_eq!(
        f32s(view.tensor_bytes("c").unwrap()),
        [9.0, 10.0, 11.0, 12.0]
    );

    // No padding after the last tensor still loads.
    let bytes = three_tensors(
        |r| {
            r.kv_u32("general.alignment", 64);
        },
        256,
        false,
    );
    assert_eq!(bytes.len(), 256 + 128 + 16);
    let view = GgufView::parse(&bytes).unwrap();
    assert_eq!(
        f32s(view.tensor_bytes("c").unwrap()),
        [9.0, 10.0, 11.0, 12.0]
    );

    // 16 and 4 are powers of two: data starts at 224, already a multiple of both. The 48-byte
    // gaps between tensors are legal in the spec and accepted (llama.cpp rejects them).
    for alignment in [16, 4] {
        let bytes = three_tensors(
            |r| {
                r.kv_u32("general.alignment", alignment);
            },
            224,
            true,
        );
        let view = GgufView::parse(&bytes).unwrap();
        assert_eq!(view.data_offset(), 224, "alignment {alignment}");
        assert_eq!(
            f32s(view.tensor_bytes("b").unwrap()),
            [5.0, 6.0, 7.0, 8.0],
            "alignment {alignment}"
        );
    }

    // i32-typed key, a string, zero and non-powers of two are rejected.
    let err = parse_err(&three_tensors(
        |r| {
            r.string(b"general.alignment").u32(TYPE_I32).u32(32);
        },
        256,
        true,
    ));
    assert!(
        matches!(
            err,
            GgufError::AlignmentNotU32 {
                found: ValueType::I32
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "general.alignment has type i32, but it must be u32"
    );
    let err = parse_err(&three_tensors(
        |r| {
            r.string(b"general.alignment")
                .u32(TYPE_STRING)
                .string(b"32");
        },
        256,
        true,
    ));
    assert!(
        matches!(
            err,
            GgufError::AlignmentNotU32 {
                found: ValueType::String
            }
        ),
        "{err:?}"
    );
    for alignment in [0, 3, 48] {
        let err = parse_err(&three_tensors(
            |r| {
                r.kv_u32("general.alignment", alignment);
            },
            256,
            true,
        ));
        assert!(
            matches!(err, GgufError::InvalidAlignment { alignment: a } if a == alignment),
            "{err:?}"
        );
    }

    // The writer validates the key too, and packs tensors at multiples of it.
    let mut m = Metadata::new();
    m.insert("general.alignment", Value::U32(48)).unwrap();
    let err = GgufWriter::new(m)
        .write_to_vec(|_, _, _| Ok(()))
        .unwrap_err();
    assert!(
        matches!(err, GgufError::InvalidAlignment { alignment: 48 }),
        "{err:?}"
    );
}

#[test]
fn versions_and_byte_order_are_checked() {
    let model = |version: u32| {
        let mut raw = RawGguf::new(version, 1, 1);
        raw.kv_u32("k", 7)
            .tensor_info("t", &[4], F32, 0)
            .pad_to(32)
            .f32_run(1.0, 4)
            .pad_to(32);
        raw.finish()
    };

    let (v2_bytes, v3_bytes) = (model(2), model(3));
    let v2 = GgufView::parse(&v2_bytes).unwrap();
    let v3 = GgufView::parse(&v3_bytes).unwrap();
    assert_eq!(v2.version(), 2);
    assert_eq!(v3.version(), 3);
    assert_eq!(v2.metadata(), v3.metadata());
    assert_eq!(v2.tensors(), v3.tensors());
    assert_eq!(v2.tensor_bytes("t"), v3.tensor_bytes("t"));

    let err = parse_err(&model(1));
    assert!(matches!(err, GgufError::VersionOne), "{err:?}");
    assert!(err.to_string().starts_with("unsupported GGUF version 1"));
    for version in [0, 4] {
        let err = parse_err(&model(version));
        assert!(
            matches!(err, GgufError::UnsupportedVersion { version: v } if v == version),
            "{err:?}"
        );
    }

    // Version bytes 00 00 00 03: a big-endian v3 file.
    let err = parse_err(&model(0x0300_0000));
    assert!(
        matches!(
            err,
            GgufError::BigEndian {
                version: 0x0300_0000
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("big-endian"), "{err}");

    let err = parse_err(b"GGML\x03\0\0\0");
    assert!(matches!(err, GgufError::BadMagic { .. }), "{err:?}");
    let err = parse_err(b"GG");
    assert!(matches!(err, GgufError::BadMagic { .. }), "{err:?}");

    // Output is always v3, also when the input was v2.
    let mut writer = GgufWriter::new(v2.metadata().clone());
    writer.add_tensor("t", &[4], GgmlType::F32).unwrap();
    let bytes = writer
        .write_to_vec(|_, _, out| Ok(out.write_all(v2.tensor_bytes("t").unwrap())?))
        .unwrap();
    assert_eq!(bytes[4..8], 3u32.to_le_bytes());
    assert_eq!(bytes[8..], v3_bytes[8..]);
}

#[test]
fn string_and_empty_arrays_round_trip_exactly() {
    let tokens = ["<pad>", "<eos>", "<bos>", "▁a", "日本"];
    let mut m = Metadata::new();
    m.insert(
        "tokenizer.ggml.tokens",
        Value::Array(Array::String(tokens.map(String::from).to_vec())),
    )
    .unwrap();
    m.insert("x.empty", Value::Array(Array::String(Vec::new())))
        .unwrap();
    m.insert("x.after", Value::U32(9)).unwrap();
    let bytes = GgufWriter::new(m.clone())
        .write_to_vec(|_, _, _| Ok(()))
        .unwrap();

    // The exact encoding: key, ARRAY, STRING, count 5, then each length-prefixed item.
    let mut expected = RawGguf::new(3, 0, 3);
    expected
        .string(b"tokenizer.ggml.tokens")
        .u32(TYPE_ARRAY)
        .u32(TYPE_STRING)
        .u64(5);
    for t in tokens {
        expected.string(t.as_bytes());
    }
    expected
        .string(b"x.empty")
        .u32(TYPE_ARRAY)
        .u32(TYPE_STRING)
        .u64(0);
    expected.kv_u32("x.after", 9).pad_to(32);
    assert!(bytes == expected.bytes, "encoding differs");
    assert!(
        bytes.windows(3).any(|w| w == [0xe2, 0x96, 0x81]),
        "'▁' is e2 96 81"
    );

    // Read back: the empty array keeps its type, and the next key parses.
    let view = GgufView::parse(&bytes).unwrap();
    assert_eq!(view.metadata(), &m);
    assert_eq!(
        view.metadata().get_array("x.empty").unwrap().element_type(),
        ValueType::String
    );
    assert_eq!(view.metadata().get_u32("x.after"), Ok(9));

    // A lone string where an array is required is a type error, never an array of u8.
    let mut m = Metadata::new();
    m.insert("tokenizer.ggml.tokens", Value::from("<pad>"))
        .unwrap();
    assert_eq!(
        m.get_string_array("tokenizer.ggml.tokens"),
        Err(MetadataError::WrongType {
            key: "tokenizer.ggml.tokens".into(),
            expected: ValueType::Array,
            found: ValueType::String
        })
    );
}

#[test]
fn nested_arrays_are_rejected() {
    let mut raw = RawGguf::new(3, 0, 1);
    raw.string(b"a")
        .u32(TYPE_ARRAY)
        .u32(TYPE_ARRAY)
        .u64(1)
        .u32(TYPE_U8)
        .u64(1)
        .u8(1);
    let err = parse_err(&raw.finish());
    assert!(
        matches!(&err, GgufError::NestedArray { key, offset: 37 } if key == "a"),
        "{err:?}"
    );
}

#[test]
fn unknown_value_types_are_rejected() {
    let mut raw = RawGguf::new(3, 0, 1);
    raw.string(b"a").u32(13).u32(0);
    let err = parse_err(&raw.finish());
    assert!(
        matches!(err, GgufError::UnknownValueType { type_id: 13, .. }),
        "{err:?}"
    );
}

#[test]
fn invalid_bool_and_utf8_are_rejected() {
    let mut raw = RawGguf::new(3, 0, 1);
    raw.string(b"b").u32(7).u8(2);
    let err = parse_err(&raw.finish());
    assert!(
        matches!(err, GgufError::InvalidBool { byte: 2, .. }),
        "{err:?}"
    );

    let mut raw = RawGguf::new(3, 0, 1);
    raw.string(b"s").u32(TYPE_STRING).string(&[0xff, 0xfe]);
    let err = parse_err(&raw.finish());
    assert!(
        matches!(&err, GgufError::InvalidUtf8 { field, .. } if field.contains("'s'")),
        "{err:?}"
    );
}

#[test]
fn removed_ggml_type_id_is_rejected() {
    for type_id in [4, 5, 31, 36, 43] {
        let mut raw = RawGguf::new(3, 1, 0);
        raw.tensor_info("t", &[32], type_id, 0).pad_to(32);
        raw.bytes.extend_from_slice(&[0; 256]);
        let err = parse_err(&raw.finish());
        assert!(
            matches!(err, GgufError::UnknownGgmlType { type_id: t, .. } if t == type_id),
            "{err:?}"
        );
    }
}

#[test]
fn row_length_must_be_block_multiple() {
    let mut raw = RawGguf::new(3, 1, 0);
    raw.tensor_info("q", &[100, 2], GgmlType::Q4_K.id(), 0)
        .pad_to(32);
    raw.bytes.extend_from_slice(&[0; 512]);
    let err = parse_err(&raw.finish());
    assert!(
        matches!(
            err,
            GgufError::RowNotBlockAligned {
                row_len: 100,
                block_size: 256,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("row length (ne0) 100"), "{err}");
}

#[test]
fn tensor_offsets_are_validated() {
    let two = |offset_b: u64, data_len: usize| {
        let mut raw = RawGguf::new(3, 2, 0);
        raw.tensor_info("a", &[16], F32, 0)
            .tensor_info("b", &[16], F32, offset_b)
            .pad_to(32);
        raw.bytes.resize(raw.bytes.len() + data_len, 0);
        raw.finish()
    };
    assert!(GgufView::parse(&two(64, 128)).is_ok());

    let err = parse_err(&two(64, 100));
    assert!(
        matches!(&err, GgufError::TensorOutOfBounds { tensor, data_len: 100, .. } if tensor == "b"),
        "{err:?}"
    );

    let err = parse_err(&two(u64::MAX - 31, 128));
    assert!(
        matches!(err, GgufError::TensorOutOfBounds { .. }),
        "{err:?}"
    );

    let err = parse_err(&two(32, 128));
    assert!(
        matches!(&err, GgufError::OverlappingTensors { first, second, .. } if first == "a" && second == "b"),
        "{err:?}"
    );

    let err = parse_err(&two(0, 128));
    assert!(
        matches!(err, GgufError::OverlappingTensors { .. }),
        "{err:?}"
    );

    let err = parse_err(&two(72, 128));
    assert!(
        matches!(
            err,
            GgufError::MisalignedTensor {
                offset: 72,
                alignment: 32,
                ..
            }
        ),
        "{err:?}"
    );

    // A data section that starts past the end of a truncated file.
    let mut raw = RawGguf::new(3, 1, 0);
    raw.tensor_info("a", &[4], F32, 0);
    let err = parse_err(&raw.finish());
    assert!(
        matches!(err, GgufError::DataSectionPastEnd { .. }),
        "{err:?}"
    );
}
