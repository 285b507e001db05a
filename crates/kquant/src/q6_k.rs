//! Q6_K: signed 6-bit codes in 16 groups of 16 with int8 group scales, 6.5625 bits per weight.
//!
//! A weight decodes as `d * sc * (q - 32)`, where `q` in `0..64` is its code, `sc` its
//! group's signed 8-bit scale and `d` the super-block's f16 scale. The low four bits of each
//! code sit in `ql` and the top two in `qh`.

use bytemuck::Zeroable;
use gguf_format::GgmlType;
use half::f16;

use crate::blocks::{BlockQ6K, QK_K};
use crate::solvers::{fit_symmetric_consecutive_groups, nearest_int, GROUP_MAX_EPS};
use crate::traits::QuantBlock;

/// Weights per group (one int8 scale each).
const GROUP: usize = 16;

/// Groups per super-block.
const GROUPS: usize = QK_K / GROUP;

/// Codes are `-CODE_OFFSET..CODE_OFFSET`, stored as `0..2 * CODE_OFFSET` (6 bits).
const CODE_OFFSET: i32 = 32;

/// The group scale of largest magnitude is stored as `-SCALE_RANGE` (int8 minimum).
const SCALE_RANGE: f32 = 128.0;

impl QuantBlock for BlockQ6K {
    const TYPE: GgmlType = GgmlType::Q6_K;
    const BLOCK_SIZE: usize = QK_K;

    /// Quantizes as `quantize_row_q6_K_ref` without an imatrix, else as
    /// `quantize_row_q6_K_impl`, which weights each element by its raw imatrix entry.
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

/// Quantizes one super-block of 256 weights, with the imatrix entries `qw` as element
/// weights when given and `x^2` otherwise.
fn quantize_block(x: &[f32], qw: Option<&[f32]>) -> BlockQ6K {
    let mut codes = [0i8; QK_K];

    // Fit all groups at once (ggml's make_qx_quants per group, weights x^2 by default), and
    // find the group scale of largest magnitude (with its sign).
    let weights: [f32; QK_K] = match qw {
        Some(qw) => std::array::from_fn(|e| qw[e]),
        None => std::array::from_fn(|e| x[e] * x[e]),
    };
    let scales: [f32; GROUPS] =
        fit_symmetric_consecutive_groups::<GROUP, GROUPS>(CODE_OFFSET, x, &weights, &mut codes);
    let mut max_scale = 0.0f32;
    let mut max_abs_scale = 0.0f32;
    for &scale in &scales {
        if scale.abs() > max_abs_scale {
            max_abs_scale = scale.abs();
            max_scale = scale;
        }
    }

    // An all-zero (or denormal-only) super-block is stored as zero bytes.
    let mut block = BlockQ6K::zeroed();
    if max_abs_scale < GROUP_MAX_EPS {
        return block;
    }

    // Map the group scales to int8 so that the largest becomes -128.
    let iscale = -SCALE_RANGE / max_scale;
    block.d = f16::from_f32(1.0 / iscale).to_bits();
    for (stored, &scale) in block.scales.iter_mut().zip(&scales) {
        *stored = nearest_int(iscale * scale).min(127) as i8;
    }

    // Recompute the codes from the stored scales; groups whose scale decodes to 0 keep the
    // codes of the group fit, as in ggml.
    let d = f16::from_bits(block.d).to_f32();
    let groups = x.chunks_exact(GROUP).zip(codes.chunks_exact_mut(GROUP));
    for ((group, group_codes), &sc) in groups.zip(&block.scales) {
        let group_d = d * sc as f32;
        if group_d == 0.0 {
            continue;
        }
        for (code, &v) in group_codes.iter_mut().zip(group) {
            let l = nearest_int(v / group_d).clamp(-CODE_OFFSET, CODE_OFFSET - 1);
            *code = (l + CODE_OFFSET) as i8;
        }
    }

    pack_codes(&mut block, &codes);
    block
}

/// Packs codes in `0..64`. Per 128-element half `h`, `ql[64 h + l]` contains the low nibbles of
/// elements `128 h + l` and `128 h + 64 + l`, `ql[64 h + 32 + l]` those of `128 h + 32 + l` and
/// `128 h + 96 + l`, and `qh[32 h + l]` the top two bits of all four in bit pairs 0-1 .. 6-7.
fn pack_codes(block: &mut BlockQ6K, codes: &[i8; QK_K]) {
    let halves = block
        .ql
        .chunks_exact_mut(64)
        .zip(block.qh.chunks_exact_mut(32))
        .zip(codes.chunks_exact(128));
    for ((ql, qh), codes) in halves {
        for l in 0..32 {
            let q = [codes[l], codes[l + 32], codes[l + 64], codes[l + 96]].map(|c| c as u8);
            ql[l] = (q[0] & 0xF) | ((q[2] & 0xF) << 4);
            ql[l + 32] = (q[1] & 0xF) | ((q[3] & 0xF) << 4);
            qh[l] = (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
        }
    }
}

/// Dequantizes one super-block into 256 floats (ggml's `dequantize_row_q6_K`).
fn dequantize_block(block: &BlockQ6K, y: &mut [f32]) {
    let d = f16::from_bits(block.d).to_f32();
    let halves = block
        .ql
        .chunks_exact(64)
        .zip(block.qh.chunks_exact(32))
        .zip(y.chunks_exact_mut(128));
    for (h, ((ql, qh), y)) in halves.enumerate() {
        for l in 0..32 {
            let q = [
                (ql[l] & 0xF) | ((qh[l] & 3) << 4),
                (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4),
                (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
            ];
            for (k, &code) in q.iter().enumerate() {
                let e = 32 * k + l;
                let sc = block.scales[8 * h + e / GROUP];
                y[e] = d * sc as f32 * (i32::from(code) - CODE_OFFSET) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_block_is_zero_bytes() {
        let x = [0.0f32; QK_K];
        let mut block = [BlockQ6K::zeroed()];
        block[0].d = 0x3C00;
        BlockQ6K::quantize_row(&x, None, &mut block);
        assert_eq!(bytemuck::bytes_of(&block[0]), &[0u8; 210][..]);
    }

    #[test]
    fn codes_roundtrip() {
        let codes: [i8; QK_K] = std::array::from_fn(|e| ((e * 11 + e / 5) % 64) as i8);
        let mut block = BlockQ6K::zeroed();
        block.d = f16::from_f32(1.0).to_bits();
        block.scales = [1; GROUPS];
        pack_codes(&mut block, &codes);
        let mut y = [0.0f32; QK_K];
        dequantize_block(&block, &mut y);
        for (e, (&back, &code)) in y.iter().zip(&codes).enumerate() {
            assert_eq!(back, (i32::from(code) - CODE_OFFSET) as f32, "element {e}");
        }
    }
}
