//! Activation quantizers: the `from_float` step that ggml's CPU backend runs on an f32
//! activation row before a dot product.
//!
//! Each weight type names the format its dot product expects on the other side (its
//! `vec_dot_type`). These functions produce that format with the same bytes as ggml's CPU
//! backend on x86-64 with AVX2 or AVX-512 (ggml `ggml-cpu/arch/x86/quants.c`):
//!
//! - Q8_0 and Q8_1 use `d = amax / 127` (stored as f16) but multiply by `id = 127 / amax`
//!   and round half to even (`_mm256_round_ps`). The portable reference quantizer
//!   (`quantize_row_q8_0_ref`) divides by the f32 `d` and rounds half away from zero, so its
//!   codes differ from these on ties and on values where `x / d` and `x * id` round apart.
//! - Q8_1 also stores `s = d * sum(qs)` with the unrounded f32 `d`.
//! - Q8_K is `quantize_row_q8_K_ref` on every ISA: `iscale = -127 / max` where `max` is the
//!   signed element of largest magnitude, codes `min(127, nearest_int(iscale * x))`, `d = 1 /
//!   iscale` kept as f32, and `bsums` the sums of each group of 16 codes.
//! - F16 and BF16 convert with round-to-nearest-even; F32 is copied.
//!
//! The functions here trust their inputs (lengths that are multiples of the block size,
//! finite values); [`crate::quantize_activations`] checks both before calling them.

use bytemuck::Pod;
use gguf_format::GgmlType;
use half::{bf16, f16};

use crate::blocks::{BlockQ8K, BlockQ8_0, BlockQ8_1, QK, QK_K};

/// Largest code magnitude of the 8-bit activation formats.
const Q8_MAX: f32 = 127.0;

/// Elements per entry of [`BlockQ8K::bsums`].
const Q8K_BSUM_GROUP: usize = 16;

/// An activation format: the right-hand side of a vec-dot kernel.
///
/// Implemented by the three 8-bit activation blocks and by the plain element types `f32`,
/// [`f16`] and [`bf16`] (blocks of one element), which F32, F16 and BF16 weights pair with.
pub trait ActivationBlock: Pod + Send + Sync {
    /// The ggml type this activation format encodes.
    const TYPE: GgmlType;

    /// Elements per block.
    const BLOCK_SIZE: usize;

    /// Quantizes one activation row into `out` as ggml's x86-64 CPU backend does.
    ///
    /// `row.len()` must be `out.len() * BLOCK_SIZE` and every value finite; otherwise the
    /// function panics on the length and writes unspecified (but not undefined) codes for
    /// non-finite values.
    fn quantize_activation_row(row: &[f32], out: &mut [Self]);

    /// Dequantizes blocks into `out` (`out.len() == blocks.len() * BLOCK_SIZE`).
    ///
    /// Tests use it to compare a kernel with a plain f32 dot product.
    fn dequantize_activation_row(blocks: &[Self], out: &mut [f32]);
}

/// Returns the largest absolute value of `values`, 0 for an empty slice.
fn amax(values: &[f32]) -> f32 {
    values.iter().fold(0.0f32, |acc, v| acc.max(v.abs()))
}

/// Rounds `value * id` half to even and converts it to a code as `_mm256_round_ps`,
/// `_mm256_cvtps_epi32` and the saturating packs do.
///
/// `cvtps` turns NaN and out-of-range values into `i32::MIN`, which the packs saturate to
/// -128. That happens when a block's amax is so small (below about 3.7e-37) that
/// `id = 127 / amax` overflows to infinity; the f16 scale of such a block is 0, so the
/// codes never affect a dot product, but the bytes still match ggml's.
fn round_code(value: f32, id: f32) -> i8 {
    const INT_RANGE: f32 = 2_147_483_648.0;

    let rounded = (value * id).round_ties_even();
    let integer = if rounded.is_nan() || !(-INT_RANGE..INT_RANGE).contains(&rounded) {
        i32::MIN
    } else {
        rounded as i32
    };
    integer.clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8
}

