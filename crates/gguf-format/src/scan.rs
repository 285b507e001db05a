//! [`HeaderScanner`]: a resumable walk over the records of a GGUF header that reads only
//! lengths, counts and type ids.
//!
//! The walk finds where the header ends, or the first field that runs past the end of the
//! input, without checking UTF-8 or allocating values. [`GgufView::parse`](crate::GgufView::parse)
//! runs it before decoding, so a truncated file fails in the time of the walk. A program
//! that reads a header from a stream calls it with a growing prefix to learn whether it has
//! read enough, and each call resumes where the previous one stopped.

use crate::cursor::Cursor;
use crate::decode::{check_array_cap, check_array_fits};
use crate::error::GgufError;
use crate::fields;
use crate::header::{check_version, read_count};
use crate::limits::{GGUF_MAGIC, MAX_DIMS, MAX_STRING_LENGTH};
use crate::value::ValueType;

/// Bytes in one dimension of a tensor info (a signed 64-bit integer).
const DIM_BYTES: u64 = 8;

/// Bytes in the length that precedes every string (an unsigned 64-bit integer).
const STRING_LENGTH_BYTES: usize = 8;

/// Walks the header of a GGUF file held as a prefix of its bytes, checking only the fields
/// that fix the header's layout.
///
/// The walk checks the magic, the version, the two counts, each string length against
/// [`MAX_STRING_LENGTH`](crate::MAX_STRING_LENGTH), each value type id, each array count and
/// each n_dims. It also checks that keys and tensor names are UTF-8, because its errors
/// name them. It does not check value strings, bools, dimension values, ggml types,
/// duplicate names, alignment or the data section: [`GgufView::parse`](crate::GgufView::parse)
/// does.
///
/// The scanner remembers the last record that it walked in full (a metadata pair, one string
/// of a string array, or a tensor info), so a later call with a longer prefix resumes there.
/// Resuming gives the same result as a new scanner over the same prefix.
///
/// ```
/// use gguf_format::{GgufError, GgufWriter, HeaderScanner, Metadata, ScanStatus, Value};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut metadata = Metadata::new();
/// metadata.insert("general.architecture", Value::from("gemma3"))?;
/// let bytes = GgufWriter::new(metadata).write_to_vec(|_, _, _| Ok(()))?;
///
/// // The first 30 bytes end inside the key length of the only metadata pair, at byte 24.
/// let mut scanner = HeaderScanner::new();
/// let ScanStatus::Truncated(error) = scanner.scan(&bytes[..30])? else {
///     panic!("a 30-byte prefix holds no whole header");
/// };
/// assert!(matches!(error, GgufError::UnexpectedEof { offset: 24, needed: 8, .. }));
/// assert_eq!(scanner.offset(), 24);
///
/// // The same scanner, given more bytes, resumes at that pair.
/// let ScanStatus::Complete { header_len } = scanner.scan(&bytes)? else {
///     panic!("the whole file holds the whole header");
/// };
/// assert_eq!(header_len, 24 + 8 + 20 + 4 + 8 + 6);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct HeaderScanner {
    /// Byte offset of the first record not yet walked.
    offset: usize,
    stage: Stage,
    counts: Counts,
}

/// The result of a scan: the whole header was walked, or the input ended inside it.
#[derive(Debug)]
pub enum ScanStatus {
    /// The header, from the magic to the end of the last tensor info, is `header_len`
    /// bytes long and lies inside the prefix.
    Complete { header_len: u64 },

    /// The prefix ends inside the header. The error names the field that was cut: it is
    /// [`GgufError::UnexpectedEof`], [`GgufError::CountTooLarge`] for an array that cannot
    /// fit in the bytes left, or [`GgufError::BadMagic`] for a prefix shorter than the magic.
    /// It is the error that [`GgufView::parse`](crate::GgufView::parse) returns for the same
    /// prefix.
    Truncated(GgufError),
}

