//! The legacy `.dat` imatrix format of llama.cpp (`--output-format dat`), read and write.
//!
//! Layout, all little-endian: `i32 n_entries`; per entry, sorted by name: `i32 name_len`,
//! name bytes, `i32 ncall`, `i32 nval`, `f32 values[nval]`; then the trailer `i32 chunk_count`,
//! `i32 dataset_len`, dataset bytes. A value is the mean square of its column times `ncall`,
//! the number of chunks the entry saw, so `value / ncall` is the importance. The chunk size is
//! not stored; readers assume the one they collect with (llama.cpp: its `-c`, default 512).

use crate::error::ImatrixError;
use crate::imatrix::{check_count, Imatrix, ImatrixEntry};

/// Largest entry count accepted, 2^16: the largest published models have a few thousand
/// weight matrices.
pub const MAX_DAT_ENTRIES: usize = 1 << 16;

/// Largest tensor name accepted, in bytes; ggml's own limit is 64, and 4096 leaves room for
/// any naming scheme while stopping a corrupt length early.
pub const MAX_NAME_LEN: usize = 4096;

/// Largest dataset name accepted in the trailer, in bytes (a file path in practice).
pub const MAX_DATASET_LEN: usize = 1 << 16;

/// Bytes of an entry without its name and values: name_len, ncall, nval.
const ENTRY_FIXED_BYTES: usize = 12;

/// Entry index that error messages use for the trailer.
const TRAILER: &str = "trailer";

/// Little-endian reader over untrusted bytes that checks every length against what is left.
struct Cursor<'a> {
    bytes: &'a [u8],
    entry: usize,
}