/// Quantizes one 32-element block with the x86 rule and returns `(d, codes)`.
fn quantize_q8_block(block: &[f32], qs: &mut [i8; QK]) -> f32 {
    let amax = amax(block);
    let d = amax / Q8_MAX;
    let id = if amax != 0.0 { Q8_MAX / amax } else { 0.0 };

    for (q, &v) in qs.iter_mut().zip(block) {
        *q = round_code(v, id);
    }
    d
}

impl ActivationBlock for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const BLOCK_SIZE: usize = QK;

    fn quantize_activation_row(row: &[f32], out: &mut [Self]) {
        assert_eq!(row.len(), out.len() * QK, "Q8_0 activation row length");

        for (block, chunk) in out.iter_mut().zip(row.chunks_exact(QK)) {
            let d = quantize_q8_block(chunk, &mut block.qs);
            block.d = f16::from_f32(d).to_bits();
        }
    }

    fn dequantize_activation_row(blocks: &[Self], out: &mut [f32]) {
        for (block, chunk) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
            let d = f16::from_bits(block.d).to_f32();
            for (o, &q) in chunk.iter_mut().zip(&block.qs) {
                *o = d * f32::from(q);
            }
        }
    }
}

impl ActivationBlock for BlockQ8_1 {
    const TYPE: GgmlType = GgmlType::Q8_1;
    const BLOCK_SIZE: usize = QK;

    fn quantize_activation_row(row: &[f32], out: &mut [Self]) {
        assert_eq!(row.len(), out.len() * QK, "Q8_1 activation row length");

        for (block, chunk) in out.iter_mut().zip(row.chunks_exact(QK)) {
            let d = quantize_q8_block(chunk, &mut block.qs);
            let sum: i32 = block.qs.iter().map(|&q| i32::from(q)).sum();

            block.d = f16::from_f32(d).to_bits();
            block.s = f16::from_f32(d * sum as f32).to_bits();
        }
    }

    fn dequantize_activation_row(blocks: &[Self], out: &mut [f32]) {
        for (block, chunk) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
            let d = f16::from_bits(block.d).to_f32();
            for (o, &q) in chunk.iter_mut().zip(&block.qs) {
                *o = d * f32::from(q);
            }
        }
    }
}

/// Rounds to the nearest integer, ties to even, with ggml's `nearest_int` trick: adding
/// 1.5 * 2^23 leaves the integer in the low mantissa bits.
///
/// Exact for |x| <= 2^22 - 1. Infinity and NaN, which Q8_K meets only when `iscale`
/// overflows on a block of values below about 3.7e-37, come out as -2^22 and 0 exactly as in
/// ggml; the block's `d` is then 0.
fn nearest_int(x: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0;
    const MANTISSA: i32 = 0x007F_FFFF;
    const HALF_RANGE: i32 = 0x0040_0000;

    ((x + MAGIC).to_bits() as i32 & MANTISSA) - HALF_RANGE
}

impl ActivationBlock for BlockQ8K {
    const TYPE: GgmlType = GgmlType::Q8_K;
    const BLOCK_SIZE: usize = QK_K;

    fn quantize_activation_row(row: &[f32], out: &mut [Self]) {
        assert_eq!(row.len(), out.len() * QK_K, "Q8_K activation row length");

        for (block, chunk) in out.iter_mut().zip(row.chunks_exact(QK_K)) {
            // The signed element of largest magnitude; the first one wins a tie, as in ggml.
            let mut amax = 0.0f32;
            let mut max = 0.0f32;
            for &v in chunk {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }

            // ggml leaves `bsums` untouched for an all-zero block; zeros are the only
            // sensible content and the dot products never read them because `d` is 0.
            if amax == 0.0 {
                block.d = 0.0;
                block.qs = [0; QK_K];
                block.bsums = [0; QK_K / Q8K_BSUM_GROUP];
                continue;
            }

            // The negative sign keeps the code of `max` at -127 exactly, so a code never
            // needs the -128 that some ggml IQ kernels cannot represent.
            let iscale = -Q8_MAX / max;
            // ggml stores `min(127, v)` into an int8_t, keeping the low byte.
            for (q, &v) in block.qs.iter_mut().zip(chunk) {
                *q = nearest_int(iscale * v).min(i32::from(i8::MAX)) as i8;
            }

            for (sum, group) in block.bsums.iter_mut().zip(block.qs.chunks_exact(Q8K_BSUM_GROUP)) {
                *sum = group.iter().map(|&q| i16::from(q)).sum();
            }
            block.d = 1.0 / iscale;
        }
    }

