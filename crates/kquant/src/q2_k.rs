//! Q2_K: 2-bit codes in 16 groups of 16 with 4-bit group scales and mins, 2.625 bits per weight.
//!
//! A weight decodes as `d * sc * q - dmin * m`, where `q` is its 2-bit code, `sc` and `m` are
//! its group's 4-bit scale and min, and `d`, `dmin` are the super-block's f16 scales.

use bytemuck::Zeroable;
use gguf_format::GgmlType;
use half::f16;

use crate::blocks::{BlockQ2K, QK_K};
use crate::solvers::{
    fit_consecutive_groups, make_qp_quants, nearest_int, AffineFit, ScaleSearch, IMATRIX_SEARCH,
};
use crate::traits::QuantBlock;

/// Weights per group (one 4-bit scale and one 4-bit min each).
const GROUP: usize = 16;

/// Groups per super-block.
const GROUPS: usize = QK_K / GROUP;

/// Largest 2-bit code.
const CODE_MAX: i32 = 3;

/// Largest 4-bit group scale or min.
const SCALE_MAX: i32 = 15;

/// Grid of `quantize_row_q2_K_ref`: 16 steps from `3 - 0.5` to `3 + 1.0`, minimising the
/// weighted absolute error.
const REF_SEARCH: ScaleSearch = ScaleSearch {
    rmin: -0.5,
    rdelta: 0.1,
    nstep: 15,
    use_mad: true,
};

impl QuantBlock for BlockQ2K {
    const TYPE: GgmlType = GgmlType::Q2_K;
    const BLOCK_SIZE: usize = QK_K;

