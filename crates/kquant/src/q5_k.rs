//! Q5_K: 5-bit codes in 8 groups of 32 with 6-bit group scales and mins, 5.5 bits per weight.
//!
//! The layout of Q4_K plus a fifth bit per code in `qh`. A weight decodes as
//! `d * sc * q - dmin * m`, with `q` in `0..32`.

use bytemuck::Zeroable;
use gguf_format::GgmlType;
use half::f16;

use crate::blocks::{BlockQ5K, QK_K};
use crate::q4_k::{choose_scales_and_codes, get_scale_min_k4};
use crate::solvers::ScaleSearch;
use crate::traits::QuantBlock;

/// Largest 5-bit code.
const CODE_MAX: i32 = 31;

/// Codes at or above this value have their fifth bit set in `qh`.
const HIGH_BIT: u8 = 16;

/// Grid of `quantize_row_q5_K_ref`: 16 steps from `31 - 0.5` to `31 + 1.0`, squared error.
const REF_SEARCH: ScaleSearch = ScaleSearch {
    rmin: -0.5,
    rdelta: 0.1,
    nstep: 15,
    use_mad: false,
};

impl QuantBlock for BlockQ5K {
    const TYPE: GgmlType = GgmlType::Q5_K;
    const BLOCK_SIZE: usize = QK_K;

    /// Quantizes as `quantize_row_q5_K_ref` without an imatrix, else as
    /// `quantize_row_q5_K_impl`.
    fn quantize_row(row: &[f32], imatrix: Option<&[f32]>, out: &mut [Self]) {
        match imatrix {
            None => {
                for (x, block) in row.chunks_exact(QK_K).zip(out) {
                    *block = quantize_block(x, None);
                }
            }
            Some(importance) => {
                let blocks = row.chunks_exact(QK_K).zip(importance.chunks_exact(QK_K));
                for ((x, qw), block) in blocks.zip(out) {
                    *block = quantize_block(x, Some(qw));
                }
            }
        }
    }

    fn dequantize_row(blocks: &[Self], out: &mut [f32]) {
        for (block, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            dequantize_block(block, y);
        }
    }
}

/// Quantizes one super-block of 256 weights.
fn quantize_block(x: &[f32], qw: Option<&[f32]>) -> BlockQ5K {
    let chosen = choose_scales_and_codes(x, qw, CODE_MAX, REF_SEARCH, true);
    let mut block = BlockQ5K::zeroed();
    block.d = chosen.d;
    block.dmin = chosen.dmin;
    block.scales = chosen.scales;

    // Byte 32 g + l of qs: low nibbles of elements 64 g + l and 64 g + 32 + l.
    // Bits 2 g and 2 g + 1 of qh[l]: their fifth bits.
    for (g, (qs, codes)) in block
        .qs
        .chunks_exact_mut(32)
        .zip(chosen.codes.chunks_exact(64))
        .enumerate()
    {
        let low_mask = 1u8 << (2 * g);
        let high_mask = 1u8 << (2 * g + 1);
        for (l, byte) in qs.iter_mut().enumerate() {
            let mut low = codes[l];
            if low >= HIGH_BIT {
                low -= HIGH_BIT;
                block.qh[l] |= low_mask;
            }
            let mut high = codes[l + 32];
            if high >= HIGH_BIT {
                high -= HIGH_BIT;
                block.qh[l] |= high_mask;
            }
            *byte = low | (high << 4);
        }
    }
    block
}

/// Dequantizes one super-block into 256 floats (ggml's `dequantize_row_q5_K`).
fn dequantize_block(block: &BlockQ5K, y: &mut [f32]) {
    let d = f16::from_bits(block.d).to_f32();
    let dmin = f16::from_bits(block.dmin).to_f32();
    for (g, (qs, y64)) in block
        .qs
        .chunks_exact(32)
        .zip(y.chunks_exact_mut(64))
        .enumerate()
    {
        let (sc_low, m_low) = get_scale_min_k4(&block.scales, 2 * g);
        let (sc_high, m_high) = get_scale_min_k4(&block.scales, 2 * g + 1);
        let (d_low, min_low) = (d * sc_low as f32, dmin * m_low as f32);
        let (d_high, min_high) = (d * sc_high as f32, dmin * m_high as f32);
        let low_mask = 1u8 << (2 * g);
        let high_mask = 1u8 << (2 * g + 1);
        let (y_low, y_high) = y64.split_at_mut(32);
        for (l, (low, high)) in y_low.iter_mut().zip(y_high).enumerate() {
            let qh = block.qh[l];
            let q_low = (qs[l] & 0xF) + if qh & low_mask != 0 { HIGH_BIT } else { 0 };
            let q_high = (qs[l] >> 4) + if qh & high_mask != 0 { HIGH_BIT } else { 0 };
            *low = d_low * q_low as f32 - min_low;
            *high = d_high * q_high as f32 - min_high;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_block_stays_zero() {
        let x = [0.0f32; QK_K];
        let mut block = [BlockQ5K::zeroed()];
        BlockQ5K::quantize_row(&x, None, &mut block);
        let mut y = [1.0f32; QK_K];
        BlockQ5K::dequantize_row(&block, &mut y);
        assert!(y.iter().all(|&v| v == 0.0), "{y:?}");
    }

    #[test]
    fn fifth_bit_roundtrip() {
        // A ramp over one super-block uses all 32 codes, so every qh bit is exercised.
        let x: [f32; QK_K] = std::array::from_fn(|e| (e % 64) as f32 / 63.0);
        let mut block = [BlockQ5K::zeroed()];
        BlockQ5K::quantize_row(&x, None, &mut block);
        let mut y = [0.0f32; QK_K];
        BlockQ5K::dequantize_row(&block, &mut y);
        for (e, (&back, &v)) in y.iter().zip(&x).enumerate() {
            assert!((back - v).abs() < 0.02, "element {e}: {back} vs {v}");
        }
    }
}