/// The record at [`HeaderScanner::offset`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Stage {
    /// Magic, version and the two counts.
    #[default]
    Preamble,
    /// Metadata pair `index`.
    Pair { index: u64 },
    /// String `next` of the `count` strings in the array of metadata pair `pair`.
    Strings {
        pair: u64,
        key: String,
        next: u64,
        count: u64,
    },
    /// Tensor info `index`.
    TensorInfo { index: u64 },
    /// The end of the header.
    Complete,
}

/// The record counts from the preamble.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    n_tensors: u64,
    n_kv: u64,
}

/// Why a step stopped: the input ended inside a field, or the header is malformed.
enum Stop {
    Truncated(GgufError),
    Malformed(GgufError),
}

/// Classifies a cursor error: only a read past the end means that more bytes could help.
impl From<GgufError> for Stop {
    fn from(error: GgufError) -> Self {
        match error {
            GgufError::UnexpectedEof { .. } => Stop::Truncated(error),
            _ => Stop::Malformed(error),
        }
    }
}

impl HeaderScanner {
    /// Creates a scanner that starts at the first byte of the file.
    pub fn new() -> Self {
        HeaderScanner::default()
    }

    /// Returns the byte offset of the first record that the scanner has not yet walked in
    /// full, from the start of the file: the place where the next call resumes.
    pub fn offset(&self) -> u64 {
        self.offset as u64
    }

    /// Walks the records of `prefix`, the first bytes of a GGUF file, from where the last
    /// call stopped.
    ///
    /// Each call must pass the same file. A prefix shorter than [`offset`](Self::offset)
    /// restarts the walk at byte 0. The work of one call grows with the number of records
    /// walked, not with their size: strings are skipped, not read.
    ///
    /// # Errors
    ///
    /// A fault in the layout before the end of `prefix`: [`GgufError::BadMagic`],
    /// [`GgufError::UnsupportedVersion`], [`GgufError::VersionOne`],
    /// [`GgufError::BigEndian`], [`GgufError::CountTooLarge`] (a negative record count or an
    /// array over [`MAX_ARRAY_ELEMENTS`](crate::MAX_ARRAY_ELEMENTS)),
    /// [`GgufError::StringTooLong`], [`GgufError::InvalidUtf8`] (a key or tensor name),
    /// [`GgufError::UnknownValueType`], [`GgufError::NestedArray`],
    /// [`GgufError::NoDimensions`] or [`GgufError::TooManyDimensions`]. The scanner stays at
    /// the record with the fault.
    pub fn scan(&mut self, prefix: &[u8]) -> Result<ScanStatus, GgufError> {
        if prefix.len() < self.offset {
            *self = HeaderScanner::new();
        }

        loop {
            let mut c = Cursor::at(prefix, self.offset);
            let step = match &mut self.stage {
                Stage::Preamble => scan_preamble(&mut c, prefix, &mut self.counts),
                Stage::Pair { index } => scan_pair(&mut c, *index, self.counts),
                Stage::Strings {
                    pair,
                    key,
                    next,
                    count,
                } => {
                    // Each string is a checkpoint of its own, so that the walk through a
                    // 262144-token vocabulary is never repeated for a longer prefix. The
                    // strings that fit are skipped in a tight loop, and the cursor reads the
                    // first one that does not, to build its error.
                    let (skipped, end) = skip_strings(prefix, self.offset, *count - *next);
                    *next += skipped;
                    self.offset = end;
                    c = Cursor::at(prefix, end);

                    let mut result = Ok(stage_after_pair(*pair, self.counts));
                    while *next < *count {
                        if let Err(error) = c.string_bytes(|| fields::array_string(*next, key)) {
                            result = Err(Stop::from(error));
                            break;
                        }
                        *next += 1;
                        self.offset = c.offset() as usize;
                    }
                    result
                }
                Stage::TensorInfo { index } => scan_tensor_info(&mut c, *index, self.counts),
                Stage::Complete => {
                    return Ok(ScanStatus::Complete {
                        header_len: self.offset as u64,
                    })
                }
            };

            match step {
                Ok(stage) => {
                    self.offset = c.offset() as usize;
                    self.stage = stage;
                }
                Err(Stop::Truncated(error)) => return Ok(ScanStatus::Truncated(error)),
                Err(Stop::Malformed(error)) => return Err(error),
            }
        }
    }
}

