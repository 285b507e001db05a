//! Portable vec-dot kernels: the readable definition of every product.
//!
//! Each kernel multiplies the integer codes of one weight block with the codes of the
//! matching activation block, sums them as `i32` per sub-block (as ggml does) and only then
//! applies the f16/f32 scales. The SIMD kernels in the sibling modules compute the same
//! integer sums; only the order of the final float additions differs.

use half::{bf16, f16};

use crate::blocks::{
    BlockIQ4NL, BlockIQ4XS, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K,
    BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1, KVALUES_IQ4NL, QK, QK_K,
};
use crate::dot::unpack::{iq4_xs_scale, q3_k_scales, q4_k_scales_mins};

/// Converts f16 bits to f32.
#[inline]
pub(crate) fn fp16(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// Sums `w[j] * a[j]` over one block of signed codes.
#[inline]
fn dot_i8(w: impl Iterator<Item = i32>, a: &[i8]) -> i32 {
    w.zip(a).map(|(w, &a)| w * i32::from(a)).sum()
}

/// Expands the 32 nibbles of a legacy block, element order (low nibbles, then high).
#[inline]
fn nibbles(qs: &[u8; QK / 2]) -> impl Iterator<Item = i32> + '_ {
    let low = qs.iter().map(|&b| i32::from(b & 0x0F));
    let high = qs.iter().map(|&b| i32::from(b >> 4));
    low.chain(high)
}

/// Expands the 32 five-bit codes of a Q5_0 or Q5_1 block, element order.
#[inline]
fn five_bit_codes<'a>(qs: &'a [u8; QK / 2], qh: &[u8; 4]) -> impl Iterator<Item = i32> + 'a {
    let qh = u32::from_le_bytes(*qh);
    nibbles(qs).enumerate().map(move |(j, n)| n | (((qh >> j) & 1) as i32) << 4)
}

pub(crate) fn q4_0_q8_0(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in w.iter().zip(a) {
        // Codes are stored with a +8 offset.
        let sumi = dot_i8(nibbles(&w.qs).map(|n| n - 8), &a.qs);
        sum += sumi as f32 * (fp16(w.d) * fp16(a.d));
    }
    sum
}

pub(crate) fn q4_1_q8_1(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in w.iter().zip(a) {
        // x = n * d + m, so the min contributes m * sum(a) = m * s.
        let sumi = dot_i8(nibbles(&w.qs), &a.qs);
        sum += sumi as f32 * (fp16(w.d) * fp16(a.d)) + fp16(w.m) * fp16(a.s);
    }
    sum
}

pub(crate) fn q5_0_q8_0(w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in w.iter().zip(a) {
        let sumi = dot_i8(five_bit_codes(&w.qs, &w.qh).map(|n| n - 16), &a.qs);
        sum += sumi as f32 * (fp16(w.d) * fp16(a.d));
    }
    sum
}

pub(crate) fn q5_1_q8_1(w: &[BlockQ5_1], a: &[BlockQ8_1]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in w.iter().zip(a) {
        let sumi = dot_i8(five_bit_codes(&w.qs, &w.qh), &a.qs);
        sum += sumi as f32 * (fp16(w.d) * fp16(a.d)) + fp16(w.m) * fp16(a.s);
    }
    sum
}

pub(crate) fn q8_0_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in w.iter().zip(a) {
        let sumi = dot_i8(w.qs.iter().map(|&q| i32::from(q)), &a.qs);
        sum += sumi as f32 * (fp16(w.d) * fp16(a.d));
    }
    sum
}

pub(crate) fn iq4_nl_q8_0(w: &[BlockIQ4NL], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in w.iter().zip(a) {
        let codes = nibbles(&w.qs).map(|n| i32::from(KVALUES_IQ4NL[n as usize]));
        let sumi = dot_i8(codes, &a.qs);
        sum += sumi as f32 * (fp16(w.d) * fp16(a.d));
    }
    sum
}

/// Elements per scale group of Q2_K, Q3_K and Q6_K.
const GROUP16: usize = 16;

