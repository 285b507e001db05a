//! Decoding of metadata values, with every count checked before anything is allocated.

use crate::cursor::Cursor;
use crate::error::GgufError;
use crate::fields;
use crate::limits::MAX_ARRAY_ELEMENTS;
use crate::value::{Array, Value, ValueType};

/// Reads one value of type id `type_id` belonging to metadata key `key`.
pub(crate) fn read_value(c: &mut Cursor<'_>, key: &str, type_id: u32) -> Result<Value, GgufError> {
    let offset = c.offset();
    let value_type = ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
        key: key.to_string(),
        type_id,
        offset,
    })?;
    let field = || fields::value(key);

    Ok(match value_type {
        ValueType::U8 => Value::U8(u8::from_le_bytes(c.array(field)?)),
        ValueType::I8 => Value::I8(i8::from_le_bytes(c.array(field)?)),
        ValueType::U16 => Value::U16(u16::from_le_bytes(c.array(field)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(c.array(field)?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(c.array(field)?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(c.array(field)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(c.array(field)?)),
        ValueType::U64 => Value::U64(u64::from_le_bytes(c.array(field)?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(c.array(field)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(c.array(field)?)),
        ValueType::Bool => {
            let [byte] = c.array(field)?;
            Value::Bool(decode_bool(byte, key, offset)?)
        }
        ValueType::String => Value::String(c.string(field)?.to_string()),
        ValueType::Array => Value::Array(read_array(c, key)?),
    })
}

/// Accepts only 0 and 1, as the GGUF spec requires (llama.cpp treats any non-zero as true).
fn decode_bool(byte: u8, key: &str, offset: u64) -> Result<bool, GgufError> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(GgufError::InvalidBool {
            key: key.to_string(),
            byte,
            offset,
        }),
    }
}

/// Reads an array: a u32 element type, a u64 count, then the elements back to back.
fn read_array(c: &mut Cursor<'_>, key: &str) -> Result<Array, GgufError> {
    let type_offset = c.offset();
    let type_id = c.u32(|| fields::array_element_type(key))?;
    let element_type = ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
        key: key.to_string(),
        type_id,
        offset: type_offset,
    })?;
    if element_type == ValueType::Array {
        return Err(GgufError::NestedArray {
            key: key.to_string(),
            offset: type_offset,
        });
    }

    let count_offset = c.offset();
    let count = c.u64(|| fields::array_length(key))?;
    check_array_cap(key, count, count_offset)?;
    check_array_fits(c, key, count, count_offset, element_type)?;

    // `check_array_fits` proved count * element size <= remaining bytes, so `count` fits in
    // usize and every allocation below is bounded by the input size.
    let n = count as usize;
    let byte_len = || count * element_type.min_encoded_size() as u64;
    let field = || fields::array_elements(key);

    Ok(match element_type {
        ValueType::U8 => Array::U8(c.take(byte_len(), field)?.to_vec()),
        ValueType::I8 => Array::I8(decode_fixed(c.take(byte_len(), field)?, i8::from_le_bytes)),
        ValueType::U16 => Array::U16(decode_fixed(c.take(byte_len(), field)?, u16::from_le_bytes)),
        ValueType::I16 => Array::I16(decode_fixed(c.take(byte_len(), field)?, i16::from_le_bytes)),
        ValueType::U32 => Array::U32(decode_fixed(c.take(byte_len(), field)?, u32::from_le_bytes)),
        ValueType::I32 => Array::I32(decode_fixed(c.take(byte_len(), field)?, i32::from_le_bytes)),
        ValueType::F32 => Array::F32(decode_fixed(c.take(byte_len(), field)?, f32::from_le_bytes)),
        ValueType::U64 => Array::U64(decode_fixed(c.take(byte_len(), field)?, u64::from_le_bytes)),
        ValueType::I64 => Array::I64(decode_fixed(c.take(byte_len(), field)?, i64::from_le_bytes)),
        ValueType::F64 => Array::F64(decode_fixed(c.take(byte_len(), field)?, f64::from_le_bytes)),
        ValueType::Bool => {
            let start = c.offset();
            let bytes = c.take(byte_len(), field)?;
            let mut out = Vec::with_capacity(n);
            for (i, &byte) in bytes.iter().enumerate() {
                out.push(decode_bool(byte, key, start + i as u64)?);
            }
            Array::Bool(out)
        }
        ValueType::String => {
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                out.push(
                    c.string(|| fields::array_string(i as u64, key))?
                        .to_string(),
                );
            }
            Array::String(out)
        }
        // Already rejected above; kept so the match needs no panic.
        ValueType::Array => {
            return Err(GgufError::NestedArray {
                key: key.to_string(),
                offset: type_offset,
            })
        }
    })
}

/// Rejects array counts above [`MAX_ARRAY_ELEMENTS`].
pub(crate) fn check_array_cap(key: &str, count: u64, offset: u64) -> Result<(), GgufError> {
    if count > MAX_ARRAY_ELEMENTS {
        return Err(GgufError::CountTooLarge {
            field: fields::array_length(key),
            count,
            offset,
            reason: format!("the cap is {MAX_ARRAY_ELEMENTS} elements"),
        });
    }
    Ok(())
}

/// Rejects array counts whose smallest encoding (8 bytes per string, the scalar size
/// otherwise) would not fit in the bytes left. `count` must have passed [`check_array_cap`],
/// so the product cannot overflow.
pub(crate) fn check_array_fits(
    c: &Cursor<'_>,
    key: &str,
    count: u64,
    offset: u64,
    element_type: ValueType,
) -> Result<(), GgufError> {
    let min_bytes = count * element_type.min_encoded_size() as u64;
    if min_bytes > c.remaining() {
        return Err(GgufError::CountTooLarge {
            field: fields::array_length(key),
            count,
            offset,
            reason: format!(
                "{count} {element_type} elements need at least {min_bytes} bytes and only {} are left",
                c.remaining()
            ),
        });
    }
    Ok(())
}

/// Decodes fixed-size little-endian elements; `bytes.len()` is a multiple of `N`.
fn decode_fixed<T, const N: usize>(bytes: &[u8], from_le: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|chunk| {
            let mut array = [0u8; N];
            array.copy_from_slice(chunk);
            from_le(array)
        })
        .collect()
}
