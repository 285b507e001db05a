//! Malformed, truncated and mismatched imatrix files: typed errors, never panics.

use std::path::PathBuf;

use gguf_format::{Array, GgmlType, GgufWriter, Metadata, Value};
use imatrix_collect::{Imatrix, ImatrixEntry, ImatrixError, ImatrixFormat, MAX_NAME_LEN};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Builds a legacy `.dat` file from `(name, ncall, values)` entries and a trailer.
fn dat_bytes(entries: &[(&[u8], i32, i32, &[f32])], chunk_count: i32, dataset: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(entries.len() as i32).to_le_bytes());
    for &(name, ncall, nval, values) in entries {
        out.extend_from_slice(&(name.len() as i32).to_le_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&ncall.to_le_bytes());
        out.extend_from_slice(&nval.to_le_bytes());
        for value in values {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    out.extend_from_slice(&chunk_count.to_le_bytes());
    out.extend_from_slice(&(dataset.len() as i32).to_le_bytes());
    out.extend_from_slice(dataset);
    out
}

/// A raw tensor for [`gguf_bytes`]: name, dims, type and f32 data.
type RawTensor<'a> = (&'a str, &'a [u64], GgmlType, Vec<f32>);

/// Builds a GGUF imatrix from raw tensors.
fn gguf_bytes(general_type: &str, tensors: &[RawTensor<'_>]) -> Vec<u8> {
    let mut metadata = Metadata::new();
    metadata.set("general.type", Value::String(general_type.to_owned()));
    metadata.set(
        "imatrix.datasets",
        Value::Array(Array::String(vec!["t.txt".to_owned()])),
    );
    metadata.set("imatrix.chunk_count", Value::U32(1));
    metadata.set("imatrix.chunk_size", Value::U32(512));

    let mut writer = GgufWriter::new(metadata);
    for (name, dims, ggml_type, _) in tensors {
        writer.add_tensor(*name, dims, *ggml_type).unwrap();
    }
    writer
        .write_to_vec(|index, info, sink| {
            let values = &tensors[index].3;
            let bytes: Vec<u8> = match info.ggml_type {
                GgmlType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                _ => vec![0; info.size_bytes],
            };
            sink.write_all(&bytes)?;
            Ok(())
        })
        .unwrap()
}

/// Builds a 2-entry imatrix: `blk.0.attn_q.weight` with 4 columns and `blk.0.ffn_down.weight`
/// with 8, both over 2 chunks of 512.
fn two_entries() -> Imatrix {
    let mut imatrix = Imatrix::new(512);
    imatrix.set_chunk_count(2);
    imatrix.push_dataset("calib.txt");
    let q = ImatrixEntry::new(
        "blk.0.attn_q.weight",
        4,
        vec![1024.0, 2048.0, 0.0, 512.0],
        vec![1024],
    )
    .unwrap();
    let down = ImatrixEntry::new(
        "blk.0.ffn_down.weight",
        8,
        (1..=8).map(|i| i as f32 * 1024.0).collect(),
        vec![1024],
    )
    .unwrap();
    imatrix.insert("blk.0.attn_q.weight", q);
    imatrix.insert("blk.0.ffn_down.weight", down);
    imatrix
}

#[test]
fn format_detected_from_bytes_not_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let imatrix = two_entries();

    // Both formats under both suffixes.
    let cases = [
        ("gguf-as.dat", ImatrixFormat::Gguf),
        ("gguf-as.gguf", ImatrixFormat::Gguf),
        ("dat-as.gguf", ImatrixFormat::Dat),
        ("dat-as.dat", ImatrixFormat::Dat),
    ];
    let mut loaded = Vec::new();
    for (file, format) in cases {
        let path = dir.path().join(file);
        imatrix.save(&path, format).unwrap();
        assert_eq!(
            ImatrixFormat::detect(&std::fs::read(&path).unwrap()),
            format,
            "{file}"
        );
        loaded.push(Imatrix::load(&path).unwrap());
    }

    // Sums and counts are multiples of 512, so both formats load exactly equal.
    for (index, back) in loaded.iter().enumerate() {
        assert_eq!(back, &imatrix, "case {index}");
    }
}

#[test]
fn dat_writer_sets_nval_to_all_floats() {
    let mut imatrix = Imatrix::new(512);
    let experts = ImatrixEntry::new(
        "blk.0.ffn_up_exps.weight",
        3,
        vec![512.0; 6],
        vec![512, 512],
    )
    .unwrap();
    imatrix.insert("blk.0.ffn_up_exps.weight", experts);
    let bytes = imatrix.to_dat_bytes().unwrap();

    let name_len = i32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    let nval_at = 8 + name_len + 4;
    let nval = i32::from_le_bytes(bytes[nval_at..nval_at + 4].try_into().unwrap());
    assert_eq!(nval, 6);
}

#[test]
fn dat_short_nval_reports_entry_index() {
    // Entry 0 declares 2 values but 4 follow, so entry 1's name length reads a float.
    let values = [1.0f32, 2.0, 3.0, 4.0];
    let mut bytes = dat_bytes(&[(b"blk.0.attn_q.weight", 1, 4, &values)], 1, b"x");
    bytes[0..4].copy_from_slice(&2i32.to_le_bytes());
    let nval_at = 4 + 4 + 19 + 4;
    bytes[nval_at..nval_at + 4].copy_from_slice(&2i32.to_le_bytes());

    let error = Imatrix::from_bytes(&bytes).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            ImatrixError::OutOfRange { .. } | ImatrixError::UnexpectedEof { .. }
        ),
        "{message}"
    );
    assert!(message.contains("entry 1"), "{message}");
}