    fn dequantize_activation_row(blocks: &[Self], out: &mut [f32]) {
        for (block, chunk) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            for (o, &q) in chunk.iter_mut().zip(&block.qs) {
                *o = block.d * f32::from(q);
            }
        }
    }
}

impl ActivationBlock for f32 {
    const TYPE: GgmlType = GgmlType::F32;
    const BLOCK_SIZE: usize = 1;

    fn quantize_activation_row(row: &[f32], out: &mut [Self]) {
        out.copy_from_slice(row);
    }

    fn dequantize_activation_row(blocks: &[Self], out: &mut [f32]) {
        out.copy_from_slice(blocks);
    }
}

impl ActivationBlock for f16 {
    const TYPE: GgmlType = GgmlType::F16;
    const BLOCK_SIZE: usize = 1;

    fn quantize_activation_row(row: &[f32], out: &mut [Self]) {
        assert_eq!(row.len(), out.len(), "F16 activation row length");
        for (o, &v) in out.iter_mut().zip(row) {
            *o = f16::from_f32(v);
        }
    }

    fn dequantize_activation_row(blocks: &[Self], out: &mut [f32]) {
        for (o, v) in out.iter_mut().zip(blocks) {
            *o = v.to_f32();
        }
    }
}

impl ActivationBlock for bf16 {
    const TYPE: GgmlType = GgmlType::BF16;
    const BLOCK_SIZE: usize = 1;

    fn quantize_activation_row(row: &[f32], out: &mut [Self]) {
        assert_eq!(row.len(), out.len(), "BF16 activation row length");
        for (o, &v) in out.iter_mut().zip(row) {
            *o = bf16::from_f32(v);
        }
    }

    fn dequantize_activation_row(blocks: &[Self], out: &mut [f32]) {
        for (o, v) in out.iter_mut().zip(blocks) {
            *o = v.to_f32();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_rounds_ties_to_even() {
        // amax 127 makes id exactly 1, so 2.5 and -0.5 are exact ties.
        let mut row = [0.0f32; QK];
        row[0] = 127.0;
        row[1] = 2.5;
        row[2] = -0.5;
        row[3] = 3.5;
        let mut out = [BlockQ8_0::default()];

        BlockQ8_0::quantize_activation_row(&row, &mut out);

        assert_eq!(out[0].qs[0], 127);
        assert_eq!(out[0].qs[1], 2);
        assert_eq!(out[0].qs[2], 0);
        assert_eq!(out[0].qs[3], 4);
        assert_eq!(f16::from_bits(out[0].d).to_f32(), 1.0);
    }

    #[test]
    fn q8_1_stores_scaled_sum() {
        let row: Vec<f32> = (0..QK).map(|i| i as f32 - 10.0).collect();
        let mut out = [BlockQ8_1::default()];

        BlockQ8_1::quantize_activation_row(&row, &mut out);

        let d = 21.0f32 / 127.0;
        let sum: i32 = out[0].qs.iter().map(|&q| i32::from(q)).sum();
        assert_eq!(out[0].s, f16::from_f32(d * sum as f32).to_bits());
        assert_eq!(out[0].d, f16::from_f32(d).to_bits());
    }

    #[test]
    fn q8_k_zero_block_is_all_zero() {
        let row = [0.0f32; QK_K];
        let mut out = [BlockQ8K { d: 1.0, qs: [5; QK_K], bsums: [3; 16] }];

        BlockQ8K::quantize_activation_row(&row, &mut out);

        assert_eq!(out[0].d, 0.0);
        assert!(out[0].qs.iter().all(|&q| q == 0));
        assert!(out[0].bsums.iter().all(|&s| s == 0));
    }
}