    /// Quantizes as `quantize_row_q2_K_ref` without an imatrix, else as
    /// `quantize_row_q2_K_impl`.
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

/// Quantizes one super-block of 256 weights without importance (ggml's `quantize_row_q2_K_ref`).
fn quantize_block_ref(x: &[f32]) -> BlockQ2K {
    let mut codes = [0u8; QK_K];
    let mut scales = [0.0f32; GROUPS];
    let mut mins = [0.0f32; GROUPS];

    // Fit all groups at once with weights |x| (ggml's make_qkx2_quants per group). Scales
    // and mins are non-negative.
    let weights: [f32; QK_K] = std::array::from_fn(|e| x[e].abs());
    let fits: [AffineFit; GROUPS] =
        fit_consecutive_groups::<GROUP, GROUPS>(CODE_MAX, x, &weights, &mut codes, REF_SEARCH);

    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for (j, fit) in fits.iter().enumerate() {
        scales[j] = fit.scale;
        mins[j] = fit.min;
        if fit.scale > max_scale {
            max_scale = fit.scale;
        }
        if fit.min > max_min {
            max_min = fit.min;
        }
    }

    // Scale the group scales and mins linearly to 4 bits.
    let mut block = BlockQ2K::zeroed();
    let scale_max = SCALE_MAX as f32;
    if max_scale > 0.0 {
        let iscale = scale_max / max_scale;
        for (packed, &scale) in block.scales.iter_mut().zip(&scales) {
            *packed = nearest_int(iscale * scale) as u8;
        }
        block.d = f16::from_f32(max_scale / scale_max).to_bits();
    }
    if max_min > 0.0 {
        let iscale = scale_max / max_min;
        for (packed, &min) in block.scales.iter_mut().zip(&mins) {
            *packed |= (nearest_int(iscale * min) << 4) as u8;
        }
        block.dmin = f16::from_f32(max_min / scale_max).to_bits();
    }

    requantize(x, &mut block, &mut codes);
    block.qs = pack_2bit_planes(&codes);
    block
}

/// Quantizes one super-block of 256 weights with their imatrix entries `qw`
/// (ggml's `quantize_row_q2_K_impl`).
fn quantize_block_imatrix(x: &[f32], qw: &[f32]) -> BlockQ2K {
    let mut codes = [0u8; QK_K];
    let mut scales = [0.0f32; GROUPS];
    let mut mins = [0.0f32; GROUPS];
    let mut group_weights = [0.0f32; GROUPS];

    // Element weight qw * sqrt(sigma2 + x^2): the sigma2 term keeps small weights from being
    // ignored next to large ones.
    let mut sum_x2 = 0.0f32;
    for &v in x {
        sum_x2 += v * v;
    }
    let sigma2 = sum_x2 / QK_K as f32;

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

    // Fit all groups at once (ggml's make_qkx3_quants per group).
    let fits: [AffineFit; GROUPS] =
        fit_consecutive_groups::<GROUP, GROUPS>(CODE_MAX, x, &weights, &mut codes, IMATRIX_SEARCH);
    for (j, fit) in fits.iter().enumerate() {
        scales[j] = fit.scale;
        mins[j] = fit.min;
    }

    // Quantize the group scales and mins to 4 bits, weighted by each group's total weight.
    let mut scale_codes = [0u8; GROUPS];
    let mut min_codes = [0u8; GROUPS];
    let d = make_qp_quants(SCALE_MAX, &scales, &mut scale_codes, &group_weights);
    let dmin = make_qp_quants(SCALE_MAX, &mins, &mut min_codes, &group_weights);

    let mut block = BlockQ2K::zeroed();
    block.d = f16::from_f32(d).to_bits();
    block.dmin = f16::from_f32(dmin).to_bits();
    for ((packed, &scale), &min) in block.scales.iter_mut().zip(&scale_codes).zip(&min_codes) {
        *packed = scale | (min << 4);
    }

    requantize(x, &mut block, &mut codes);
    block.qs = pack_2bit_planes(&codes);
    block
}

/// Recomputes the codes from the stored f16 scales and 4-bit group scales and mins.
///
/// Groups whose decoded scale is 0 keep the codes of the group fit, as in ggml.
fn requantize(x: &[f32], block: &mut BlockQ2K, codes: &mut [u8; QK_K]) {
    let d = f16::from_bits(block.d).to_f32();
    let dmin = f16::from_bits(block.dmin).to_f32();
    let groups = x.chunks_exact(GROUP).zip(codes.chunks_exact_mut(GROUP));
    for ((group, group_codes), &packed) in groups.zip(&block.scales) {
        let group_d = d * (packed & 0xF) as f32;
        if group_d == 0.0 {
            continue;
        }
        let group_min = dmin * (packed >> 4) as f32;
        for (code, &v) in group_codes.iter_mut().zip(group) {
            *code = nearest_int((v + group_min) / group_d).clamp(0, CODE_MAX) as u8;
        }
    }
}

/// Packs 256 two-bit codes into bit planes: byte `32 h + l` contains the codes of elements
/// `128 h + l`, `+ 32`, `+ 64` and `+ 96` in bit pairs 0-1, 2-3, 4-5 and 6-7.
///
/// Shared with Q3_K, which stores the low two bits of its codes this way. Codes must be
/// below 4.
pub(crate) fn pack_2bit_planes(codes: &[u8; QK_K]) -> [u8; QK_K / 4] {
    let mut qs = [0u8; QK_K / 4];
    for (qs_half, codes_half) in qs.chunks_exact_mut(32).zip(codes.chunks_exact(128)) {
        for (l, byte) in qs_half.iter_mut().enumerate() {
            *byte = codes_half[l]
                | (codes_half[l + 32] << 2)
                | (codes_half[l + 64] << 4)
                | (codes_half[l + 96] << 6);
        }
    }
    qs
}

/// Reads the 2-bit code of element `e` (0..256) from bit planes packed by [`pack_2bit_planes`].
#[inline]
pub(crate) fn unpack_2bit_plane(qs: &[u8; QK_K / 4], e: usize) -> u8 {
    let byte = qs[32 * (e / 128) + e % 32];
    let shift = 2 * ((e % 128) / 32);
    (byte >> shift) & 3
}

/// Dequantizes one super-block into 256 floats (ggml's `dequantize_row_q2_K`).
fn dequantize_block(block: &BlockQ2K, y: &mut [f32]) {
    let d = f16::from_bits(block.d).to_f32();
    let dmin = f16::from_bits(block.dmin).to_f32();
    for (j, group) in y.chunks_exact_mut(GROUP).enumerate() {
        let packed = block.scales[j];
        let group_d = d * (packed & 0xF) as f32;
        let group_min = dmin * (packed >> 4) as f32;
        for (l, value) in group.iter_mut().enumerate() {
            let q = unpack_2bit_plane(&block.qs, GROUP * j + l);
            *value = group_d * q as f32 - group_min;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_roundtrip() {
        let codes: [u8; QK_K] = std::array::from_fn(|e| ((e * 7 + e / 3) % 4) as u8);
        let qs = pack_2bit_planes(&codes);
        for (e, &code) in codes.iter().enumerate() {
            assert_eq!(unpack_2bit_plane(&qs, e), code, "element {e}");
        }
    }

    #[test]
    fn zero_block_stays_zero() {
        let x = [0.0f32; QK_K];
        let mut block = [BlockQ2K::zeroed()];
        BlockQ2K::quantize_row(&x, None, &mut block);
        let mut y = [1.0f32; QK_K];
        BlockQ2K::dequantize_row(&block, &mut y);
        assert!(y.iter().all(|&v| v == 0.0), "{y:?}");
    }
}
