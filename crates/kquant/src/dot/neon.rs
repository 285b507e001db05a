//! Kernels for aarch64 with NEON.
//!
//! Byte products use the baseline widening multiply (`smull`, 8 x i8 -> 8 x i16) and
//! pairwise widening adds into i32 lanes, so the kernels need no extension beyond NEON.
//! Types without a kernel here (Q2_K, Q3_K, Q5_K, IQ4_XS, F32, F16, BF16) use the scalar
//! definitions.
//!
//! NOTE: these kernels compile for aarch64 but have not been run on an ARM machine yet. The
//! crate's dot tests cover them on any aarch64 runner.

use std::arch::aarch64::*;

use half::f16;

use crate::blocks::{
    BlockIQ4NL, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8K,
    BlockQ8_0, BlockQ8_1, KVALUES_IQ4NL, QK_K,
};
use crate::dot::unpack::q4_k_scales_mins;

#[inline]
fn fp16(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// Returns the i32 lane sums of `w * a` over 16 signed bytes, added to `acc`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn dot16(acc: int32x4_t, w: int8x16_t, a: int8x16_t) -> int32x4_t {
    let low = vmull_s8(vget_low_s8(w), vget_low_s8(a));
    let high = vmull_high_s8(w, a);
    vpadalq_s16(vpadalq_s16(acc, low), high)
}

/// Returns the sum of `w * a` over a 32-element block as i32 lanes.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn dot32(w: [int8x16_t; 2], a: *const i8) -> int32x4_t {
    let acc = dot16(vdupq_n_s32(0), w[0], vld1q_s8(a));
    dot16(acc, w[1], vld1q_s8(a.add(16)))
}

/// Splits 16 bytes of nibbles into element order: low nibbles, then high nibbles.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn nibbles(qs: &[u8; 16]) -> [uint8x16_t; 2] {
    let packed = vld1q_u8(qs.as_ptr());
    [vandq_u8(packed, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(packed)]
}

/// Expands the 32 bits of `qh` to bytes: 0xFF where the bit is set.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn bit_masks(qh: [u8; 4]) -> [uint8x16_t; 2] {
    const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let bits = vld1q_u8(BITS.as_ptr());
    let low = vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1]));
    let high = vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3]));
    [vtstq_u8(low, bits), vtstq_u8(high, bits)]
}

#[target_feature(enable = "neon")]
#[inline]
unsafe fn codes_q4_0(w: &BlockQ4_0) -> [int8x16_t; 2] {
    let [low, high] = nibbles(&w.qs);
    let eight = vdupq_n_s8(8);
    [vsubq_s8(vreinterpretq_s8_u8(low), eight), vsubq_s8(vreinterpretq_s8_u8(high), eight)]
}

#[target_feature(enable = "neon")]
#[inline]
unsafe fn codes_q5_0(w: &BlockQ5_0) -> [int8x16_t; 2] {
    // A clear fifth bit means "subtract 16", which is OR-ing 0xF0 into the nibble.
    let [low, high] = nibbles(&w.qs);
    let [mask_low, mask_high] = bit_masks(w.qh);
    let minus = vdupq_n_u8(0xF0);
    [
        vreinterpretq_s8_u8(vorrq_u8(low, vbicq_u8(minus, mask_low))),
        vreinterpretq_s8_u8(vorrq_u8(high, vbicq_u8(minus, mask_high))),
    ]
}

#[target_feature(enable = "neon")]
#[inline]
unsafe fn codes_q8_0(w: &BlockQ8_0) -> [int8x16_t; 2] {
    [vld1q_s8(w.qs.as_ptr()), vld1q_s8(w.qs.as_ptr().add(16))]
}

#[target_feature(enable = "neon")]
#[inline]
unsafe fn codes_iq4_nl(w: &BlockIQ4NL) -> [int8x16_t; 2] {
    let table = vld1q_s8(KVALUES_IQ4NL.as_ptr());
    let [low, high] = nibbles(&w.qs);
    [vqtbl1q_s8(table, low), vqtbl1q_s8(table, high)]
}

#[target_feature(enable = "neon")]
#[inline]
unsafe fn codes_q4_1(w: &BlockQ4_1) -> [int8x16_t; 2] {
    let [low, high] = nibbles(&w.qs);
    [vreinterpretq_s8_u8(low), vreinterpretq_s8_u8(high)]
}

#[target_feature(enable = "neon")]
#[inline]
unsafe fn codes_q5_1(w: &BlockQ5_1) -> [int8x16_t; 2] {
    let [low, high] = nibbles(&w.qs);
    let [mask_low, mask_high] = bit_masks(w.qh);
    let sixteen = vdupq_n_u8(0x10);
    [
        vreinterpretq_s8_u8(vorrq_u8(low, vandq_u8(mask_low, sixteen))),
        vreinterpretq_s8_u8(vorrq_u8(high, vandq_u8(mask_high, sixteen))),
    ]
}