#[test]
fn dat_truncated_everywhere_is_an_error() {
    let original = std::fs::read(data("imatrix-en.dat")).unwrap();

    // Every cut inside the first two entries and the trailer, then every 997th byte.
    let mut cuts: Vec<usize> = (0..6000).collect();
    cuts.extend((6000..original.len() - 40).step_by(997));
    cuts.extend(original.len() - 40..original.len());
    for cut in cuts {
        let result = Imatrix::from_bytes(&original[..cut]);
        // A cut exactly before the trailer is a valid old-style file without one.
        if result.is_ok() {
            let without_trailer = original.len() - 4 - 4 - dataset_len(&original);
            assert_eq!(cut, without_trailer, "cut at {cut} parsed");
        }
    }
}

fn dataset_len(dat: &[u8]) -> usize {
    // The dataset path is the last field; find its length field by scanning back.
    (0..dat.len() - 4)
        .rev()
        .find(|&at| {
            i32::from_le_bytes(dat[at..at + 4].try_into().unwrap()) as usize == dat.len() - at - 4
        })
        .map(|at| dat.len() - at - 4)
        .unwrap()
}

#[test]
fn dat_rejects_bad_fields() {
    let name = b"blk.0.attn_q.weight" as &[u8];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("negative entry count", (-1i32).to_le_bytes().to_vec()),
        ("huge entry count", i32::MAX.to_le_bytes().to_vec()),
        (
            "negative ncall",
            dat_bytes(&[(name, -1, 1, &[1.0])], 1, b""),
        ),
        ("negative nval", dat_bytes(&[(name, 1, -4, &[])], 1, b"")),
        ("zero nval", dat_bytes(&[(name, 1, 0, &[])], 1, b"")),
        (
            "nval past end",
            dat_bytes(&[(name, 1, 1000, &[1.0])], 1, b""),
        ),
        (
            "NaN value",
            dat_bytes(&[(name, 1, 2, &[1.0, f32::NAN])], 1, b""),
        ),
        (
            "infinite value",
            dat_bytes(&[(name, 1, 1, &[f32::INFINITY])], 1, b""),
        ),
        (
            "negative value",
            dat_bytes(&[(name, 1, 1, &[-1.0])], 1, b""),
        ),
        (
            "invalid UTF-8 name",
            dat_bytes(&[(&[0xff, 0xfe], 1, 1, &[1.0])], 1, b""),
        ),
        (
            "duplicate entry",
            dat_bytes(&[(name, 1, 1, &[1.0]), (name, 1, 1, &[1.0])], 1, b""),
        ),
        (
            "negative chunk count",
            dat_bytes(&[(name, 1, 1, &[1.0])], -3, b""),
        ),
    ];
    for (case, bytes) in cases {
        let result = Imatrix::from_bytes(&bytes);
        assert!(result.is_err(), "{case}: parsed");
    }

    let mut trailing = dat_bytes(&[(name, 1, 1, &[1.0])], 1, b"x");
    trailing.push(0);
    assert!(matches!(
        Imatrix::from_bytes(&trailing),
        Err(ImatrixError::TrailingBytes { count: 1 })
    ));

    let mut long_name = 1i32.to_le_bytes().to_vec();
    long_name.extend_from_slice(&(MAX_NAME_LEN as i32 + 1).to_le_bytes());
    long_name.extend(std::iter::repeat(b'a').take(MAX_NAME_LEN + 100));
    let error = Imatrix::from_bytes(&long_name).unwrap_err();
    assert!(
        matches!(
            error,
            ImatrixError::OutOfRange {
                field: "name length",
                ..
            }
        ),
        "{error}"
    );

    let nan = dat_bytes(&[(name, 1, 2, &[1.0, f32::NAN])], 1, b"");
    let error = Imatrix::from_bytes(&nan).unwrap_err();
    assert!(error.to_string().contains("blk.0.attn_q.weight"), "{error}");
}

