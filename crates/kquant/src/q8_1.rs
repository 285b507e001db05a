//! Q8_1 dequantization. Q8_1 is an activation format (Q8_0 plus `s = d * sum(qs)`), so
//! this crate only reads it back; the activation quantizer produces it.

use crate::blocks::{BlockQ8_1, QK};
use crate::packing::f16_value;

/// Dequantizes Q8_1 blocks into `out` (`out.len()` is `blocks.len() * 32`): `x = q * d`; `s` is not needed.
pub(crate) fn dequantize_row_q8_1(blocks: &[BlockQ8_1], out: &mut [f32]) {
    for (block, y) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let d = f16_value(block.d);
        for (value, &code) in y.iter_mut().zip(&block.qs) {
            *value = f32::from(code) * d;
        }
    }
}
