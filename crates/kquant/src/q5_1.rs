//! Q5_1: 32 weights per block as 5-bit codes above a minimum, 6 bits per weight.

use gguf_format::GgmlType;

use crate::blocks::{BlockQ5_1, QK};
use crate::imatrix_weights::{element_weights, row_sigma2};
use crate::packing::{
    c_float_to_byte, f16_bits, f16_value, pack_fifth_bits, pack_nibbles, unpack_codes,
};
use crate::q4_1::min_max;
use crate::solvers::{make_qkx3_quants, IMATRIX_SEARCH};
use crate::traits::QuantBlock;

/// Largest 5-bit code.
const MAX_CODE: u8 = 31;

impl QuantBlock for BlockQ5_1 {
    const TYPE: GgmlType = GgmlType::Q5_1;
    const BLOCK_SIZE: usize = QK;

    /// Quantizes with ggml's `quantize_row_q5_1_ref` (min/max fit) without an imatrix, and
    /// with `quantize_row_q5_1_impl` (weighted grid search over scale and min) with one.
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
            let m = f16_value(block.m);
            let codes = unpack_codes(&block.qs, Some(&block.qh));
            for (value, &code) in y.iter_mut().zip(&codes) {
                *value = f32::from(code) * d + m;
            }
        }
    }
}

/// Spreads the block's range `[min, max]` over codes 0..=31 and truncates `(x - min) / d + 0.5`.
///
/// Unlike Q4_1, ggml does not clip the code here: the largest value rounds to 31 at most.
fn quantize_block_ref(x: &[f32]) -> BlockQ5_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / f32::from(MAX_CODE);
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };

    let codes: [u8; QK] = std::array::from_fn(|j| c_float_to_byte((x[j] - min) * id + 0.5));

    BlockQ5_1 {
        d: f16_bits(d),
        m: f16_bits(min),
        qh: pack_fifth_bits(&codes),
        qs: pack_nibbles(&codes),
    }
}

/// Fits each block's scale and min by ggml's weighted grid search, element weights
/// `imatrix[j] * sqrt(sigma2 + x[j]^2)` with `sigma2` the mean square of the whole row.
fn quantize_row_weighted(row: &[f32], importance: &[f32], out: &mut [BlockQ5_1]) {
    let sigma2 = row_sigma2(row);

    for ((block, x), qw) in out
        .iter_mut()
        .zip(row.chunks_exact(QK))
        .zip(importance.chunks_exact(QK))
    {
        let weights = element_weights(x, qw, sigma2);

        let mut codes = [0u8; QK];
        let fit = make_qkx3_quants(
            i32::from(MAX_CODE),
            x,
            Some(&weights),
            &mut codes,
            IMATRIX_SEARCH,
        );

        *block = BlockQ5_1 {
            d: f16_bits(fit.scale),
            m: f16_bits(-fit.min),
            qh: pack_fifth_bits(&codes),
            qs: pack_nibbles(&codes),
        };
    }
}
