//! Q3_K: signed 3-bit codes in 16 groups of 16 with 6-bit group scales, 3.4375 bits per weight.
//!
//! A weight decodes as `d * (s - 32) * q`, where `q` in `-4..=3` is its code, `s` its group's
//! 6-bit scale (stored biased by 32) and `d` the super-block's f16 scale. The low two bits of
//! each code sit in bit planes (as in Q2_K) and the third bit in `hmask`.

use bytemuck::Zeroable;
use gguf_format::GgmlType;
use half::f16;

use crate::blocks::{BlockQ3K, QK_K};
use crate::q2_k::{pack_2bit_planes, unpack_2bit_plane};
use crate::solvers::{
    fit_symmetric_consecutive_groups, make_q3_quants, make_qx_quants, nearest_int,
};
use crate::traits::QuantBlock;

/// Weights per group (one 6-bit scale each).
const GROUP: usize = 16;

/// Groups per super-block.
const GROUPS: usize = QK_K / GROUP;

/// Codes are `-CODE_OFFSET..CODE_OFFSET`, stored as `0..2 * CODE_OFFSET`.
const CODE_OFFSET: i32 = 4;

/// Group scales are `-SCALE_OFFSET..SCALE_OFFSET`, stored as `0..2 * SCALE_OFFSET` (6 bits).
const SCALE_OFFSET: i32 = 32;

/// Elements that share one byte of `hmask` bit position: bit `b` of `hmask[l]` belongs to
/// element `32 b + l`.
const HMASK_STRIDE: usize = QK_K / 8;

impl QuantBlock for BlockQ3K {
    const TYPE: GgmlType = GgmlType::Q3_K;
    const BLOCK_SIZE: usize = QK_K;

