//! The GGUF imatrix format of llama.cpp (its default since 2025), read and write.
//!
//! Metadata: `general.type = "imatrix"`, `imatrix.datasets` (string array),
//! `imatrix.chunk_count` and `imatrix.chunk_size` (u32). Per weight tensor `<name>`, sorted by
//! name, two F32 tensors: `<name>.in_sum2` with ne = \[n_cols, n_mat\] holding the raw sums
//! of squared activations, and `<name>.counts` with ne = \[1, n_mat\] holding the activation-row
//! counts as floats. llama.cpp stores a single matrix with one dimension (ne = \[n_cols\] and
//! \[1\]); both spellings are read.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use gguf_format::{Array, GgmlType, GgufError, GgufView, GgufWriter, Metadata, TensorInfo, Value};

use crate::error::ImatrixError;
use crate::imatrix::{Imatrix, ImatrixEntry, MAX_COUNT};

/// `general.type` of an imatrix file.
pub const GENERAL_TYPE: &str = "imatrix";

const KEY_GENERAL_TYPE: &str = "general.type";
const KEY_DATASETS: &str = "imatrix.datasets";
const KEY_CHUNK_COUNT: &str = "imatrix.chunk_count";
const KEY_CHUNK_SIZE: &str = "imatrix.chunk_size";

const SUFFIX_SUMS: &str = ".in_sum2";
const SUFFIX_COUNTS: &str = ".counts";

/// Suffix of the per-column activation sums that newer llama-imatrix versions add for their
/// statistics; quantization does not use them, so the reader skips them.
const SUFFIX_ACTIVATION_SUMS: &str = ".in_sum";

/// The two tensors of one entry, as found in the file.
#[derive(Default)]
struct EntryTensors<'a> {
    sums: Option<&'a TensorInfo>,
    counts: Option<&'a TensorInfo>,
}

/// Parses a GGUF imatrix from `bytes`, validating it as untrusted input.
///
/// # Errors
/// - [`ImatrixError::Gguf`] for an invalid container.
/// - [`ImatrixError::NotImatrix`] when `general.type` is not `imatrix`.
/// - [`ImatrixError::Metadata`] when `imatrix.chunk_size` or `imatrix.chunk_count` is missing
///   or mistyped (`imatrix.datasets` may be absent).
/// - [`ImatrixError::ShapeMismatch`] when an entry's `in_sum2` and `counts` disagree, one of
///   them is missing, or a tensor is not F32.
/// - [`ImatrixError::InvalidValue`] for NaN, infinite or negative values, naming the tensor.
pub fn read_gguf(bytes: &[u8]) -> Result<Imatrix, ImatrixError> {
    let view = GgufView::parse(bytes)?;
    let metadata = view.metadata();

    match metadata.opt_str(KEY_GENERAL_TYPE)? {
        Some(GENERAL_TYPE) => {}
        found => {
            return Err(ImatrixError::NotImatrix {
                found: found.unwrap_or("<missing>").to_owned(),
            })
        }
    }

    let chunk_size = read_u32(metadata, KEY_CHUNK_SIZE)?;
    let chunk_count = read_u32(metadata, KEY_CHUNK_COUNT)?;
    let mut imatrix = Imatrix::new(chunk_size);
    imatrix.set_chunk_count(chunk_count);
    // The dataset list is provenance only; a file without it (gguf-py drops empty arrays)
    // is still usable.
    if metadata.contains_key(KEY_DATASETS) {
        for dataset in metadata.get_string_array(KEY_DATASETS)? {
            imatrix.push_dataset(dataset.clone());
        }
    }

    let mut pairs: BTreeMap<&str, EntryTensors<'_>> = BTreeMap::new();
    for info in view.tensors() {
        if let Some(name) = info.name.strip_suffix(SUFFIX_SUMS) {
            pairs.entry(name).or_default().sums = Some(info);
        } else if let Some(name) = info.name.strip_suffix(SUFFIX_COUNTS) {
            pairs.entry(name).or_default().counts = Some(info);
        } else if info.name.ends_with(SUFFIX_ACTIVATION_SUMS) {
            continue;
        } else {
            tracing::warn!(tensor = %info.name, "ignoring a tensor that is not part of an imatrix entry");
        }
    }

    for (name, tensors) in pairs {
        let entry = read_entry(&view, name, &tensors)?;
        imatrix.insert(name, entry);
    }
    Ok(imatrix)
}

fn read_u32(metadata: &Metadata, key: &str) -> Result<u32, ImatrixError> {
    let value = metadata.get_uint(key)?;
    u32::try_from(value).map_err(|_| ImatrixError::OutOfRange {
        context: "GGUF imatrix metadata".to_owned(),
        field: if key == KEY_CHUNK_SIZE {
            "imatrix.chunk_size"
        } else {
            "imatrix.chunk_count"
        },
        value: i64::try_from(value).unwrap_or(i64::MAX),
        max: i64::from(u32::MAX),
    })
}

