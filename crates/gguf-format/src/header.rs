//! Parsing and validation of the GGUF header: magic, version, metadata and tensor infos.
//!
//! Validation happens once, here, before any accessor runs. After [`Header::parse`]
//! succeeds every tensor's data range lies inside the input, is aligned and overlaps no other.

use std::collections::HashMap;

use crate::cursor::Cursor;
use crate::decode::read_value;
use crate::error::GgufError;
use crate::fields;
use crate::limits::{
    align_up, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS, MAX_TENSOR_NAME_LEN,
    MIN_KV_RECORD_BYTES, MIN_TENSOR_INFO_BYTES,
};
use crate::metadata::Metadata;
use crate::scan::{HeaderScanner, ScanStatus};
use crate::tensor_info::{tensor_size, TensorInfo};
use crate::value::Value;
use crate::GgmlType;

/// The parsed, validated header of a GGUF file; it owns no tensor data.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) version: u32,
    pub(crate) alignment: u64,
    pub(crate) data_offset: u64,
    pub(crate) header_len: u64,
    pub(crate) metadata: Metadata,
    pub(crate) tensors: Vec<TensorInfo>,
    pub(crate) tensor_index: HashMap<String, usize>,
}

impl Header {
    /// Parses and validates the header of the GGUF file `bytes`, including every tensor's
    /// data range against `bytes.len()`.
    ///
    /// A structural walk runs first. When it finds that `bytes` ends inside the header, its
    /// error is returned without decoding anything, so a truncated file fails in the time of
    /// that walk, without UTF-8 checks or allocation. Any other input is decoded in full, and
    /// its result is that of the decoder alone.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Header, GgufError> {
        if let Ok(ScanStatus::Truncated(error)) = HeaderScanner::new().scan(bytes) {
            return Err(error);
        }
        Self::decode(bytes)
    }

    /// Decodes and validates the whole header of `bytes` in one pass, with no structural walk
    /// before it.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Header, GgufError> {
        let mut c = Cursor::new(bytes);

        let magic: [u8; 4] = c
            .array(|| "magic".to_string())
            .map_err(|_| GgufError::BadMagic {
                found: bytes[..bytes.len().min(4)].to_vec(),
            })?;
        if magic != GGUF_MAGIC {
            return Err(GgufError::BadMagic {
                found: magic.to_vec(),
            });
        }
        let version = check_version(c.u32(|| fields::VERSION.to_string())?)?;

        let n_tensors = read_count(&mut c, fields::TENSOR_COUNT)?;
        let n_kv = read_count(&mut c, fields::KV_COUNT)?;

        let metadata = read_metadata(&mut c, n_kv)?;
        let alignment = alignment_of(&metadata)?;
        let (tensors, tensor_index) = read_tensor_infos(&mut c, n_tensors)?;
        let header_len = c.offset();

        let data_offset = align_up(header_len, alignment).ok_or(GgufError::DataSectionPastEnd {
            data_offset: u64::MAX,
            file_len: bytes.len() as u64,
        })?;
        check_layout(&tensors, alignment, data_offset, bytes.len() as u64)?;

        Ok(Header {
            version,
            alignment,
            data_offset,
            header_len,
            metadata,
            tensors,
            tensor_index,
        })
    }

    pub(crate) fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }
}

/// Applies llama.cpp's version checks in its order: 0, byte order, 1, above 3.
pub(crate) fn check_version(version: u32) -> Result<u32, GgufError> {
    match version {
        0 => Err(GgufError::UnsupportedVersion { version }),
        v if v & 0xFFFF == 0 => Err(GgufError::BigEndian { version }),
        1 => Err(GgufError::VersionOne),
        2 | 3 => Ok(version),
        _ => Err(GgufError::UnsupportedVersion { version }),
    }
}

/// Reads a 64-bit record count and rejects negative values, as llama.cpp does (it stores
/// counts as i64). A count larger than the file fails later, at the first missing record,
/// with an error that names that record.
pub(crate) fn read_count(c: &mut Cursor<'_>, field: &str) -> Result<u64, GgufError> {
    let offset = c.offset();
    let count = c.u64(|| field.to_string())?;

    if count > i64::MAX as u64 {
        return Err(GgufError::CountTooLarge {
            field: field.to_string(),
            count,
            offset,
            reason: "it is negative as a signed 64-bit count".to_string(),
        });
    }
    Ok(count)
}

/// Returns a capacity for `count` records that is bounded by the input size: each record
/// takes at least `min_record_bytes`, so no more than `remaining / min_record_bytes` fit.
fn bounded_capacity(c: &Cursor<'_>, count: u64, min_record_bytes: u64) -> usize {
    count.min(c.remaining() / min_record_bytes) as usize
}

fn read_metadata(c: &mut Cursor<'_>, n_kv: u64) -> Result<Metadata, GgufError> {
    let mut metadata = Metadata::with_capacity(bounded_capacity(c, n_kv, MIN_KV_RECORD_BYTES));

    for index in 0..n_kv {
        let index = index as usize;
        let key = c.string(|| fields::key(index as u64))?.to_string();
        if key.is_empty() {
            return Err(GgufError::EmptyKey { index });
        }
        if metadata.contains_key(&key) {
            return Err(GgufError::DuplicateKey { key });
        }

        let type_id = c.u32(|| fields::value_type(&key))?;
        let value = read_value(c, &key, type_id)?;
        metadata.insert(key, value)?;
    }
    Ok(metadata)
}

