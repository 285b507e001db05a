//! Q4_0: 32 weights per block as 4-bit codes around a signed scale, 4.5 bits per weight.

use gguf_format::GgmlType;

use crate::blocks::{BlockQ4_0, QK};
use crate::imatrix_weights::{element_weights, row_sigma2};
use crate::packing::{
    c_float_to_byte, f16_bits, f16_value, pack_nibbles, signed_absmax, unpack_codes,
};
use crate::solvers::make_qx_quants;
use crate::traits::QuantBlock;

/// Offset of the stored codes: `x = (code - 8) * d`, and the largest magnitude gets code 0, so `d = max / -8`.
const CODE_OFFSET: f32 = 8.0;

/// `CODE_OFFSET + 0.5`, added before truncation so that truncation rounds (ggml adds it in one step).
const ROUNDING_OFFSET: f32 = 8.5;

/// Largest 4-bit code.
const MAX_CODE: u8 = 15;

impl QuantBlock for BlockQ4_0 {
    const TYPE: GgmlType = GgmlType::Q4_0;
    const BLOCK_SIZE: usize = QK;

    /// Quantizes with ggml's `quantize_row_q4_0_ref` without an imatrix, and with
    /// `quantize_row_q4_0_impl` (weighted least squares on the scale) with one.
    fn quantize_row(row: &[f32], imatrix: Option<&[f32]>, out: &mut [Self]) {
        match imatrix {
            None => {
                for (block, x) in out.iter_mut().zip(row.chunks_exact(QK)) {
                    *block = quantize_block_ref(x);
                }
            }
            Some(importance) => quantize_row_weighted(row, importance, out),
        }
    }

    fn dequantize_row(blocks: &[Self], out: &mut [f32]) {
        for (block, y) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
            let d = f16_value(block.d);
            let codes = unpack_codes(&block.qs, None);
            for (value, &code) in y.iter_mut().zip(&codes) {
                *value = (i32::from(code) - 8) as f32 * d;
            }
        }
    }
}

/// Maps the signed element of largest magnitude to code 0 and truncates `x / d + 8.5`.
///
/// The opposite extreme lands on 16 and is clipped to 15, so `[-1.0, 1.0, ...]` stores
/// 1.0 as 0.875. Codes come from the unrounded f32 scale; only the stored `d` is f16.
fn quantize_block_ref(x: &[f32]) -> BlockQ4_0 {
    let d = signed_absmax(x) / -CODE_OFFSET;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };

    let codes: [u8; QK] = std::array::from_fn(|j| {
        let code = c_float_to_byte(x[j] * id + ROUNDING_OFFSET) as i8;
        code.min(MAX_CODE as i8) as u8
    });

    BlockQ4_0 {
        d: f16_bits(d),
        qs: pack_nibbles(&codes),
    }
}

/// Chooses each block's scale by weighted least squares, element weights
/// `imatrix[j] * sqrt(sigma2 + x[j]^2)` with `sigma2` the mean square of the whole row.
fn quantize_row_weighted(row: &[f32], importance: &[f32], out: &mut [BlockQ4_0]) {
    let sigma2 = row_sigma2(row);

    for ((block, x), qw) in out
        .iter_mut()
        .zip(row.chunks_exact(QK))
        .zip(importance.chunks_exact(QK))
    {
        let weights = element_weights(x, qw, sigma2);

        let mut codes = [0i8; QK];
        let d = make_qx_quants(CODE_OFFSET as i32, x, &mut codes, Some(&weights));

        let codes = codes.map(|c| c as u8);
        *block = BlockQ4_0 {
            d: f16_bits(d),
            qs: pack_nibbles(&codes),
        };
    }
}