fn read_entry(
    view: &GgufView<'_>,
    name: &str,
    tensors: &EntryTensors<'_>,
) -> Result<ImatrixEntry, ImatrixError> {
    let mismatch = |detail: String| ImatrixError::ShapeMismatch {
        tensor: name.to_owned(),
        detail,
    };

    let (sums, counts) = match (tensors.sums, tensors.counts) {
        (Some(sums), Some(counts)) => (sums, counts),
        (Some(_), None) => {
            return Err(mismatch(format!(
                "{name}{SUFFIX_SUMS} has no {name}{SUFFIX_COUNTS}"
            )))
        }
        (None, _) => {
            return Err(mismatch(format!(
                "{name}{SUFFIX_COUNTS} has no {name}{SUFFIX_SUMS}"
            )))
        }
    };

    for info in [sums, counts] {
        if info.ggml_type != GgmlType::F32 {
            return Err(mismatch(format!(
                "{} has type {:?}, expected F32",
                info.name, info.ggml_type
            )));
        }
    }

    let (n_cols, n_mat) = matrix_shape(sums).ok_or_else(|| {
        mismatch(format!(
            "in_sum2 has shape {:?}, expected [n_cols, n_mat]",
            sums.dims
        ))
    })?;
    let counts_shape = matrix_shape(counts);
    if counts_shape != Some((1, n_mat)) {
        return Err(mismatch(format!(
            "counts has shape {:?}, expected [1, {n_mat}] to match in_sum2 {:?}",
            counts.dims, sums.dims
        )));
    }

    let in_sum2 = read_f32s(view.tensor_data(sums));
    let raw_counts = read_f32s(view.tensor_data(counts));
    let mut counts = Vec::with_capacity(n_mat);
    for (index, &count) in raw_counts.iter().enumerate() {
        if !count.is_finite() || count < 0.0 || f64::from(count) > MAX_COUNT as f64 {
            return Err(ImatrixError::InvalidValue {
                tensor: name.to_owned(),
                what: "counts",
                index,
                value: f64::from(count),
            });
        }

        // llama.cpp rounds stored counts to the nearest integer when it loads them.
        counts.push(count.round() as u64);
    }

    ImatrixEntry::new(name, n_cols, in_sum2, counts)
}

/// Returns `(ne[0], ne[1])` of a tensor whose further dimensions are all 1.
fn matrix_shape(info: &TensorInfo) -> Option<(usize, usize)> {
    let n_cols = usize::try_from(*info.dims.first()?).ok()?;
    let n_mat = usize::try_from(info.dims.get(1).copied().unwrap_or(1)).ok()?;
    let higher_are_one = info.dims.iter().skip(2).all(|&d| d == 1);
    (higher_are_one && n_cols > 0 && n_mat > 0).then_some((n_cols, n_mat))
}

/// Decodes little-endian f32 values; the data may not be 4-byte aligned in memory.
fn read_f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|word| f32::from_le_bytes([word[0], word[1], word[2], word[3]]))
        .collect()
}

/// A ready writer plus the data of its tensors, in the order added.
struct PreparedGguf {
    writer: GgufWriter,
    payloads: Vec<Vec<f32>>,
}

impl PreparedGguf {
    fn new(imatrix: &Imatrix) -> Result<Self, ImatrixError> {
        let mut metadata = Metadata::new();
        metadata.set(KEY_GENERAL_TYPE, Value::String(GENERAL_TYPE.to_owned()));
        metadata.set(
            KEY_DATASETS,
            Value::Array(Array::String(imatrix.datasets().to_vec())),
        );
        metadata.set(KEY_CHUNK_COUNT, Value::U32(imatrix.chunk_count()));
        metadata.set(KEY_CHUNK_SIZE, Value::U32(imatrix.chunk_size()));

        let mut writer = GgufWriter::new(metadata);
        let mut payloads = Vec::with_capacity(imatrix.entries().len() * 2);
        for (name, entry) in imatrix.entries() {
            // llama.cpp drops trailing dimensions of 1, so a 2-D weight's entry is 1-D.
            let n_cols = entry.n_cols() as u64;
            let n_mat = entry.n_mat() as u64;
            let (sums_dims, counts_dims) = if n_mat == 1 {
                (vec![n_cols], vec![1])
            } else {
                (vec![n_cols, n_mat], vec![1, n_mat])
            };

            writer.add_tensor(format!("{name}{SUFFIX_SUMS}"), &sums_dims, GgmlType::F32)?;
            writer.add_tensor(
                format!("{name}{SUFFIX_COUNTS}"),
                &counts_dims,
                GgmlType::F32,
            )?;
            payloads.push(entry.in_sum2().to_vec());
            payloads.push(entry.counts().iter().map(|&count| count as f32).collect());
        }
        Ok(Self { writer, payloads })
    }

    fn write_payload(
        payloads: &[Vec<f32>],
        index: usize,
        sink: &mut dyn Write,
    ) -> Result<(), GgufError> {
        let bytes: Vec<u8> = payloads[index]
            .iter()
            .flat_map(|value| value.to_le_bytes())
            .collect();
        sink.write_all(&bytes)?;
        Ok(())
    }
}

/// Serialises `imatrix` as a GGUF imatrix in memory, with entries sorted by name and
/// counts stored as floats, as llama-imatrix writes them.
///
/// # Errors
/// [`ImatrixError::Gguf`] when a tensor name is too long for GGUF (63 bytes with suffix).
pub fn write_gguf_bytes(imatrix: &Imatrix) -> Result<Vec<u8>, ImatrixError> {
    let PreparedGguf { writer, payloads } = PreparedGguf::new(imatrix)?;
    let bytes = writer
        .write_to_vec(|index, _info, sink| PreparedGguf::write_payload(&payloads, index, sink))?;
    Ok(bytes)
}

/// Writes `imatrix` as a GGUF imatrix at `path`, atomically (temporary file in the same
/// folder, fsync, rename); see [`write_gguf_bytes`].
///
/// # Errors
/// [`ImatrixError::Gguf`] when a name is too long or the file cannot be written.
pub fn write_gguf(imatrix: &Imatrix, path: &Path) -> Result<(), ImatrixError> {
    let PreparedGguf { writer, payloads } = PreparedGguf::new(imatrix)?;
    writer.write_to_path(path, |index, _info, sink| {
        PreparedGguf::write_payload(&payloads, index, sink)
    })?;
    Ok(())
}