    /// Quantizes as `quantize_row_q3_K_ref` without an imatrix, else as
    /// `quantize_row_q3_K_impl`.
    fn quantize_row(row: &[f32], imatrix: Option<&[f32]>, out: &mut [Self]) {
        match imatrix {
            None => {
                for (x, block) in row.chunks_exact(QK_K).zip(out) {
                    *block = quantize_block_ref(x);
                }
            }
            Some(importance) => {
                let blocks = row.chunks_exact(QK_K).zip(importance.chunks_exact(QK_K));
                for ((x, qw), block) in blocks.zip(out) {
                    *block = quantize_block_imatrix(x, qw);
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

/// Quantizes one super-block of 256 weights without importance (ggml's `quantize_row_q3_K_ref`).
fn quantize_block_ref(x: &[f32]) -> BlockQ3K {
    let mut codes = [0i8; QK_K];
    let mut scales = [0.0f32; GROUPS];

    // Fit each group, and find the group scale of largest magnitude (with its sign).
    let mut max_scale = 0.0f32;
    let mut amax = 0.0f32;
    for (j, (group, group_codes)) in x
        .chunks_exact(GROUP)
        .zip(codes.chunks_exact_mut(GROUP))
        .enumerate()
    {
        scales[j] = make_q3_quants(CODE_OFFSET, group, group_codes);
        let abs_scale = scales[j].abs();
        if abs_scale > amax {
            amax = abs_scale;
            max_scale = scales[j];
        }
    }

    // Map the group scales to 6 bits so that the largest becomes -32.
    let mut block = BlockQ3K::zeroed();
    if max_scale != 0.0 {
        let iscale = -(SCALE_OFFSET as f32) / max_scale;
        for (j, &scale) in scales.iter().enumerate() {
            // ggml narrows to int8_t before clamping.
            let l =
                (nearest_int(iscale * scale) as i8 as i32).clamp(-SCALE_OFFSET, SCALE_OFFSET - 1);
            pack_scale(&mut block.scales, j, (l + SCALE_OFFSET) as u8);
        }
        block.d = f16::from_f32(1.0 / iscale).to_bits();
    }

    requantize(x, &mut block, &mut codes);
    pack_codes(&mut block, &codes);
    block
}

/// Quantizes one super-block of 256 weights with their imatrix entries `qw`
/// (ggml's `quantize_row_q3_K_impl`).
fn quantize_block_imatrix(x: &[f32], qw: &[f32]) -> BlockQ3K {
    let mut codes = [0i8; QK_K];
    let mut group_weights = [0.0f32; GROUPS];

    // Element weight qw * sqrt(sigma2 + x^2), with sigma2 twice the mean square.
    let mut sum_x2 = 0.0f32;
    for &v in x {
        sum_x2 += v * v;
    }
    let sigma2 = 2.0 * sum_x2 / QK_K as f32;

    let mut weights = [0.0f32; QK_K];
    let groups = x
        .chunks_exact(GROUP)
        .zip(qw.chunks_exact(GROUP))
        .zip(weights.chunks_exact_mut(GROUP));
    for (j, ((group, group_qw), element_weights)) in groups.enumerate() {
        let mut sum_w = 0.0f32;
        for ((w, &v), &q) in element_weights.iter_mut().zip(group).zip(group_qw) {
            *w = q * (sigma2 + v * v).sqrt();
            sum_w += *w;
        }
        group_weights[j] = sum_w;
    }

    // Fit all groups at once (ggml's make_qx_quants per group).
    let scales: [f32; GROUPS] =
        fit_symmetric_consecutive_groups::<GROUP, GROUPS>(CODE_OFFSET, x, &weights, &mut codes);

    // Quantize the signed group scales to 6 bits, weighted by each group's total weight.
    let mut scale_codes = [0i8; GROUPS];
    let d = make_qx_quants(
        SCALE_OFFSET,
        &scales,
        &mut scale_codes,
        Some(&group_weights),
    );
    let mut block = BlockQ3K::zeroed();
    for (j, &code) in scale_codes.iter().enumerate() {
        pack_scale(&mut block.scales, j, code as u8);
    }
    block.d = f16::from_f32(d).to_bits();

    requantize(x, &mut block, &mut codes);
    pack_codes(&mut block, &codes);
    block
}

/// Stores the biased 6-bit scale `value` of group `j` (0..16) into the 12 packed bytes.
///
/// The low 4 bits go to byte `j % 8` (low nibble for `j < 8`, high nibble otherwise), and
/// the top 2 bits to byte `8 + j % 4` at bit `2 * (j / 4)`. Bytes start at zero.
fn pack_scale(packed: &mut [u8; 12], j: usize, value: u8) {
    if j < 8 {
        packed[j] = value & 0xF;
    } else {
        packed[j - 8] |= (value & 0xF) << 4;
    }
    packed[8 + j % 4] |= (value >> 4) << (2 * (j / 4));
}

/// Reads the signed scale of group `j` (0..16), in `-32..32`.
fn unpack_scale(packed: &[u8; 12], j: usize) -> i32 {
    let low = if j < 8 {
        packed[j] & 0xF
    } else {
        packed[j - 8] >> 4
    };
    let high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    i32::from(low | (high << 4)) - SCALE_OFFSET
}

/// Recomputes the codes from the stored f16 scale and 6-bit group scales.
///
/// Groups whose decoded scale is 0 keep the codes of the group fit, as in ggml.
fn requantize(x: &[f32], block: &mut BlockQ3K, codes: &mut [i8; QK_K]) {
    let d = f16::from_bits(block.d).to_f32();
    for (j, (group, group_codes)) in x
        .chunks_exact(GROUP)
        .zip(codes.chunks_exact_mut(GROUP))
        .enumerate()
    {
        let group_d = d * unpack_scale(&block.scales, j) as f32;
        if group_d == 0.0 {
            continue;
        }
        for (code, &v) in group_codes.iter_mut().zip(group) {
            let l = nearest_int(v / group_d).clamp(-CODE_OFFSET, CODE_OFFSET - 1);
            *code = (l + CODE_OFFSET) as i8;
        }
    }
}

/// Splits codes in `0..8` into the `hmask` bit (set for codes 4..8) and the low two bits.
fn pack_codes(block: &mut BlockQ3K, codes: &[i8; QK_K]) {
    let mut low = [0u8; QK_K];
    block.hmask = [0; QK_K / 8];
    for (e, &code) in codes.iter().enumerate() {
        let mut code = code as u8;
        if code > 3 {
            block.hmask[e % HMASK_STRIDE] |= 1 << (e / HMASK_STRIDE);
            code -= 4;
        }
        low[e] = code;
    }
    block.qs = pack_2bit_planes(&low);
}

/// Dequantizes one super-block into 256 floats (ggml's `dequantize_row_q3_K`).
fn dequantize_block(block: &BlockQ3K, y: &mut [f32]) {
    let d = f16::from_bits(block.d).to_f32();
    for (j, group) in y.chunks_exact_mut(GROUP).enumerate() {
        let group_d = d * unpack_scale(&block.scales, j) as f32;
        for (l, value) in group.iter_mut().enumerate() {
            let e = GROUP * j + l;
            let high_set = block.hmask[e % HMASK_STRIDE] & (1 << (e / HMASK_STRIDE)) != 0;
            let offset = if high_set { 0 } else { CODE_OFFSET };
            let q = i32::from(unpack_2bit_plane(&block.qs, e)) - offset;
            *value = group_d * q as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_roundtrip() {
        let mut packed = [0u8; 12];
        let values: [u8; GROUPS] = std::array::from_fn(|j| (j * 5 + 3) as u8 % 64);
        for (j, &v) in values.iter().enumerate() {
            pack_scale(&mut packed, j, v);
        }
        for (j, &v) in values.iter().enumerate() {
            assert_eq!(
                unpack_scale(&packed, j),
                i32::from(v) - SCALE_OFFSET,
                "group {j}"
            );
        }
    }

    #[test]
    fn zero_block_stays_zero() {
        let x = [0.0f32; QK_K];
        let mut block = [BlockQ3K::zeroed()];
        BlockQ3K::quantize_row(&x, None, &mut block);
        let mut y = [1.0f32; QK_K];
        BlockQ3K::dequantize_row(&block, &mut y);
        assert!(y.iter().all(|&v| v == 0.0), "{y:?}");
    }
}
