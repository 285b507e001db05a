//! IQ4_XS: 256-weight super-blocks of eight IQ4_NL sub-blocks with 6-bit sub-block
//! scales, 4.25 bits per weight.

use gguf_format::GgmlType;

use crate::blocks::{BlockIQ4XS, KVALUES_IQ4NL, QK, QK_K};
use crate::iq4_nl::{
    fit_sub_block_scale, nearest_code_index, sub_block_weights, super_block_sigma2,
};
use crate::packing::{f16_bits, f16_value, pack_nibbles};
use crate::solvers::nearest_int;
use crate::traits::QuantBlock;

/// Sub-blocks per super-block.
const SUB_BLOCKS: usize = QK_K / QK;

/// Bias of the stored 6-bit sub-block scales: stored `ls` means `ls - 32` steps of `d`.
const SCALE_BIAS: i32 = 32;

impl QuantBlock for BlockIQ4XS {
    const TYPE: GgmlType = GgmlType::IQ4_XS;
    const BLOCK_SIZE: usize = QK_K;

    /// Quantizes as ggml's `quantize_iq4_xs`, with or without an imatrix.
    fn quantize_row(row: &[f32], imatrix: Option<&[f32]>, out: &mut [Self]) {
        for (index, (block, x)) in out.iter_mut().zip(row.chunks_exact(QK_K)).enumerate() {
            let importance = imatrix.map(|qw| &qw[index * QK_K..(index + 1) * QK_K]);
            *block = quantize_super_block(x, importance);
        }
    }

    fn dequantize_row(blocks: &[Self], out: &mut [f32]) {
        for (block, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            let d = f16_value(block.d);
            let sub_blocks = y.chunks_exact_mut(QK).zip(block.qs.chunks_exact(QK / 2));
            for (ib, (y, qs)) in sub_blocks.enumerate() {
                let dl = d * (sub_block_scale(block, ib) - SCALE_BIAS) as f32;
                for (j, &byte) in qs.iter().enumerate() {
                    y[j] = dl * f32::from(KVALUES_IQ4NL[usize::from(byte & 0x0F)]);
                    y[j + QK / 2] = dl * f32::from(KVALUES_IQ4NL[usize::from(byte >> 4)]);
                }
            }
        }
    }
}

/// Returns the stored 6-bit scale of sub-block `ib`: low 4 bits from `scales_l`, high 2 from `scales_h`.
fn sub_block_scale(block: &BlockIQ4XS, ib: usize) -> i32 {
    let low = (block.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
    let high = (block.scales_h >> (2 * ib)) & 3;
    i32::from(low) | (i32::from(high) << 4)
}

/// Fits a scale per sub-block, quantizes those scales to 6 bits against the super-block
/// scale `d = -max_scale / 32`, and recomputes every index from its quantized scale.
fn quantize_super_block(x: &[f32], importance: Option<&[f32]>) -> BlockIQ4XS {
    let sigma2 = super_block_sigma2(x);

    let mut scales = [0.0f32; SUB_BLOCKS];
    let mut amax_scale = 0.0f32;
    let mut max_scale = 0.0f32;
    for (ib, scale) in scales.iter_mut().enumerate() {
        let xb = &x[ib * QK..(ib + 1) * QK];
        let weights =
            sub_block_weights(xb, importance.map(|qw| &qw[ib * QK..(ib + 1) * QK]), sigma2);
        *scale = fit_sub_block_scale(xb, &weights);
        if scale.abs() > amax_scale {
            amax_scale = scale.abs();
            max_scale = *scale;
        }
    }

    // The unrounded f32 `d`, not its f16 value, sets the sub-block scales, as in ggml.
    let d = -max_scale / SCALE_BIAS as f32;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };

    let mut scales_l = [0u8; QK_K / 64];
    let mut scales_h = 0u16;
    let mut qs = [0u8; QK_K / 2];
    for (ib, &scale) in scales.iter().enumerate() {
        let l = nearest_int(id * scale).clamp(-SCALE_BIAS, SCALE_BIAS - 1);
        let dl = d * l as f32;
        let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };

        let xb = &x[ib * QK..(ib + 1) * QK];
        let indices: [u8; QK] = std::array::from_fn(|j| nearest_code_index(idl * xb[j]));
        qs[ib * QK / 2..(ib + 1) * QK / 2].copy_from_slice(&pack_nibbles(&indices));

        let stored = (l + SCALE_BIAS) as u8;
        scales_l[ib / 2] |= (stored & 0x0F) << (4 * (ib % 2));
        scales_h |= u16::from(stored >> 4) << (2 * ib);
    }

    BlockIQ4XS {
        d: f16_bits(d),
        scales_h,
        scales_l,
        qs,
    }
}