/// Generates the kernel of a legacy type paired with Q8_0.
macro_rules! q8_0_kernel {
    ($dot:ident, $weight:ty, $codes:ident) => {
        #[target_feature(enable = "neon")]
        pub(crate) unsafe fn $dot(w: &[$weight], a: &[BlockQ8_0]) -> f32 {
            let mut acc = vdupq_n_f32(0.0);
            for (w, a) in w.iter().zip(a) {
                let sums = dot32($codes(w), a.qs.as_ptr());
                acc = vfmaq_n_f32(acc, vcvtq_f32_s32(sums), fp16(w.d) * fp16(a.d));
            }
            vaddvq_f32(acc)
        }
    };
}

q8_0_kernel!(q4_0_q8_0, BlockQ4_0, codes_q4_0);
q8_0_kernel!(q5_0_q8_0, BlockQ5_0, codes_q5_0);
q8_0_kernel!(q8_0_q8_0, BlockQ8_0, codes_q8_0);
q8_0_kernel!(iq4_nl_q8_0, BlockIQ4NL, codes_iq4_nl);

/// Generates the kernel of a legacy type with a min, paired with Q8_1.
macro_rules! q8_1_kernel {
    ($dot:ident, $weight:ty, $codes:ident) => {
        #[target_feature(enable = "neon")]
        pub(crate) unsafe fn $dot(w: &[$weight], a: &[BlockQ8_1]) -> f32 {
            let mut acc = vdupq_n_f32(0.0);
            let mut min_sum = 0.0f32;
            for (w, a) in w.iter().zip(a) {
                let sums = dot32($codes(w), a.qs.as_ptr());
                acc = vfmaq_n_f32(acc, vcvtq_f32_s32(sums), fp16(w.d) * fp16(a.d));
                min_sum += fp16(w.m) * fp16(a.s);
            }
            vaddvq_f32(acc) + min_sum
        }
    };
}

q8_1_kernel!(q4_1_q8_1, BlockQ4_1, codes_q4_1);
q8_1_kernel!(q5_1_q8_1, BlockQ5_1, codes_q5_1);

#[target_feature(enable = "neon")]
pub(crate) unsafe fn q4_k_q8_k(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in w.iter().zip(a) {
        let (scales, mins) = q4_k_scales_mins(&w.scales);
        let min_sum: i32 = (0..8)
            .map(|j| mins[j] * (i32::from(a.bsums[2 * j]) + i32::from(a.bsums[2 * j + 1])))
            .sum();

        let mut isum = 0i32;
        for g in 0..QK_K / 64 {
            let packed = [vld1q_u8(w.qs[32 * g..].as_ptr()), vld1q_u8(w.qs[32 * g + 16..].as_ptr())];
            let mask = vdupq_n_u8(0x0F);
            let low = [
                vreinterpretq_s8_u8(vandq_u8(packed[0], mask)),
                vreinterpretq_s8_u8(vandq_u8(packed[1], mask)),
            ];
            let high = [
                vreinterpretq_s8_u8(vshrq_n_u8::<4>(packed[0])),
                vreinterpretq_s8_u8(vshrq_n_u8::<4>(packed[1])),
            ];
            let sum_low = vaddvq_s32(dot32(low, a.qs[64 * g..].as_ptr()));
            let sum_high = vaddvq_s32(dot32(high, a.qs[64 * g + 32..].as_ptr()));
            isum += scales[2 * g] * sum_low + scales[2 * g + 1] * sum_high;
        }

        sum += a.d * fp16(w.d) * isum as f32 - a.d * fp16(w.dmin) * min_sum as f32;
    }
    sum
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn q6_k_q8_k(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mask = vdupq_n_u8(0x0F);
    let two_bits = vdupq_n_u8(3);
    let offset = vdupq_n_s8(32);

    let mut sum = 0.0f32;
    for (w, a) in w.iter().zip(a) {
        let mut isum = 0i32;
        for h in 0..2 {
            // 16 bytes at a time: element 128 h + 32 k + 16 s + l for half-chunk s.
            for s in 0..2 {
                let ql_a = vld1q_u8(w.ql[64 * h + 16 * s..].as_ptr());
                let ql_b = vld1q_u8(w.ql[64 * h + 32 + 16 * s..].as_ptr());
                let qh = vld1q_u8(w.qh[32 * h + 16 * s..].as_ptr());

                let lows = [
                    vandq_u8(ql_a, mask),
                    vandq_u8(ql_b, mask),
                    vshrq_n_u8::<4>(ql_a),
                    vshrq_n_u8::<4>(ql_b),
                ];
                let highs = [
                    vshlq_n_u8::<4>(vandq_u8(qh, two_bits)),
                    vshlq_n_u8::<4>(vandq_u8(vshrq_n_u8::<2>(qh), two_bits)),
                    vshlq_n_u8::<4>(vandq_u8(vshrq_n_u8::<4>(qh), two_bits)),
                    vshlq_n_u8::<4>(vshrq_n_u8::<6>(qh)),
                ];

                for k in 0..4 {
                    let codes = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lows[k], highs[k])), offset);
                    let start = 128 * h + 32 * k + 16 * s;
                    let sums = dot16(vdupq_n_s32(0), codes, vld1q_s8(a.qs[start..].as_ptr()));
                    isum += i32::from(w.scales[start / 16]) * vaddvq_s32(sums);
                }
            }
        }
        sum += a.d * fp16(w.d) * isum as f32;
    }
    sum
}
