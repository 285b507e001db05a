//! Q4_K: 4-bit codes in 8 groups of 32 with 6-bit group scales and mins, 4.5 bits per weight.
//!
//! A weight decodes as `d * sc * q - dmin * m`, where `q` is its 4-bit code, `sc` and `m` are
//! its group's 6-bit scale and min, and `d`, `dmin` are the super-block's f16 scales. Q5_K
//! shares the group layout, the scale packing and the search for scales, so this module
//! also contains the pieces both formats use.

use bytemuck::Zeroable;
use gguf_format::GgmlType;
use half::f16;

use crate::blocks::{BlockQ4K, K_SCALE_SIZE, QK_K};
use crate::solvers::{
    fit_consecutive_groups, make_qp_quants, nearest_int, AffineFit, ScaleSearch, IMATRIX_SEARCH,
};
use crate::traits::QuantBlock;

/// Weights per group (one 6-bit scale and one 6-bit min each), in Q4_K and Q5_K.
pub(crate) const GROUP: usize = 32;

/// Groups per super-block, in Q4_K and Q5_K.
pub(crate) const GROUPS: usize = QK_K / GROUP;

/// Largest 6-bit group scale or min.
pub(crate) const SCALE_MAX: i32 = 63;

/// Largest 4-bit code.
const CODE_MAX: i32 = 15;

/// Grid of `quantize_row_q4_K_ref`: 21 steps from `15 - 1.0` to `15 + 1.0`, squared error.
const REF_SEARCH: ScaleSearch = ScaleSearch {
    rmin: -1.0,
    rdelta: 0.1,
    nstep: 20,
    use_mad: false,
};

impl QuantBlock for BlockQ4K {
    const TYPE: GgmlType = GgmlType::Q4_K;
    const BLOCK_SIZE: usize = QK_K;