/// Skips up to `max` GGUF strings that start at byte `pos` of `bytes`, and returns how many
/// lie whole inside `bytes` and the offset after the last of them. Stops before the first
/// string that is cut or longer than [`MAX_STRING_LENGTH`].
fn skip_strings(bytes: &[u8], mut pos: usize, max: u64) -> (u64, usize) {
    let mut skipped = 0;
    while skipped < max {
        let Some(len_bytes) = bytes.get(pos..).and_then(<[u8]>::first_chunk::<8>) else {
            break;
        };
        let len = u64::from_le_bytes(*len_bytes);
        if len > MAX_STRING_LENGTH {
            break;
        }

        // `len` is at most 2^30, so only the sum with `pos` can overflow, on 32-bit targets.
        let Some(end) = pos.checked_add(STRING_LENGTH_BYTES + len as usize) else {
            break;
        };
        if end > bytes.len() {
            break;
        }
        pos = end;
        skipped += 1;
    }
    (skipped, pos)
}

/// Walks the magic, the version and the two record counts, and stores the counts.
fn scan_preamble(c: &mut Cursor<'_>, prefix: &[u8], counts: &mut Counts) -> Result<Stage, Stop> {
    if prefix.len() < GGUF_MAGIC.len() {
        // The decoder reports a short file as a bad magic too. More bytes can only help
        // when the bytes so far are the start of the magic.
        let error = GgufError::BadMagic {
            found: prefix.to_vec(),
        };
        return Err(if GGUF_MAGIC.starts_with(prefix) {
            Stop::Truncated(error)
        } else {
            Stop::Malformed(error)
        });
    }
    let magic: [u8; 4] = c.array(|| "magic".to_string())?;
    if magic != GGUF_MAGIC {
        return Err(Stop::Malformed(GgufError::BadMagic {
            found: magic.to_vec(),
        }));
    }

    check_version(c.u32(|| fields::VERSION.to_string())?)?;
    counts.n_tensors = read_count(c, fields::TENSOR_COUNT)?;
    counts.n_kv = read_count(c, fields::KV_COUNT)?;

    Ok(stage_after_pair_count(0, *counts))
}

/// Walks metadata pair `index` up to the first string of a string array, or to its end.
fn scan_pair(c: &mut Cursor<'_>, index: u64, counts: Counts) -> Result<Stage, Stop> {
    let key = c.string(|| fields::key(index))?;
    let type_id = c.u32(|| fields::value_type(key))?;

    let offset = c.offset();
    let Some(value_type) = ValueType::from_id(type_id) else {
        return Err(Stop::Malformed(GgufError::UnknownValueType {
            key: key.to_string(),
            type_id,
            offset,
        }));
    };

    match value_type {
        ValueType::String => {
            c.string_bytes(|| fields::value(key))?;
        }
        ValueType::Array => return scan_array_head(c, index, key, counts),
        scalar => {
            c.take(scalar.min_encoded_size() as u64, || fields::value(key))?;
        }
    }
    Ok(stage_after_pair(index, counts))
}

/// Walks an array's element type and count, then skips fixed-size elements or enters the
/// strings.
fn scan_array_head(
    c: &mut Cursor<'_>,
    index: u64,
    key: &str,
    counts: Counts,
) -> Result<Stage, Stop> {
    let type_offset = c.offset();
    let type_id = c.u32(|| fields::array_element_type(key))?;
    let element_type = match ValueType::from_id(type_id) {
        None => {
            return Err(Stop::Malformed(GgufError::UnknownValueType {
                key: key.to_string(),
                type_id,
                offset: type_offset,
            }))
        }
        Some(ValueType::Array) => {
            return Err(Stop::Malformed(GgufError::NestedArray {
                key: key.to_string(),
                offset: type_offset,
            }))
        }
        Some(element_type) => element_type,
    };

    let count_offset = c.offset();
    let count = c.u64(|| fields::array_length(key))?;
    check_array_cap(key, count, count_offset)?;
    check_array_fits(c, key, count, count_offset, element_type).map_err(Stop::Truncated)?;

    if element_type == ValueType::String {
        return Ok(Stage::Strings {
            pair: index,
            key: key.to_string(),
            next: 0,
            count,
        });
    }
    let byte_len = count * element_type.min_encoded_size() as u64;
    c.take(byte_len, || fields::array_elements(key))?;
    Ok(stage_after_pair(index, counts))
}

