//! The writer: layout, atomic output and rejection of wrong tensor data.

use std::path::Path;

use gguf_format::{
    slice_source, GgmlType, GgufError, GgufFile, GgufView, GgufWriter, Metadata, Value,
};

fn small_writer() -> GgufWriter {
    let mut m = Metadata::new();
    m.insert("general.architecture", "gemma3".into()).unwrap();
    m.insert("general.name", "small".into()).unwrap();
    let mut writer = GgufWriter::new(m);
    writer.add_tensor("a", &[3], GgmlType::F32).unwrap();
    writer.add_tensor("b", &[32, 2], GgmlType::Q8_0).unwrap();
    writer
}

fn fill(index: usize, size: usize) -> Vec<u8> {
    (0..size).map(|j| (index * 7 + j) as u8).collect()
}

/// Lists the file names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn tensor_offsets_are_packed_and_aligned() {
    let infos = small_writer().tensor_infos().unwrap();
    assert_eq!(infos[0].offset, 0);
    assert_eq!(infos[0].size_bytes, 12);
    assert_eq!(infos[1].offset, 32);
    assert_eq!(infos[1].size_bytes, 68);

    let mut writer = small_writer();
    writer
        .metadata_mut()
        .set("general.alignment", Value::U32(64));
    let infos = writer.tensor_infos().unwrap();
    assert_eq!(infos[1].offset, 64);
}

#[test]
fn written_file_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.gguf");
    small_writer()
        .write_to_path(&path, |i, info, out| {
            Ok(out.write_all(&fill(i, info.size_bytes))?)
        })
        .unwrap();

    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.metadata().get_str("general.name"), Ok("small"));
    assert_eq!(file.tensor_bytes("a").unwrap(), fill(0, 12));
    assert_eq!(file.tensor_bytes("b").unwrap(), fill(1, 68));
    // The last tensor is padded too: 32 + 68 rounded up to 32.
    assert_eq!(file.as_bytes().len() as u64, file.data_offset() + 128);
    assert_eq!(entries(dir.path()), ["out.gguf"]);
}

#[test]
fn wrong_data_length_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.gguf");

    for delta in [-1i64, 1] {
        let err = small_writer()
            .write_to_path(&path, |i, info, out| {
                let n = (info.size_bytes as i64 + if i == 1 { delta } else { 0 }) as usize;
                Ok(out.write_all(&fill(i, n))?)
            })
            .unwrap_err();
        let expected_written = (68 + delta) as u64;
        assert!(
            matches!(&err, GgufError::WrongTensorDataLength { tensor, expected: 68, written } if tensor == "b" && *written == expected_written),
            "{err:?}"
        );
        assert!(
            entries(dir.path()).is_empty(),
            "delta {delta}: {:?}",
            entries(dir.path())
        );
    }
}

#[test]
fn failed_write_keeps_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.gguf");
    std::fs::write(&path, b"previous contents").unwrap();

    let err = small_writer()
        .write_to_path(&path, |i, info, out| {
            if i == 1 {
                return Err(GgufError::TensorSource {
                    tensor: info.name.clone(),
                    source: "quantization failed".into(),
                });
            }
            Ok(out.write_all(&fill(i, info.size_bytes))?)
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "producing data for tensor 'b' failed: quantization failed"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"previous contents");
    assert_eq!(entries(dir.path()), ["out.gguf"]);
}

#[test]
fn panicking_callback_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.gguf");

    let result = std::panic::catch_unwind(|| {
        small_writer()
            .write_to_path(&path, |_, _, _| panic!("callback panicked"))
            .ok();
    });
    assert!(result.is_err());
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn missing_folder_is_io_error_naming_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/folder/out.gguf");
    let err = small_writer()
        .write_to_path(&path, |_, _, _| Ok(()))
        .unwrap_err();
    assert!(
        matches!(&err, GgufError::Io { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("out.gguf"), "{err}");
}

#[test]
fn copied_metadata_can_be_overridden() {
    let bytes = small_writer()
        .write_to_vec(|i, info, out| Ok(out.write_all(&fill(i, info.size_bytes))?))
        .unwrap();
    let file = GgufFile::from_bytes(bytes).unwrap();

    let mut writer = GgufWriter::from_file(&file);
    writer
        .metadata_mut()
        .set("general.architecture", "gemma2".into());
    writer
        .metadata_mut()
        .set("general.file_type", Value::U32(15));
    assert_eq!(
        writer.metadata_mut().remove("general.name"),
        Some(Value::from("small"))
    );
    writer.add_tensor("a", &[3], GgmlType::F32).unwrap();
    let bytes = writer
        .write_to_vec(|_, _, out| Ok(out.write_all(&[0; 12])?))
        .unwrap();

    let copy = GgufFile::from_bytes(bytes).unwrap();
    let keys: Vec<&str> = copy.metadata().keys().collect();
    assert_eq!(keys, ["general.architecture", "general.file_type"]);
    assert_eq!(
        copy.metadata().get_str("general.architecture"),
        Ok("gemma2")
    );
}

#[test]
fn writer_rejects_bad_tensor_shapes() {
    let mut writer = GgufWriter::default();
    let err = writer.add_tensor("t", &[], GgmlType::F32).unwrap_err();
    assert!(matches!(err, GgufError::NoDimensions { .. }), "{err:?}");
    let err = writer
        .add_tensor("t", &[1, 1, 1, 1, 1], GgmlType::F32)
        .unwrap_err();
    assert!(
        matches!(err, GgufError::TooManyDimensions { n_dims: 5, .. }),
        "{err:?}"
    );
    let err = writer.add_tensor("t", &[100], GgmlType::Q4_K).unwrap_err();
    assert!(
        matches!(err, GgufError::RowNotBlockAligned { row_len: 100, .. }),
        "{err:?}"
    );
    let err = writer
        .add_tensor("t", &[u64::MAX, 2], GgmlType::F32)
        .unwrap_err();
    assert!(matches!(err, GgufError::TensorTooLarge { .. }), "{err:?}");
}

#[test]
fn slice_source_checks_count() {
    let data = [fill(0, 12)];
    let err = small_writer()
        .write_to_vec(slice_source(&data))
        .unwrap_err();
    assert!(
        matches!(&err, GgufError::TensorSource { tensor, .. } if tensor == "b"),
        "{err:?}"
    );

    let data = [fill(0, 12), fill(1, 68)];
    let bytes = small_writer().write_to_vec(slice_source(&data)).unwrap();
    let view = GgufView::parse(&bytes).unwrap();
    assert_eq!(view.tensor_bytes("b"), Some(&data[1][..]));
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GgufFile>();
    assert_send_sync::<GgufView<'static>>();
    assert_send_sync::<GgufWriter>();
    assert_send_sync::<GgufError>();
}
