//! Q8_K: the 8-bit activation format that the k-quant dot products pair with.
//!
//! A value decodes as `d * q` with an f32 `d` per 256 values. `bsums` caches the sum of each
//! group of 16 codes, so a dot product can apply a weight format's group mins without
//! touching the codes again.

use bytemuck::Zeroable;
use gguf_format::GgmlType;

use crate::blocks::{BlockQ8K, QK_K};
use crate::solvers::nearest_int;
use crate::traits::QuantBlock;

/// Codes per entry of `bsums`.
const BSUM_GROUP: usize = 16;

/// The value of largest magnitude maps to `-CODE_RANGE`, so codes stay in `-127..=127`.
/// ggml chose 127 over 128 to keep its IQ2_XXS AVX dot product simple.
const CODE_RANGE: f32 = 127.0;

impl QuantBlock for BlockQ8K {
    const TYPE: GgmlType = GgmlType::Q8_K;
    const BLOCK_SIZE: usize = QK_K;

    /// Quantizes as ggml's `quantize_row_q8_K_ref`; `imatrix` is ignored because Q8_K
    /// encodes activations, which have no importance vector.
    fn quantize_row(row: &[f32], _imatrix: Option<&[f32]>, out: &mut [Self]) {
        for (x, block) in row.chunks_exact(QK_K).zip(out) {
            *block = quantize_block(x);
        }
    }

    fn dequantize_row(blocks: &[Self], out: &mut [f32]) {
        for (block, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            for (value, &q) in y.iter_mut().zip(&block.qs) {
                *value = block.d * q as f32;
            }
        }
    }
}

/// Quantizes 256 values (ggml's `quantize_row_q8_K_ref`).
///
/// An all-zero input gives `d = 0` and zero codes and sums (ggml leaves `bsums` as they
/// were in that case, and here they are zeroed).
fn quantize_block(x: &[f32]) -> BlockQ8K {
    let mut block = BlockQ8K::zeroed();

    // The signed value of largest magnitude, first one on ties.
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        return block;
    }

    let iscale = -CODE_RANGE / max;
    for (q, &v) in block.qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (sum, codes) in block
        .bsums
        .iter_mut()
        .zip(block.qs.chunks_exact(BSUM_GROUP))
    {
        *sum = codes.iter().map(|&q| i16::from(q)).sum();
    }
    block.d = 1.0 / iscale;
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_value_maps_to_127() {
        let x: [f32; QK_K] = std::array::from_fn(|e| (e as f32 - 100.0) / 10.0);
        let mut block = [BlockQ8K::zeroed()];
        BlockQ8K::quantize_row(&x, None, &mut block);
        assert_eq!(block[0].qs[QK_K - 1], -127);
        assert_eq!(block[0].d, 1.0 / (-127.0 / 15.5));
        let expected: i16 = block[0].qs[..16].iter().map(|&q| i16::from(q)).sum();
        assert_eq!(block[0].bsums[0], expected);
    }

    #[test]
    fn zero_block_stays_zero() {
        let x = [0.0f32; QK_K];
        let mut block = [BlockQ8K::zeroed()];
        BlockQ8K::quantize_row(&x, None, &mut block);
        assert_eq!(block[0].d, 0.0);
        let mut y = [1.0f32; QK_K];
        BlockQ8K::dequantize_row(&block, &mut y);
        assert!(y.iter().all(|&v| v == 0.0), "{y:?}");
    }

    #[test]
    fn roundtrip_error_within_half_step() {
        let x: [f32; QK_K] = std::array::from_fn(|e| ((e * 37) % 101) as f32 / 50.0 - 1.0);
        let mut block = [BlockQ8K::zeroed()];
        BlockQ8K::quantize_row(&x, None, &mut block);
        let mut y = [0.0f32; QK_K];
        BlockQ8K::dequantize_row(&block, &mut y);
        let step = block[0].d.abs();
        for (e, (&back, &v)) in y.iter().zip(&x).enumerate() {
            assert!(
                (back - v).abs() <= 0.5 * step * 1.0001,
                "element {e}: {back} vs {v}"
            );
        }
    }
}