/// Returns `general.alignment` when present (a non-zero power-of-two `u32`), else 32.
pub(crate) fn alignment_of(metadata: &Metadata) -> Result<u64, GgufError> {
    match metadata.get(ALIGNMENT_KEY) {
        None => Ok(DEFAULT_ALIGNMENT),
        Some(Value::U32(alignment)) if alignment.is_power_of_two() => Ok(u64::from(*alignment)),
        Some(Value::U32(alignment)) => Err(GgufError::InvalidAlignment {
            alignment: *alignment,
        }),
        Some(other) => Err(GgufError::AlignmentNotU32 {
            found: other.value_type(),
        }),
    }
}

fn read_tensor_infos(
    c: &mut Cursor<'_>,
    n_tensors: u64,
) -> Result<(Vec<TensorInfo>, HashMap<String, usize>), GgufError> {
    let capacity = bounded_capacity(c, n_tensors, MIN_TENSOR_INFO_BYTES);
    let mut tensors = Vec::with_capacity(capacity);
    let mut index = HashMap::with_capacity(capacity);

    for i in 0..n_tensors {
        let i = i as usize;
        let info = read_tensor_info(c, i)?;
        if index.insert(info.name.clone(), i).is_some() {
            return Err(GgufError::DuplicateTensorName { name: info.name });
        }
        tensors.push(info);
    }
    Ok((tensors, index))
}

/// Reads one tensor info: name, u32 n_dims, n_dims signed 64-bit dims, u32 type, u64 offset.
fn read_tensor_info(c: &mut Cursor<'_>, index: usize) -> Result<TensorInfo, GgufError> {
    let name = c.string(|| fields::tensor_name(index as u64))?.to_string();
    check_tensor_name(&name, index)?;

    let n_dims = u64::from(c.u32(|| fields::n_dims(&name))?);
    if n_dims == 0 {
        return Err(GgufError::NoDimensions { tensor: name });
    }
    if n_dims > MAX_DIMS as u64 {
        return Err(GgufError::TooManyDimensions {
            tensor: name,
            n_dims,
            max: MAX_DIMS,
        });
    }

    let mut dims = Vec::with_capacity(n_dims as usize);
    for axis in 0..n_dims as usize {
        let raw = i64::from_le_bytes(c.array(|| fields::dimension(axis as u64, &name))?);
        if raw <= 0 {
            return Err(GgufError::InvalidDimension {
                tensor: name,
                axis,
                value: raw.into(),
            });
        }
        dims.push(raw as u64);
    }

    let type_id = c.u32(|| fields::ggml_type(&name))?;
    let offset = c.u64(|| fields::data_offset(&name))?;

    let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownGgmlType {
        tensor: name.clone(),
        type_id,
    })?;
    let size_bytes = checked_tensor_size(&name, &dims, ggml_type)?;

    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        offset,
        size_bytes,
    })
}

pub(crate) fn check_tensor_name(name: &str, index: usize) -> Result<(), GgufError> {
    if name.is_empty() {
        return Err(GgufError::EmptyTensorName { index });
    }
    if name.len() > MAX_TENSOR_NAME_LEN {
        return Err(GgufError::TensorNameTooLong {
            name: name.to_string(),
            len: name.len(),
            max: MAX_TENSOR_NAME_LEN,
        });
    }
    Ok(())
}

/// Checks that the element count fits in i64 (as llama.cpp requires), that `ne[0]` is a
/// block multiple, and returns the byte size.
pub(crate) fn checked_tensor_size(
    name: &str,
    dims: &[u64],
    ggml_type: GgmlType,
) -> Result<usize, GgufError> {
    let too_large = || GgufError::TensorTooLarge {
        tensor: name.to_string(),
        dims: dims.to_vec(),
    };

    let n_elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(too_large)?;
    if n_elements > i64::MAX as u64 {
        return Err(too_large());
    }

    let row_len = dims[0];
    let block_size = ggml_type.block_size();
    if row_len % block_size as u64 != 0 {
        return Err(GgufError::RowNotBlockAligned {
            tensor: name.to_string(),
            row_len,
            ggml_type,
            block_size,
        });
    }
    tensor_size(ggml_type, dims).ok_or_else(too_large)
}

/// Proves every tensor's data range aligned, inside the input and disjoint from the others.
///
/// Spec-legal gaps between tensors and any order of offsets are accepted. llama.cpp is
/// stricter: it requires the contiguous layout that its writer, and this crate's, produce.
fn check_layout(
    tensors: &[TensorInfo],
    alignment: u64,
    data_offset: u64,
    file_len: u64,
) -> Result<(), GgufError> {
    if tensors.is_empty() {
        return Ok(());
    }
    if data_offset > file_len {
        return Err(GgufError::DataSectionPastEnd {
            data_offset,
            file_len,
        });
    }
    let data_len = file_len - data_offset;

    for t in tensors {
        if t.offset % alignment != 0 {
            return Err(GgufError::MisalignedTensor {
                tensor: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }

        let in_bounds = t
            .offset
            .checked_add(t.size_bytes as u64)
            .is_some_and(|end| end <= data_len);
        if !in_bounds {
            return Err(GgufError::TensorOutOfBounds {
                tensor: t.name.clone(),
                offset: t.offset,
                size_bytes: t.size_bytes as u64,
                data_len,
            });
        }
    }

    let mut by_offset: Vec<&TensorInfo> = tensors.iter().collect();
    by_offset.sort_by_key(|t| t.offset);
    for pair in by_offset.windows(2) {
        let (first, second) = (pair[0], pair[1]);
        // In bounds, so the sum cannot overflow.
        let first_end = first.offset + first.size_bytes as u64;
        if second.offset < first_end {
            return Err(GgufError::OverlappingTensors {
                first: first.name.clone(),
                second: second.name.clone(),
                first_end,
                second_offset: second.offset,
            });
        }
    }
    Ok(())
}