/// Sums `codes[e] * a.qs[e]` per group of 16 elements of a super-block.
#[inline]
fn group16_sums(codes: &[i8; QK_K], a: &BlockQ8K) -> [i32; QK_K / GROUP16] {
    let mut sums = [0i32; QK_K / GROUP16];
    for (g, sum) in sums.iter_mut().enumerate() {
        let range = g * GROUP16..(g + 1) * GROUP16;
        *sum = dot_i8(codes[range.clone()].iter().map(|&q| i32::from(q)), &a.qs[range]);
    }
    sums
}

/// Unpacks the 2-bit planes of Q2_K and Q3_K: byte `32 h + l` holds elements
/// `128 h + 32 k + l` for k in 0..4, at bits `2 k`.
#[inline]
fn two_bit_planes(qs: &[u8; QK_K / 4]) -> [i8; QK_K] {
    let mut codes = [0i8; QK_K];
    for (e, code) in codes.iter_mut().enumerate() {
        let (h, k, l) = (e / 128, (e % 128) / 32, e % 32);
        *code = ((qs[32 * h + l] >> (2 * k)) & 3) as i8;
    }
    codes
}

pub(crate) fn q2_k_q8_k(w: &[BlockQ2K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in w.iter().zip(a) {
        let codes = two_bit_planes(&w.qs);
        let sums = group16_sums(&codes, a);

        // Low nibble: group scale; high nibble: group min, applied through bsums.
        let mut isum = 0i32;
        let mut summs = 0i32;
        for (g, &packed) in w.scales.iter().enumerate() {
            isum += i32::from(packed & 0x0F) * sums[g];
            summs += i32::from(packed >> 4) * i32::from(a.bsums[g]);
        }

        let dall = a.d * fp16(w.d);
        let dmin = a.d * fp16(w.dmin);
        sum += dall * isum as f32 - dmin * summs as f32;
    }
    sum
}

pub(crate) fn q3_k_q8_k(w: &[BlockQ3K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in w.iter().zip(a) {
        // A clear high bit means the code carries a -4 offset.
        let mut codes = two_bit_planes(&w.qs);
        for (e, code) in codes.iter_mut().enumerate() {
            let high = (w.hmask[e % 32] >> (e / 32)) & 1;
            *code -= if high == 0 { 4 } else { 0 };
        }

        let sums = group16_sums(&codes, a);
        let scales = q3_k_scales(&w.scales);
        let isum: i32 = scales.iter().zip(&sums).map(|(&s, &g)| s * g).sum();

        sum += a.d * fp16(w.d) * isum as f32;
    }
    sum
}

/// Elements per sub-block of Q4_K, Q5_K and IQ4_XS.
const GROUP32: usize = 32;

pub(crate) fn q4_k_q8_k(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in w.iter().zip(a) {
        let (scales, mins) = q4_k_scales_mins(&w.scales);

        let mut isum = 0i32;
        for g in 0..QK_K / 64 {
            let bytes = &w.qs[32 * g..32 * g + 32];
            let low = bytes.iter().map(|&b| i32::from(b & 0x0F));
            let high = bytes.iter().map(|&b| i32::from(b >> 4));
            let a_low = &a.qs[64 * g..64 * g + GROUP32];
            let a_high = &a.qs[64 * g + GROUP32..64 * g + 64];
            isum += scales[2 * g] * dot_i8(low, a_low) + scales[2 * g + 1] * dot_i8(high, a_high);
        }

        let summs: i32 = (0..QK_K / GROUP32)
            .map(|j| mins[j] * (i32::from(a.bsums[2 * j]) + i32::from(a.bsums[2 * j + 1])))
            .sum();

        sum += a.d * fp16(w.d) * isum as f32 - a.d * fp16(w.dmin) * summs as f32;
    }
    sum
}

pub(crate) fn q5_k_q8_k(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in w.iter().zip(a) {
        let (scales, mins) = q4_k_scales_mins(&w.scales);

        let mut isum = 0i32;
        for g in 0..QK_K / 64 {
            let bytes = &w.qs[32 * g..32 * g + 32];
            let low = bytes.iter().zip(&w.qh).map(|(&b, &h)| {
                i32::from(b & 0x0F) | (i32::from((h >> (2 * g)) & 1) << 4)
            });
            let high = bytes.iter().zip(&w.qh).map(|(&b, &h)| {
                i32::from(b >> 4) | (i32::from((h >> (2 * g + 1)) & 1) << 4)
            });
            let a_low = &a.qs[64 * g..64 * g + GROUP32];
            let a_high = &a.qs[64 * g + GROUP32..64 * g + 64];
            isum += scales[2 * g] * dot_i8(low, a_low) + scales[2 * g + 1] * dot_i8(high, a_high);
        }

        let summs: i32 = (0..QK_K / GROUP32)
            .map(|j| mins[j] * (i32::from(a.bsums[2 * j]) + i32::from(a.bsums[2 * j + 1])))
            .sum();

        sum += a.d * fp16(w.d) * isum as f32 - a.d * fp16(w.dmin) * summs as f32;
    }
    sum
}

pub(crate) fn q6_k_q8_k(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in w.iter().zip(a) {
        // Element 128 h + 32 k + l: low nibble from ql (k odd -> byte +32, k >= 2 -> high
        // nibble), high two bits from qh at bits 2 k; codes carry a +32 offset.
        let mut codes = [0i8; QK_K];
        for (e, code) in codes.iter_mut().enumerate() {
            let (h, k, l) = (e / 128, (e % 128) / 32, e % 32);
            let ql = w.ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2));
            let qh = (w.qh[32 * h + l] >> (2 * k)) & 3;
            *code = ((ql & 0x0F) | (qh << 4)) as i8 - 32;
        }

        let sums = group16_sums(&codes, a);
        let isum: i32 = w.scales.iter().zip(&sums).map(|(&s, &g)| i32::from(s) * g).sum();

        sum += a.d * fp16(w.d) * isum as f32;
    }
    sum
}

