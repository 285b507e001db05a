//! Decoders for the packed sub-block scales that several kernels share.

use crate::blocks::{BlockIQ4XS, K_SCALE_SIZE};

/// Bias of the 6-bit scales of Q3_K and IQ4_XS: stored 0..=63 means -32..=31.
const SCALE6_BIAS: i32 = 32;

/// Decodes the 16 six-bit Q3_K scales, bias removed.
///
/// The low 4 bits of scale `j` are in byte `j % 8` (low nibble for `j < 8`, high nibble
/// otherwise); its top 2 bits are in byte `8 + j % 4` at bit `2 * (j / 4)`.
#[inline]
pub(crate) fn q3_k_scales(packed: &[u8; 12]) -> [i32; 16] {
    let mut scales = [0i32; 16];
    for (j, scale) in scales.iter_mut().enumerate() {
        let low = (packed[j % 8] >> (4 * (j / 8))) & 0x0F;
        let high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        *scale = i32::from(low | (high << 4)) - SCALE6_BIAS;
    }
    scales
}

/// Decodes the 8 six-bit scales and 8 six-bit mins of Q4_K and Q5_K (ggml `get_scale_min_k4`).
///
/// Sub-blocks 0..4 keep both values whole in the low 6 bits of bytes `j` and `j + 4`;
/// sub-blocks 4..8 keep their low 4 bits in byte `j + 4` and borrow the spare top 2 bits of
/// bytes `j - 4` and `j`.
#[inline]
pub(crate) fn q4_k_scales_mins(packed: &[u8; K_SCALE_SIZE]) -> ([i32; 8], [i32; 8]) {
    let mut scales = [0i32; 8];
    let mut mins = [0i32; 8];
    for j in 0..8 {
        let (scale, min) = if j < 4 {
            (packed[j] & 63, packed[j + 4] & 63)
        } else {
            (
                (packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4),
                (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4),
            )
        };
        scales[j] = i32::from(scale);
        mins[j] = i32::from(min);
    }
    (scales, mins)
}

/// Decodes the six-bit scale of 32-element group `ib` of an IQ4_XS block, bias removed.
#[inline]
pub(crate) fn iq4_xs_scale(block: &BlockIQ4XS, ib: usize) -> i32 {
    let low = (block.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
    let high = ((block.scales_h >> (2 * ib)) & 3) as u8;
    i32::from(low | (high << 4)) - SCALE6_BIAS
}
