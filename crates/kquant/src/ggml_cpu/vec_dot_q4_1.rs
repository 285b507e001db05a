//! `ggml_vec_dot_q4_1_q8_1` in the float order of ggml's x86-64 build, and the kernel it
//! shares with Q5_1.
//!
//! A Q4_1 or Q5_1 weight is `d * q + m` with unsigned codes `q`, and a Q8_1 block stores
//! `s = d_a * sum(qs)`, so one block contributes `d * d_a * sum(q * qs) + m * s`. ggml's
//! AVX2 branch (the one compiled in llama.cpp b11312 with AVX-512; `vpdpbusd` forms the
//! integer sums there, with the same result) keeps the two terms apart:
//!
//! - `sum(q * qs)` as eight i32 lanes of four elements each, added to an eight-lane f32
//!   accumulator with one fused multiply-add by `d * d_a` (a rounded f32 product);
//! - `m * s` in one f32 scalar, `min_sum = fma(m, s, min_sum)`: the C source reads
//!   `summs += m * s` and GCC contracts it (the compiled kernel has `vfmadd231ss`). The
//!   product of two f16 values has at most 22 significant bits and is exact in f32, so
//!   the unfused form would give the same bits; the fused one is kept to mirror ggml;
//! - at the end, the lanes summed as `hsum_float_8`, plus `min_sum`.

use crate::blocks::{BlockQ4_1, BlockQ8_1, QK};
use crate::dot::scalar::fp16;
use crate::ggml_cpu::vec_dot_lanes::{fmadd_lanes, hsum_float_8, lane_of, Lanes, LANES};

/// A weight block with unsigned codes, a scale and a min, paired with Q8_1 activations.
pub(crate) trait MinBlock {
    /// Returns the f16 bits of the scale `d`.
    fn d(&self) -> u16;

    /// Returns the f16 bits of the min `m`.
    fn m(&self) -> u16;

    /// Returns the 32 unsigned codes in element order.
    fn codes(&self) -> [u8; QK];
}

impl MinBlock for BlockQ4_1 {
    fn d(&self) -> u16 {
        self.d
    }

    fn m(&self) -> u16 {
        self.m
    }

    fn codes(&self) -> [u8; QK] {
        // Elements 0..16 are the low nibbles of qs, elements 16..32 the high nibbles.
        std::array::from_fn(|e| (self.qs[e % (QK / 2)] >> (4 * (e / (QK / 2)))) & 0x0F)
    }
}

/// Returns the dot product of a Q4_1 or Q5_1 row with a Q8_1 row in ggml's float order.
///
/// The caller has checked that both rows have the same number of blocks.
pub(crate) fn min_block_dot<W: MinBlock>(w: &[W], a: &[BlockQ8_1]) -> f32 {
    let mut acc: Lanes = [0.0; LANES];
    let mut min_sum = 0.0f32;

    for (w, a) in w.iter().zip(a) {
        let codes = w.codes();
        let mut sums = [0i32; LANES];
        for (e, (&code, &q8)) in codes.iter().zip(&a.qs).enumerate() {
            sums[lane_of(e)] += i32::from(code) * i32::from(q8);
        }
        fmadd_lanes(&mut acc, fp16(w.d()) * fp16(a.d), &sums);

        min_sum = fp16(w.m()).mul_add(fp16(a.s), min_sum);
    }

    hsum_float_8(&acc) + min_sum
}

/// Returns the dot product of a Q4_1 row with a Q8_1 row in ggml's float order.
pub(crate) fn q4_1_q8_1(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
    min_block_dot(w, a)
}

/// AVX2 versions, bit-identical to the scalar ones above.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    use crate::blocks::{BlockQ4_1, BlockQ8_1};
    use crate::ggml_cpu::vec_dot_lanes::x86::{
        fmadd_sums, fp16, hsum_float_8, load_i8x32, mul_sum_u8_i8, nibbles,
    };

    /// A weight block whose 32 unsigned codes decode into one register.
    pub(crate) trait MinBlockSimd: super::MinBlock {
        /// Returns the 32 codes in element order, one per byte.
        ///
        /// # Safety
        ///
        /// The CPU supports AVX2, FMA and F16C.
        unsafe fn codes_avx2(&self) -> __m256i;
    }

    impl MinBlockSimd for BlockQ4_1 {
        #[target_feature(enable = "avx2,fma,f16c")]
        #[inline]
        unsafe fn codes_avx2(&self) -> __m256i {
            nibbles(&self.qs)
        }
    }

    /// Adds one block's `d * d_a * sum(q * qs)` to `acc` and returns it.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn add_block(acc: __m256, codes: __m256i, d_w: f32, a: &BlockQ8_1) -> __m256 {
        let sums = mul_sum_u8_i8(codes, load_i8x32(&a.qs));
        fmadd_sums(acc, d_w * fp16(a.d), sums)
    }

    /// Returns the dot product of a Q4_1 or Q5_1 row with a Q8_1 row.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) fn min_block_dot<W: MinBlockSimd>(w: &[W], a: &[BlockQ8_1]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut min_sum = 0.0f32;

        for (w, a) in w.iter().zip(a) {
            // SAFETY: this function's features include every feature `codes_avx2` needs.
            let codes = unsafe { w.codes_avx2() };
            acc = add_block(acc, codes, fp16(w.d()), a);
            min_sum = fp16(w.m()).mul_add(fp16(a.s), min_sum);
        }

        hsum_float_8(acc) + min_sum
    }

    /// Returns the dot products of one Q4_1 or Q5_1 row with four Q8_1 rows, decoding each
    /// weight block once.
    ///
    /// # Panics
    ///
    /// Panics when an activation row is shorter than the weight row.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) fn min_block_dot_x4<W: MinBlockSimd>(w: &[W], a: [&[BlockQ8_1]; 4]) -> [f32; 4] {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut min_sum = [0.0f32; 4];

        for (i, w) in w.iter().enumerate() {
            // SAFETY: as in `min_block_dot`.
            let codes = unsafe { w.codes_avx2() };
            let d_w = fp16(w.d());
            let m_w = fp16(w.m());
            for k in 0..4 {
                let a = &a[k][i];
                acc[k] = add_block(acc[k], codes, d_w, a);
                min_sum[k] = m_w.mul_add(fp16(a.s), min_sum[k]);
            }
        }

        [
            hsum_float_8(acc[0]) + min_sum[0],
            hsum_float_8(acc[1]) + min_sum[1],
            hsum_float_8(acc[2]) + min_sum[2],
            hsum_float_8(acc[3]) + min_sum[3],
        ]
    }

    /// [`min_block_dot`] for Q4_1.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn q4_1_q8_1(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
        min_block_dot(w, a)
    }

    /// [`min_block_dot_x4`] for Q4_1.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn q4_1_q8_1_x4(w: &[BlockQ4_1], a: [&[BlockQ8_1]; 4]) -> [f32; 4] {
        min_block_dot_x4(w, a)
    }
}
