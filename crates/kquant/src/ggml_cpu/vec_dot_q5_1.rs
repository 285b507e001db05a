//! `ggml_vec_dot_q5_1_q8_1` in the float order of ggml's x86-64 build.
//!
//! Q5_1 differs from Q4_1 only in its codes: a fifth bit from `qh` (bit `e` for element
//! `e`) on top of the nibble. llama.cpp b11312 compiles both kernels to the same float
//! steps (see [`super::vec_dot_q4_1`]): per block one fused multiply-add of eight i32 lane
//! sums by `d * d_a`, the min term `fma(m, s, min_sum)` in a scalar, and `hsum_float_8`
//! plus `min_sum` at the end.

use crate::blocks::{BlockQ5_1, BlockQ8_1, QK};
use crate::ggml_cpu::vec_dot_q4_1::{min_block_dot, MinBlock};

/// Value of the fifth bit of a Q5_1 code.
const HIGH_BIT: u8 = 0x10;

impl MinBlock for BlockQ5_1 {
    fn d(&self) -> u16 {
        self.d
    }

    fn m(&self) -> u16 {
        self.m
    }

    fn codes(&self) -> [u8; QK] {
        let qh = u32::from_le_bytes(self.qh);
        std::array::from_fn(|e| {
            let nibble = (self.qs[e % (QK / 2)] >> (4 * (e / (QK / 2)))) & 0x0F;
            let high = if (qh >> e) & 1 == 1 { HIGH_BIT } else { 0 };
            nibble | high
        })
    }
}

/// Returns the dot product of a Q5_1 row with a Q8_1 row in ggml's float order.
pub(crate) fn q5_1_q8_1(w: &[BlockQ5_1], a: &[BlockQ8_1]) -> f32 {
    min_block_dot(w, a)
}

/// AVX2 versions, bit-identical to the scalar one above.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    use super::HIGH_BIT;
    use crate::blocks::{BlockQ5_1, BlockQ8_1};
    use crate::ggml_cpu::vec_dot_lanes::x86::nibbles;
    use crate::ggml_cpu::vec_dot_q4_1::x86::{min_block_dot, min_block_dot_x4, MinBlockSimd};

    /// Expands 32 bits to 32 bytes: byte `i` is 0xFF when bit `i` of `bits` is set, else 0.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn bytes_from_bits(bits: u32) -> __m256i {
        // Byte i takes byte i / 8 of `bits`, then keeps only bit i % 8 of it.
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(bits as i32),
            _mm256_set_epi64x(
                0x0303_0303_0303_0303,
                0x0202_0202_0202_0202,
                0x0101_0101_0101_0101,
                0,
            ),
        );
        let bit_of_byte = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
        _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit_of_byte), bit_of_byte)
    }

    impl MinBlockSimd for BlockQ5_1 {
        #[target_feature(enable = "avx2,fma,f16c")]
        #[inline]
        unsafe fn codes_avx2(&self) -> __m256i {
            let high = _mm256_and_si256(
                bytes_from_bits(u32::from_le_bytes(self.qh)),
                _mm256_set1_epi8(HIGH_BIT as i8),
            );
            _mm256_or_si256(nibbles(&self.qs), high)
        }
    }

    /// [`min_block_dot`] for Q5_1.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn q5_1_q8_1(w: &[BlockQ5_1], a: &[BlockQ8_1]) -> f32 {
        min_block_dot(w, a)
    }

    /// [`min_block_dot_x4`] for Q5_1.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn q5_1_q8_1_x4(w: &[BlockQ5_1], a: [&[BlockQ8_1]; 4]) -> [f32; 4] {
        min_block_dot_x4(w, a)
    }
}