pub(crate) fn iq4_xs_q8_k(w: &[BlockIQ4XS], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in w.iter().zip(a) {
        let mut isum = 0i32;
        for ib in 0..QK_K / GROUP32 {
            let bytes = &w.qs[16 * ib..16 * ib + 16];
            let low = bytes.iter().map(|&b| i32::from(KVALUES_IQ4NL[usize::from(b & 0x0F)]));
            let high = bytes.iter().map(|&b| i32::from(KVALUES_IQ4NL[usize::from(b >> 4)]));
            let a_group = &a.qs[GROUP32 * ib..GROUP32 * (ib + 1)];
            let sumi = dot_i8(low, &a_group[..16]) + dot_i8(high, &a_group[16..]);
            isum += iq4_xs_scale(w, ib) * sumi;
        }

        sum += a.d * fp16(w.d) * isum as f32;
    }
    sum
}

pub(crate) fn f32_f32(w: &[f32], a: &[f32]) -> f32 {
    w.iter().zip(a).map(|(w, a)| w * a).sum()
}

pub(crate) fn f16_f16(w: &[f16], a: &[f16]) -> f32 {
    w.iter().zip(a).map(|(w, a)| w.to_f32() * a.to_f32()).sum()
}

pub(crate) fn bf16_bf16(w: &[bf16], a: &[bf16]) -> f32 {
    w.iter().zip(a).map(|(w, a)| w.to_f32() * a.to_f32()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_bit_codes_take_high_bit_from_qh() {
        let qs = [0x21u8; QK / 2];
        let qh = 0x8000_0001u32.to_le_bytes();

        let codes: Vec<i32> = five_bit_codes(&qs, &qh).collect();

        assert_eq!(codes[0], 1 | 16);
        assert_eq!(codes[1], 1);
        assert_eq!(codes[16], 2);
        assert_eq!(codes[31], 2 | 16);
    }
}