#[test]
fn gguf_truncated_everywhere_is_an_error() {
    let original = std::fs::read(data("imatrix-en.gguf")).unwrap();
    let mut cuts: Vec<usize> = (0..8000).collect();
    cuts.extend((8000..original.len()).step_by(1009));
    for cut in cuts {
        assert!(
            Imatrix::from_bytes(&original[..cut]).is_err(),
            "cut at {cut} parsed"
        );
    }
}

#[test]
fn gguf_rejects_nan_naming_tensor() {
    let bytes = gguf_bytes(
        "imatrix",
        &[
            (
                "blk.0.attn_q.weight.in_sum2",
                &[2],
                GgmlType::F32,
                vec![1.0, f32::NAN],
            ),
            ("blk.0.attn_q.weight.counts", &[1], GgmlType::F32, vec![1.0]),
        ],
    );
    let error = Imatrix::from_bytes(&bytes).unwrap_err();
    assert!(
        matches!(
            error,
            ImatrixError::InvalidValue {
                what: "in_sum2",
                index: 1,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("blk.0.attn_q.weight"), "{error}");

    let bytes = gguf_bytes(
        "imatrix",
        &[
            (
                "blk.0.attn_q.weight.in_sum2",
                &[2],
                GgmlType::F32,
                vec![1.0, 1.0],
            ),
            (
                "blk.0.attn_q.weight.counts",
                &[1],
                GgmlType::F32,
                vec![f32::INFINITY],
            ),
        ],
    );
    let error = Imatrix::from_bytes(&bytes).unwrap_err();
    assert!(
        matches!(error, ImatrixError::InvalidValue { what: "counts", .. }),
        "{error}"
    );
}

#[test]
fn gguf_rejects_inconsistent_entries() {
    let sums = (
        "blk.0.attn_q.weight.in_sum2",
        &[4u64, 2] as &[u64],
        GgmlType::F32,
        vec![1.0; 8],
    );
    let cases: Vec<(&str, Vec<RawTensor<'_>>)> = vec![
        ("counts missing", vec![sums.clone()]),
        (
            "in_sum2 missing",
            vec![("blk.0.attn_q.weight.counts", &[1], GgmlType::F32, vec![1.0])],
        ),
        (
            "n_mat differs",
            vec![
                sums.clone(),
                (
                    "blk.0.attn_q.weight.counts",
                    &[1, 3],
                    GgmlType::F32,
                    vec![1.0; 3],
                ),
            ],
        ),
        (
            "counts not [1, n]",
            vec![
                sums.clone(),
                (
                    "blk.0.attn_q.weight.counts",
                    &[2],
                    GgmlType::F32,
                    vec![1.0; 2],
                ),
            ],
        ),
        (
            "in_sum2 not F32",
            vec![
                (
                    "blk.0.attn_q.weight.in_sum2",
                    &[4, 2],
                    GgmlType::F16,
                    vec![],
                ),
                (
                    "blk.0.attn_q.weight.counts",
                    &[1, 2],
                    GgmlType::F32,
                    vec![1.0; 2],
                ),
            ],
        ),
        (
            "3-D in_sum2",
            vec![
                (
                    "blk.0.attn_q.weight.in_sum2",
                    &[4, 1, 2],
                    GgmlType::F32,
                    vec![1.0; 8],
                ),
                (
                    "blk.0.attn_q.weight.counts",
                    &[1, 1],
                    GgmlType::F32,
                    vec![1.0],
                ),
            ],
        ),
    ];
    for (case, tensors) in cases {
        let error = Imatrix::from_bytes(&gguf_bytes("imatrix", &tensors)).unwrap_err();
        assert!(
            matches!(error, ImatrixError::ShapeMismatch { .. }),
            "{case}: {error}"
        );
        assert!(
            error.to_string().contains("blk.0.attn_q.weight"),
            "{case}: {error}"
        );
    }
}

#[test]
fn gguf_rejects_model_files() {
    let error = Imatrix::from_bytes(&gguf_bytes("model", &[])).unwrap_err();
    assert!(matches!(error, ImatrixError::NotImatrix { .. }), "{error}");
}

#[test]
fn gguf_reads_2d_expert_entries() {
    let bytes = gguf_bytes(
        "imatrix",
        &[
            (
                "blk.0.ffn_up_exps.weight.in_sum2",
                &[2, 2],
                GgmlType::F32,
                vec![4.0, 8.0, 3.0, 6.0],
            ),
            (
                "blk.0.ffn_up_exps.weight.counts",
                &[1, 2],
                GgmlType::F32,
                vec![4.0, 0.0],
            ),
        ],
    );
    let imatrix = Imatrix::from_bytes(&bytes).unwrap();
    let importance = imatrix
        .expert_importance_for("blk.0.ffn_up_exps.weight", 2, 2)
        .unwrap();
    assert_eq!(importance, Some(vec![1.0, 2.0, 1.0, 1.0]));

    // Through .dat the two experts become one flat entry, still usable for 2 x 2 columns.
    let legacy = Imatrix::from_bytes(&imatrix.to_dat_bytes().unwrap()).unwrap();
    assert_eq!(
        legacy.entry("blk.0.ffn_up_exps.weight").unwrap().n_cols(),
        4
    );
    let importance = legacy
        .expert_importance_for("blk.0.ffn_up_exps.weight", 2, 2)
        .unwrap()
        .unwrap();
    assert_eq!(importance.len(), 4);
}

#[test]
fn importance_checks_mismatch_and_missing() {
    // attn_q has 255 columns where the weight has 256; ffn_down has no entry.
    let mut imatrix = Imatrix::new(512);
    let q = ImatrixEntry::new("blk.0.attn_q.weight", 255, vec![2.0; 255], vec![2]).unwrap();
    imatrix.insert("blk.0.attn_q.weight", q);

    let error = imatrix
        .importance_for("blk.0.attn_q.weight", 256)
        .unwrap_err();
    assert!(matches!(
        error,
        ImatrixError::ColumnMismatch {
            found: 255,
            expected: 256,
            ..
        }
    ));
    assert_eq!(
        error.to_string(),
        "tensor blk.0.attn_q.weight: imatrix has 255 columns, expected 256; was it collected on another model?"
    );

    assert_eq!(
        imatrix
            .importance_for("blk.0.ffn_down.weight", 512)
            .unwrap(),
        None
    );

    let error = imatrix
        .require_importance("blk.0.ffn_down.weight", 512)
        .unwrap_err();
    assert!(matches!(error, ImatrixError::MissingImportance { .. }));
    assert!(error.to_string().contains("blk.0.ffn_down.weight"));

    let error = imatrix
        .expert_importance_for("blk.0.attn_q.weight", 255, 4)
        .unwrap_err();
    assert!(matches!(
        error,
        ImatrixError::MatrixCountMismatch {
            found: 1,
            expected: 4,
            ..
        }
    ));

    assert_eq!(
        imatrix
            .require_importance("blk.0.attn_q.weight", 255)
            .unwrap(),
        vec![1.0; 255]
    );
}

#[test]
fn merge_rejects_mismatches() {
    let a = two_entries();

    let mut other_size = Imatrix::new(256);
    other_size.insert("x", ImatrixEntry::zeros(1, 1));
    assert!(matches!(
        a.clone().merge(&other_size),
        Err(ImatrixError::ChunkSizeMismatch {
            first: 512,
            second: 256
        })
    ));

    let mut other_shape = Imatrix::new(512);
    other_shape.insert("blk.0.attn_q.weight", ImatrixEntry::zeros(5, 1));
    let error = a.clone().merge(&other_shape).unwrap_err();
    assert!(
        matches!(error, ImatrixError::ShapeMismatch { .. }),
        "{error}"
    );

    assert!(matches!(Imatrix::merge_all([]), Err(ImatrixError::NoInput)));
}

#[test]
fn entry_rejects_bad_values() {
    assert!(ImatrixEntry::new("t", 2, vec![1.0], vec![1]).is_err());
    assert!(ImatrixEntry::new("t", 0, vec![], vec![1]).is_err());
    assert!(ImatrixEntry::new("t", 1, vec![f32::NAN], vec![1]).is_err());
    assert!(ImatrixEntry::new("t", 1, vec![-0.5], vec![1]).is_err());
    assert!(ImatrixEntry::new("t", 1, vec![1.0], vec![imatrix_collect::MAX_COUNT + 1]).is_err());
}