    /// Quantizes as `quantize_row_q4_K_ref` without an imatrix, else as
    /// `quantize_row_q4_K_impl`.
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

/// Super-block scales, packed group scales and mins, and codes chosen for a Q4_K or Q5_K
/// super-block, before the codes are packed.
pub(crate) struct ScaledCodes {
    /// Super-block scale of the group scales, f16 bits.
    pub d: u16,
    /// Super-block scale of the group mins, f16 bits.
    pub dmin: u16,
    /// Group scales and mins, packed as [`BlockQ4K::scales`].
    pub scales: [u8; K_SCALE_SIZE],
    /// One code in `0..=code_max` per weight.
    pub codes: [u8; QK_K],
}

/// Chooses the scales and codes of one Q4_K or Q5_K super-block with codes in `0..=code_max`.
///
/// Without `qw` it follows `quantize_row_q{4,5}_K_ref` with `ref_search`: group weights
/// `sqrt(mean x^2 of the group) + |x|`, and group scales and mins mapped linearly to 6 bits.
/// With `qw` it follows `quantize_row_q{4,5}_K_impl`: weights `qw * sqrt(sigma2 + x^2)`
/// (`sigma2` twice the mean square of the super-block), and group scales and mins quantized
/// by `make_qp_quants`. `clamp_imatrix_scales` applies the `min(63, ...)` that only the Q5_K
/// imatrix path has. Either way the codes are then recomputed from the stored scales.
pub(crate) fn choose_scales_and_codes(
    x: &[f32],
    qw: Option<&[f32]>,
    code_max: i32,
    ref_search: ScaleSearch,
    clamp_imatrix_scales: bool,
) -> ScaledCodes {
    let mut result = ScaledCodes {
        d: 0,
        dmin: 0,
        scales: [0; K_SCALE_SIZE],
        codes: [0; QK_K],
    };
    match qw {
        None => fit_ref(x, code_max, ref_search, &mut result),
        Some(qw) => fit_imatrix(x, qw, code_max, clamp_imatrix_scales, &mut result),
    }
    requantize(x, code_max, &mut result);
    result
}

/// Fits the groups and the 6-bit scales as the `_ref` quantizers do.
fn fit_ref(x: &[f32], code_max: i32, search: ScaleSearch, result: &mut ScaledCodes) {
    let mut scales = [0.0f32; GROUPS];
    let mut mins = [0.0f32; GROUPS];

    // Weight each element by the group's RMS plus its own magnitude, then fit all groups
    // at once (ggml's make_qkx2_quants per group).
    let mut weights = [0.0f32; QK_K];
    for (group, group_weights) in x.chunks_exact(GROUP).zip(weights.chunks_exact_mut(GROUP)) {
        let mut sum_x2 = 0.0f32;
        for &v in group {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / GROUP as f32).sqrt();
        for (w, &v) in group_weights.iter_mut().zip(group) {
            *w = av_x + v.abs();
        }
    }
    let fits: [AffineFit; GROUPS] =
        fit_consecutive_groups::<GROUP, GROUPS>(code_max, x, &weights, &mut result.codes, search);

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

    // Map the group scales and mins linearly to 6 bits.
    let scale_max = SCALE_MAX as f32;
    let inv_scale = if max_scale > 0.0 {
        scale_max / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 {
        scale_max / max_min
    } else {
        0.0
    };
    for j in 0..GROUPS {
        // ggml narrows to uint8_t before taking the minimum.
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(SCALE_MAX as u8);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(SCALE_MAX as u8);
        pack_scale_min(&mut result.scales, j, ls, lm);
    }
    result.d = f16::from_f32(max_scale / scale_max).to_bits();
    result.dmin = f16::from_f32(max_min / scale_max).to_bits();
}

/// Fits the groups and the 6-bit scales as the imatrix (`_impl`) quantizers do.
fn fit_imatrix(x: &[f32], qw: &[f32], code_max: i32, clamp_scales: bool, result: &mut ScaledCodes) {
    let mut scales = [0.0f32; GROUPS];
    let mut mins = [0.0f32; GROUPS];
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

    // Fit all groups at once (ggml's make_qkx3_quants per group).
    let fits: [AffineFit; GROUPS] = fit_consecutive_groups::<GROUP, GROUPS>(
        code_max,
        x,
        &weights,
        &mut result.codes,
        IMATRIX_SEARCH,
    );
    for (j, fit) in fits.iter().enumerate() {
        scales[j] = fit.scale;
        mins[j] = fit.min;
    }

    // Quantize the group scales and mins to 6 bits, weighted by each group's total weight.
    let mut scale_codes = [0u8; GROUPS];
    let mut min_codes = [0u8; GROUPS];
    let d = make_qp_quants(SCALE_MAX, &scales, &mut scale_codes, &group_weights);
    let dmin = make_qp_quants(SCALE_MAX, &mins, &mut min_codes, &group_weights);
    for j in 0..GROUPS {
        let (mut ls, mut lm) = (scale_codes[j], min_codes[j]);
        if clamp_scales {
            ls = ls.min(SCALE_MAX as u8);
            lm = lm.min(SCALE_MAX as u8);
        }
        pack_scale_min(&mut result.scales, j, ls, lm);
    }
    result.d = f16::from_f32(d).to_bits();
    result.dmin = f16::from_f32(dmin).to_bits();
}

/// Recomputes the codes from the stored f16 scales and 6-bit group scales and mins.
///
/// Groups whose decoded scale is 0 keep the codes of the group fit, as in ggml.
fn requantize(x: &[f32], code_max: i32, result: &mut ScaledCodes) {
    let d = f16::from_bits(result.d).to_f32();
    let dmin = f16::from_bits(result.dmin).to_f32();
    let groups = x
        .chunks_exact(GROUP)
        .zip(result.codes.chunks_exact_mut(GROUP));
    for (j, (group, group_codes)) in groups.enumerate() {
        let (sc, m) = get_scale_min_k4(&result.scales, j);
        let group_d = d * sc as f32;
        if group_d == 0.0 {
            continue;
        }
        let group_min = dmin * m as f32;
        for (code, &v) in group_codes.iter_mut().zip(group) {
            *code = nearest_int((v + group_min) / group_d).clamp(0, code_max) as u8;
        }
    }
}

/// Stores the 6-bit scale `ls` and min `lm` of group `j` (0..8) into the 12 packed bytes.
///
/// Groups 0..4 keep their scale in byte `j` and min in byte `j + 4`. Groups 4..8 keep the low
/// nibbles in byte `j + 4` and their top two bits in bits 6-7 of bytes `j - 4` (scale) and
/// `j` (min). Groups must be stored in order 0..8, starting from zeroed bytes.
pub(crate) fn pack_scale_min(packed: &mut [u8; K_SCALE_SIZE], j: usize, ls: u8, lm: u8) {
    if j < 4 {
        packed[j] = ls;
        packed[j + 4] = lm;
    } else {
        packed[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
        packed[j - 4] |= (ls >> 4) << 6;
        packed[j] |= (lm >> 4) << 6;
    }
}

/// Reads the 6-bit scale and min of group `j` (0..8) (ggml's `get_scale_min_k4`).
#[inline]
pub(crate) fn get_scale_min_k4(packed: &[u8; K_SCALE_SIZE], j: usize) -> (u8, u8) {
    if j < 4 {
        (packed[j] & 63, packed[j + 4] & 63)
    } else {
        let scale = (packed[j + 4] & 0xF) | ((packed[j - 4] >> 6) << 4);
        let min = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
        (scale, min)
    }
}

/// Quantizes one super-block of 256 weights.
fn quantize_block(x: &[f32], qw: Option<&[f32]>) -> BlockQ4K {
    let chosen = choose_scales_and_codes(x, qw, CODE_MAX, REF_SEARCH, false);
    let mut block = BlockQ4K::zeroed();
    block.d = chosen.d;
    block.dmin = chosen.dmin;
    block.scales = chosen.scales;

    // Byte 32 g + l: low nibble element 64 g + l, high nibble element 64 g + 32 + l.
    for (qs, codes) in block
        .qs
        .chunks_exact_mut(32)
        .zip(chosen.codes.chunks_exact(64))
    {
        for (l, byte) in qs.iter_mut().enumerate() {
            *byte = codes[l] | (codes[l + 32] << 4);
        }
    }
    block
}

/// Dequantizes one super-block into 256 floats (ggml's `dequantize_row_q4_K`).
fn dequantize_block(block: &BlockQ4K, y: &mut [f32]) {
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
        let (y_low, y_high) = y64.split_at_mut(32);
        for ((&byte, low), high) in qs.iter().zip(y_low).zip(y_high) {
            *low = d_low * (byte & 0xF) as f32 - min_low;
            *high = d_high * (byte >> 4) as f32 - min_high;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_min_roundtrip() {
        let mut packed = [0u8; K_SCALE_SIZE];
        let values: [(u8, u8); GROUPS] =
            std::array::from_fn(|j| ((j * 9 + 5) as u8 % 64, (j * 13 + 60) as u8 % 64));
        for (j, &(ls, lm)) in values.iter().enumerate() {
            pack_scale_min(&mut packed, j, ls, lm);
        }
        for (j, &expected) in values.iter().enumerate() {
            assert_eq!(get_scale_min_k4(&packed, j), expected, "group {j}");
        }
    }

    #[test]
    fn zero_block_stays_zero() {
        let x = [0.0f32; QK_K];
        let mut block = [BlockQ4K::zeroed()];
        BlockQ4K::quantize_row(&x, None, &mut block);
        let mut y = [1.0f32; QK_K];
        BlockQ4K::dequantize_row(&block, &mut y);
        assert!(y.iter().all(|&v| v == 0.0), "{y:?}");
    }
}
