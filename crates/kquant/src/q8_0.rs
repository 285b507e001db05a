//! Q8_0: 32 weights per block as signed bytes times one scale, 8.5 bits per weight.
//!
//! This is the weight quantizer (ggml's `quantize_row_q8_0_ref`, rounding half away from
//! zero). The activation quantizer of the CPU dot products differs on ties and lives in
//! the `activation` module.

use gguf_format::GgmlType;

use crate::blocks::{BlockQ8_0, QK};
use crate::packing::{c_roundf_to_byte, f16_bits, f16_value};
use crate::traits::QuantBlock;

/// Largest code magnitude: `d = amax / 127`.
const MAX_CODE: f32 = 127.0;

impl QuantBlock for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const BLOCK_SIZE: usize = QK;

    /// Quantizes with ggml's `quantize_row_q8_0_ref`; the imatrix is ignored, as in ggml.
    fn quantize_row(row: &[f32], _imatrix: Option<&[f32]>, out: &mut [Self]) {
        for (block, x) in out.iter_mut().zip(row.chunks_exact(QK)) {
            *block = quantize_block(x);
        }
    }

    fn dequantize_row(blocks: &[Self], out: &mut [f32]) {
        for (block, y) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
            let d = f16_value(block.d);
            for (value, &code) in y.iter_mut().zip(&block.qs) {
                *value = f32::from(code) * d;
            }
        }
    }
}

/// Scales the block so that its largest magnitude maps to ±127 and rounds half away from
/// zero (C's `roundf`), from the unrounded f32 scale.
fn quantize_block(x: &[f32]) -> BlockQ8_0 {
    let amax = x.iter().fold(
        0.0f32,
        |amax, v| if amax > v.abs() { amax } else { v.abs() },
    );
    let d = amax / MAX_CODE;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };

    let qs: [i8; QK] = std::array::from_fn(|j| c_roundf_to_byte(x[j] * id) as i8);

    BlockQ8_0 { d: f16_bits(d), qs }
}