/// Walks tensor info `index`: name, n_dims, the dims, ggml type and data offset.
fn scan_tensor_info(c: &mut Cursor<'_>, index: u64, counts: Counts) -> Result<Stage, Stop> {
    let name = c.string(|| fields::tensor_name(index))?;

    let n_dims = u64::from(c.u32(|| fields::n_dims(name))?);
    if n_dims == 0 {
        return Err(Stop::Malformed(GgufError::NoDimensions {
            tensor: name.to_string(),
        }));
    }
    if n_dims > MAX_DIMS as u64 {
        return Err(Stop::Malformed(GgufError::TooManyDimensions {
            tensor: name.to_string(),
            n_dims,
            max: MAX_DIMS,
        }));
    }

    for axis in 0..n_dims {
        c.take(DIM_BYTES, || fields::dimension(axis, name))?;
    }
    c.u32(|| fields::ggml_type(name))?;
    c.u64(|| fields::data_offset(name))?;

    let next = index + 1;
    Ok(if next < counts.n_tensors {
        Stage::TensorInfo { index: next }
    } else {
        Stage::Complete
    })
}

/// Returns the stage after metadata pair `index`.
fn stage_after_pair(index: u64, counts: Counts) -> Stage {
    stage_after_pair_count(index + 1, counts)
}

