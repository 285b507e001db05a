//! Finiteness checks on quantized data, as ggml's `ggml_validate_row_data` makes them.

use gguf_format::GgmlType;
use half::{bf16, f16};

use crate::error::QuantError;

/// Encoding of a floating-point field inside a block.
#[derive(Clone, Copy)]
enum FloatField {
    F16,
    Bf16,
    F32,
}

/// Returns the encoding and byte offsets of the floating-point fields of one block of
/// `ggml_type` (the scales of quantized types, the value itself of F32, F16 and BF16), or
/// `None` for types this crate does not handle.
fn float_fields(ggml_type: GgmlType) -> Option<(FloatField, &'static [usize])> {
    use GgmlType::*;

    let fields: (FloatField, &'static [usize]) = match ggml_type {
        F32 => (FloatField::F32, &[0]),
        F16 => (FloatField::F16, &[0]),
        BF16 => (FloatField::Bf16, &[0]),
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL | IQ4_XS => (FloatField::F16, &[0]),
        // d and m (Q4_1, Q5_1), d and s (Q8_1), d and dmin (Q4_K, Q5_K).
        Q4_1 | Q5_1 | Q8_1 | Q4_K | Q5_K => (FloatField::F16, &[0, 2]),
        // d and dmin follow the 16 scale bytes and 64 code bytes.
        Q2_K => (FloatField::F16, &[80, 82]),
        // d follows hmask, qs and the 12 scale bytes.
        Q3_K => (FloatField::F16, &[108]),
        // d follows ql, qh and the 16 scales.
        Q6_K => (FloatField::F16, &[208]),
        Q8_K => (FloatField::F32, &[0]),
        _ => return None,
    };
    Some(fields)
}

/// Returns the index and value of the first block of `data` holding a NaN or infinite
/// field, or `None` when every field is finite. `data` is a whole number of blocks.
pub(crate) fn first_non_finite(ggml_type: GgmlType, data: &[u8]) -> Option<(usize, f32)> {
    let (encoding, offsets) = float_fields(ggml_type)?;

    for (block, bytes) in data.chunks_exact(ggml_type.type_size()).enumerate() {
        for &offset in offsets {
            let value = match encoding {
                FloatField::F16 => {
                    f16::from_bits(u16::from_le_bytes([bytes[offset], bytes[offset + 1]])).to_f32()
                }
                FloatField::Bf16 => {
                    bf16::from_bits(u16::from_le_bytes([bytes[offset], bytes[offset + 1]])).to_f32()
                }
                FloatField::F32 => f32::from_le_bytes([
                    bytes[offset],
                    bytes[offset + 1],
                    bytes[offset + 2],
                    bytes[offset + 3],
                ]),
            };
            if !value.is_finite() {
                return Some((block, value));
            }
        }
    }
    None
}

/// Checks that every F32/F16/BF16 value and every block scale in `data` is finite, as
/// ggml's `ggml_validate_row_data` does before a model is used.
///
/// `data` may hold any number of whole blocks (rows need not be known) and need not be
/// aligned.
///
/// # Errors
///
/// - [`QuantError::UnsupportedType`] for a type without a layout here (the IQ1/IQ2/IQ3,
///   TQ and FP4 formats, F64 and the integer types).
/// - [`QuantError::DataLength`] when `data.len()` is not a multiple of the type's block
///   size in bytes.
/// - [`QuantError::NonFiniteData`] naming the first block (for F32, F16 and BF16 the
///   element) that contains a NaN or an infinity.
pub fn validate_row_data(ggml_type: GgmlType, data: &[u8]) -> Result<(), QuantError> {
    if float_fields(ggml_type).is_none() {
        return Err(QuantError::UnsupportedType(ggml_type));
    }

    let block_bytes = ggml_type.type_size();
    if data.len() % block_bytes != 0 {
        return Err(QuantError::DataLength {
            expected: block_bytes,
            found: data.len(),
        });
    }

    match first_non_finite(ggml_type, data) {
        Some((block, value)) => Err(QuantError::NonFiniteData {
            ggml_type,
            block,
            value,
        }),
        None => Ok(()),
    }
}