impl<'a> Cursor<'a> {
    fn left(&self) -> usize {
        self.bytes.len()
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], ImatrixError> {
        if len > self.bytes.len() {
            return Err(ImatrixError::UnexpectedEof {
                entry: self.entry,
                what,
                needed: len as u64,
                left: self.bytes.len() as u64,
            });
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, ImatrixError> {
        let raw = self.take(4, what)?;
        Ok(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
    }

    /// Reads an i32 that must lie in `0..=max`.
    fn bounded(
        &mut self,
        what: &'static str,
        max: usize,
        context: &str,
    ) -> Result<usize, ImatrixError> {
        let value = self.i32(what)?;
        match usize::try_from(value) {
            Ok(value) if value <= max => Ok(value),
            _ => Err(ImatrixError::OutOfRange {
                context: context.to_owned(),
                field: what,
                value: i64::from(value),
                max: max as i64,
            }),
        }
    }
}

/// Parses a legacy `.dat` imatrix, converting it to sums and counts for chunks of
/// `chunk_size` tokens as llama-imatrix `--in-file` does: `count = ncall * chunk_size` and
/// `in_sum2 = value * chunk_size`, so that `in_sum2 / count = value / ncall`.
///
/// Each entry becomes one matrix (`n_mat = 1`) of `nval` columns, because the format does not
/// record expert counts.
///
/// # Errors
/// [`ImatrixError::UnexpectedEof`] when a field runs past the end, naming the entry index;
/// [`ImatrixError::OutOfRange`] for negative or capped counts and lengths
/// ([`MAX_DAT_ENTRIES`], [`MAX_NAME_LEN`], [`MAX_DATASET_LEN`]);
/// [`ImatrixError::InvalidName`], [`ImatrixError::DuplicateEntry`],
/// [`ImatrixError::InvalidValue`] for NaN, infinite or negative values, and
/// [`ImatrixError::TrailingBytes`] for bytes after the trailer.
pub fn read_dat(bytes: &[u8], chunk_size: u32) -> Result<Imatrix, ImatrixError> {
    if chunk_size == 0 {
        return Err(ImatrixError::InvalidParameter {
            name: "chunk_size",
            value: "0".to_owned(),
            reason: "legacy values are scaled by the chunk size, which must be at least 1",
        });
    }

    let mut cursor = Cursor { bytes, entry: 0 };
    let n_entries = cursor.bounded("n_entries", MAX_DAT_ENTRIES, "legacy imatrix header")?;

    // Every entry needs at least its fixed fields, so a huge count in a tiny file fails here.
    let min_bytes = n_entries * ENTRY_FIXED_BYTES;
    if min_bytes > cursor.left() {
        return Err(ImatrixError::UnexpectedEof {
            entry: 0,
            what: "entry table",
            needed: min_bytes as u64,
            left: cursor.left() as u64,
        });
    }

    let mut imatrix = Imatrix::new(chunk_size);
    for index in 0..n_entries {
        cursor.entry = index;
        let (name, entry) = read_entry(&mut cursor, index, chunk_size)?;
        if imatrix.entry(&name).is_some() {
            return Err(ImatrixError::DuplicateEntry { tensor: name });
        }
        imatrix.insert(name, entry);
    }

    read_trailer(&mut cursor, n_entries, &mut imatrix)?;
    Ok(imatrix)
}

fn read_entry(
    cursor: &mut Cursor<'_>,
    index: usize,
    chunk_size: u32,
) -> Result<(String, ImatrixEntry), ImatrixError> {
    let context = format!("legacy imatrix entry {index}");

    let name_len = cursor.bounded("name length", MAX_NAME_LEN, &context)?;
    let name_bytes = cursor.take(name_len, "name")?;
    let name = std::str::from_utf8(name_bytes)
        .map_err(|_| ImatrixError::InvalidName {
            context: context.clone(),
        })?
        .to_owned();
    let context = format!("legacy imatrix entry {index} ({name})");

    let ncall = cursor.bounded("ncall", i32::MAX as usize, &context)?;
    let max_nval = cursor.left() / 4;
    let nval = cursor.bounded("nval", max_nval, &context)?;
    if nval == 0 {
        return Err(ImatrixError::OutOfRange {
            context,
            field: "nval",
            value: 0,
            max: max_nval as i64,
        });
    }

    let raw = cursor.take(nval * 4, "values")?;
    let scale = chunk_size as f32;
    let mut in_sum2 = Vec::with_capacity(nval);
    for (column, word) in raw.chunks_exact(4).enumerate() {
        let value = f32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        if !value.is_finite() || value < 0.0 {
            return Err(ImatrixError::InvalidValue {
                tensor: name,
                what: "values",
                index: column,
                value: f64::from(value),
            });
        }
        in_sum2.push(value * scale);
    }

    let count = ncall as u64 * u64::from(chunk_size);
    check_count(&name, count)?;
    let entry = ImatrixEntry::new(&name, nval, in_sum2, vec![count])?;
    Ok((name, entry))
}

fn read_trailer(
    cursor: &mut Cursor<'_>,
    n_entries: usize,
    imatrix: &mut Imatrix,
) -> Result<(), ImatrixError> {
    cursor.entry = n_entries;

    // NOTE: files from llama.cpp before the trailer existed end here; they carry no chunk
    // count or dataset name.
    if cursor.left() == 0 {
        return Ok(());
    }

    let chunk_count = cursor.bounded("chunk_count", i32::MAX as usize, TRAILER)?;
    imatrix.set_chunk_count(chunk_count as u32);

    let dataset_len = cursor.bounded("dataset length", MAX_DATASET_LEN, TRAILER)?;
    let dataset = cursor.take(dataset_len, "dataset")?;
    let dataset = std::str::from_utf8(dataset).map_err(|_| ImatrixError::InvalidName {
        context: "legacy imatrix trailer dataset".to_owned(),
    })?;
    if !dataset.is_empty() {
        imatrix.push_dataset(dataset);
    }

    if cursor.left() != 0 {
        return Err(ImatrixError::TrailingBytes {
            count: cursor.left() as u64,
        });
    }
    Ok(())
}

/// Serialises `imatrix` in the legacy `.dat` format, as llama-imatrix `--output-format dat`.
///
/// Per entry: `ncall = ceil(max count / chunk_size)`, `nval` = all values of all matrices,
/// and each value `(in_sum2 / count) * ncall`, or 1.0 in a matrix whose count is 0. Entries
/// whose counts are all 0 are left out. The format stores one dataset name, so several are
/// joined with `;`.
///
/// # Errors
/// [`ImatrixError::OutOfRange`] when an entry needs more than `i32::MAX` calls or values, or
/// its name exceeds [`MAX_NAME_LEN`].
pub fn write_dat(imatrix: &Imatrix) -> Result<Vec<u8>, ImatrixError> {
    let chunk_size = u64::from(imatrix.chunk_size().max(1));
    let written: Vec<_> = imatrix
        .entries()
        .iter()
        .filter(|(_, entry)| entry.counts().iter().any(|&count| count > 0))
        .collect();

    let mut out = Vec::new();
    push_len(
        &mut out,
        written.len(),
        "n_entries",
        "legacy imatrix header",
    )?;

    for (name, entry) in written {
        let context = format!("legacy imatrix entry {name}");
        if name.len() > MAX_NAME_LEN {
            return Err(ImatrixError::OutOfRange {
                context,
                field: "name length",
                value: name.len() as i64,
                max: MAX_NAME_LEN as i64,
            });
        }
        push_len(&mut out, name.len(), "name length", &context)?;
        out.extend_from_slice(name.as_bytes());

        let max_count = entry.counts().iter().copied().max().unwrap_or(0);
        let ncall = max_count.div_ceil(chunk_size);
        push_len(&mut out, ncall as usize, "ncall", &context)?;
        push_len(&mut out, entry.in_sum2().len(), "nval", &context)?;

        let slices = entry
            .in_sum2()
            .chunks_exact(entry.n_cols())
            .zip(entry.counts());
        for (slice, &count) in slices {
            for &sum in slice {
                let value = if count == 0 {
                    1.0
                } else {
                    (sum / count as f32) * ncall as f32
                };
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
    }

    push_len(
        &mut out,
        imatrix.chunk_count() as usize,
        "chunk_count",
        TRAILER,
    )?;
    let dataset = imatrix.datasets().join(";");
    push_len(&mut out, dataset.len(), "dataset length", TRAILER)?;
    out.extend_from_slice(dataset.as_bytes());
    Ok(out)
}

fn push_len(
    out: &mut Vec<u8>,
    value: usize,
    field: &'static str,
    context: &str,
) -> Result<(), ImatrixError> {
    let value = i32::try_from(value).map_err(|_| ImatrixError::OutOfRange {
        context: context.to_owned(),
        field,
        value: value as i64,
        max: i64::from(i32::MAX),
    })?;
    out.extend_from_slice(&value.to_le_bytes());
    Ok(())
}