/// Returns the stage once `done` metadata pairs have been walked.
fn stage_after_pair_count(done: u64, counts: Counts) -> Stage {
    if done < counts.n_kv {
        Stage::Pair { index: done }
    } else if counts.n_tensors > 0 {
        Stage::TensorInfo { index: 0 }
    } else {
        Stage::Complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::Header;
    use crate::value::{Array, Value};
    use crate::{GgmlType, GgufWriter, Metadata};

    /// Returns a file with a pair of every value type, empty and non-empty strings and
    /// arrays, and tensors of 1 to 4 dims.
    fn every_field_kind() -> Vec<u8> {
        let pairs: Vec<(&str, Value)> = vec![
            ("u8", Value::U8(7)),
            ("i8", Value::I8(-7)),
            ("u16", Value::U16(700)),
            ("i16", Value::I16(-700)),
            ("u32", Value::U32(70_000)),
            ("i32", Value::I32(-70_000)),
            ("f32", Value::F32(0.5)),
            ("bool", Value::Bool(true)),
            ("string", Value::from("héllo")),
            ("empty string", Value::from("")),
            ("u64", Value::U64(1 << 40)),
            ("i64", Value::I64(-(1 << 40))),
            ("f64", Value::F64(0.25)),
            ("u8 array", Value::from(vec![1u8, 2, 3])),
            ("i16 array", Value::from(vec![-1i16, 2])),
            ("f32 array", Value::from(vec![0.5f32, 1.5])),
            ("bool array", Value::from(vec![true, false])),
            ("u64 array", Value::from(vec![1u64 << 40])),
            (
                "string array",
                Value::Array(Array::String(vec!["a".into(), String::new(), "tok".into()])),
            ),
            (
                "empty string array",
                Value::Array(Array::String(Vec::new())),
            ),
            ("empty u32 array", Value::Array(Array::U32(Vec::new()))),
        ];
        let mut metadata = Metadata::new();
        for (key, value) in pairs {
            metadata.insert(key, value).unwrap();
        }

        let mut writer = GgufWriter::new(metadata);
        writer.add_tensor("a", &[4], GgmlType::F32).unwrap();
        writer.add_tensor("b", &[32, 2], GgmlType::Q8_0).unwrap();
        writer.add_tensor("c", &[2, 2, 2], GgmlType::F16).unwrap();
        writer
            .add_tensor("d", &[1, 1, 1, 2], GgmlType::F32)
            .unwrap();
        writer
            .write_to_vec(|_, info, out| Ok(out.write_all(&vec![0; info.size_bytes])?))
            .unwrap()
    }

    fn truncation_error(status: Result<ScanStatus, GgufError>, n: usize) -> String {
        match status {
            Ok(ScanStatus::Truncated(error)) => format!("{error:?}"),
            other => panic!("prefix of {n} bytes: expected a truncation, got {other:?}"),
        }
    }

    #[test]
    fn every_prefix_matches_decoder_error() {
        let bytes = every_field_kind();
        let header_len = Header::parse(&bytes).unwrap().header_len;

        let mut resumed = HeaderScanner::new();
        for n in 0..header_len as usize {
            let prefix = &bytes[..n];
            let decoded = format!("{:?}", Header::decode(prefix).unwrap_err());

            let fresh = truncation_error(HeaderScanner::new().scan(prefix), n);
            assert_eq!(fresh, decoded, "prefix of {n} bytes, new scanner");
            let resumed_error = truncation_error(resumed.scan(prefix), n);
            assert_eq!(
                resumed_error, decoded,
                "prefix of {n} bytes, resumed scanner"
            );
            assert!(resumed.offset() <= n as u64, "prefix of {n} bytes");
        }

        for scanner in [&mut resumed, &mut HeaderScanner::new()] {
            let status = scanner.scan(&bytes).unwrap();
            assert!(
                matches!(status, ScanStatus::Complete { header_len: len } if len == header_len),
                "{status:?}"
            );
        }
    }

    #[test]
    fn shorter_prefix_restarts_walk() {
        let bytes = every_field_kind();
        let mut scanner = HeaderScanner::new();
        assert!(matches!(
            scanner.scan(&bytes),
            Ok(ScanStatus::Complete { .. })
        ));

        let status = scanner.scan(&bytes[..10]);
        assert_eq!(
            truncation_error(status, 10),
            format!("{:?}", Header::decode(&bytes[..10]).unwrap_err())
        );
        assert_eq!(scanner.offset(), 0);
    }

    #[test]
    fn truncation_is_reported_before_invalid_utf8() {
        let mut bytes = every_field_kind();
        let at = bytes.windows(3).position(|w| w == b"tok").unwrap();
        bytes[at] = 0xFF;

        // Whole, the file fails on the string that is not UTF-8, as in the decoder alone.
        let whole = Header::parse(&bytes).unwrap_err();
        assert!(matches!(whole, GgufError::InvalidUtf8 { .. }), "{whole:?}");

        // Cut inside the key length of the next pair, it fails on the cut, where the decoder
        // alone stops at the string.
        let cut = at + "tok".len() + 4;
        let error = Header::parse(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(&error, GgufError::UnexpectedEof { field, .. }
                if field == "length of key of metadata pair 19"),
            "{error:?}"
        );
        let decoded = Header::decode(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(decoded, GgufError::InvalidUtf8 { .. }),
            "{decoded:?}"
        );
    }

    #[test]
    fn layout_faults_are_errors() {
        let bytes = every_field_kind();
        let at = bytes
            .windows(6)
            .position(|w| w == b"u8\x00\x00\x00\x00")
            .unwrap()
            + 2;

        // The value type of pair "u8" becomes 13, which is not a GGUF type.
        let mut unknown_type = bytes.clone();
        unknown_type[at] = 13;
        let error = HeaderScanner::new().scan(&unknown_type).unwrap_err();
        assert!(
            matches!(&error, GgufError::UnknownValueType { key, type_id: 13, .. } if key == "u8"),
            "{error:?}"
        );
        let parsed = Header::parse(&unknown_type).unwrap_err();
        assert_eq!(format!("{parsed:?}"), format!("{error:?}"));

        // A truncated copy fails on the type too, because it comes before the cut.
        let error = HeaderScanner::new()
            .scan(&unknown_type[..at + 8])
            .unwrap_err();
        assert!(
            matches!(error, GgufError::UnknownValueType { .. }),
            "{error:?}"
        );
    }
}
