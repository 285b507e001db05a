//! Q5_K x Q8_K in the float order of ggml's `ggml_vec_dot_q5_K_q8_K` on x86-64.
//!
//! llama.cpp b11312 compiles the `__AVX2__` branch of that kernel on every AVX2 or AVX-512
//! build. The product lanes are those of Q4_K (see [`super::vec_dot_q4_k`]) with 5-bit
//! codes, but the min term is reduced to one integer per super-block and kept in a scalar:
//!
//! 1. `d = a.d * fp16(w.d)` and `dmin = -a.d * fp16(w.dmin)`, each rounded to f32;
//! 2. `acc[k] = fma(d, f32(lanes[k]), acc[k])` for the 8 lanes;
//! 3. `summs = fma(dmin, f32(sum_s m[s] * sum(a in sub-block s)), summs)`; the C source
//!    writes `summs += dmin * x`, which GCC contracts to one `vfmadd231ss`;
//! 4. after the last super-block, `hsum_float_8(acc) + summs`.

use super::vec_dot_q4_k::{min_lanes, scales_mins, SUB_BLOCKS};
use super::vec_dot_q6_k::{hsum_float_8, CHUNK, LANES};
use crate::blocks::{BlockQ5K, BlockQ8K, QK_K};
use crate::dot::scalar::fp16;

/// Returns the 5-bit code of element `e`: the nibble as in Q4_K plus bit `e / 32` of
/// `qh[e % 32]` as bit 4.
#[inline]
fn code(w: &BlockQ5K, e: usize) -> i32 {
    let byte = w.qs[CHUNK * (e / 64) + e % CHUNK];
    let nibble = if e % 64 < CHUNK {
        byte & 0x0F
    } else {
        byte >> 4
    };
    let high = (w.qh[e % CHUNK] >> (e / CHUNK)) & 1;
    i32::from(nibble | (high << 4))
}

/// Returns the 8 exact i32 lane sums of scaled products of one super-block.
fn block_lanes(w: &BlockQ5K, scales: &[u8], a: &BlockQ8K) -> [i32; LANES] {
    let mut lanes = [0i32; LANES];
    for e in 0..QK_K {
        let scale = i32::from(scales[e / CHUNK]);
        lanes[(e % CHUNK) / 4] += scale * code(w, e) * i32::from(a.qs[e]);
    }
    lanes
}

/// Returns the exact integer sums of one super-block: scaled products and min term.
pub(super) fn block_sums(w: &BlockQ5K, a: &BlockQ8K) -> (i32, i32) {
    let unpacked = scales_mins(&w.scales);
    let (scales, mins) = unpacked.split_at(SUB_BLOCKS);
    (
        block_lanes(w, scales, a).iter().sum(),
        min_lanes(mins, a).iter().sum(),
    )
}

/// Computes the dot product of a Q5_K row and a Q8_K row with ggml's float order, in
/// portable Rust (`f32::mul_add` for each fused multiply-add).
pub(crate) fn q5_k_q8_k(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut summs = 0.0f32;
    for (w, a) in w.iter().zip(a) {
        let d = a.d * fp16(w.d);
        let dmin = -a.d * fp16(w.dmin);
        let unpacked = scales_mins(&w.scales);
        let (scales, mins) = unpacked.split_at(SUB_BLOCKS);

        let min_sum: i32 = min_lanes(mins, a).iter().sum();
        summs = dmin.mul_add(min_sum as f32, summs);

        for (acc, &lane) in acc.iter_mut().zip(&block_lanes(w, scales, a)) {
            *acc = d.mul_add(lane as f32, *acc);
        }
    }
    hsum_float_8(acc) + summs
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{q5_k_q8_k_avx2, q5_k_q8_k_avx512, q5_k_q8_k_x4_avx2, q5_k_q8_k_x4_avx512};

#[cfg(target_arch = "x86_64")]
pub(super) use x86::tiled_sums_x4_avx512;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::vec_dot_q4_k::{
        min_products, nibble_pairs_512, scale_broadcasts, scale_pairs_512, scales_mins,
        sub_block_pairs_512, tiled_sums_x4_decoded, SUB_BLOCKS,
    };
    use super::super::vec_dot_q6_k::{hsum_float_8_avx2, scaled_chunk, CHUNK};
    use crate::blocks::{BlockQ5K, BlockQ8K};
    use crate::dot::scalar::fp16;

    /// One Q5_K super-block decoded for `vpmaddubsw`.
    struct Decoded {
        codes: [__m256i; SUB_BLOCKS],
        scales: [__m256i; SUB_BLOCKS],
        mins: __m128i,
        d: f32,
        dmin: f32,
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn decode(w: &BlockQ5K) -> Decoded {
        let low_mask = _mm256_set1_epi8(0x0F);
        let (scales, mins) = scale_broadcasts(&scales_mins(&w.scales));
        let high_bits = _mm256_loadu_si256(w.qh.as_ptr().cast());

        let mut codes = [_mm256_setzero_si256(); SUB_BLOCKS];
        for g in 0..SUB_BLOCKS / 2 {
            let bytes = _mm256_loadu_si256(w.qs[CHUNK * g..CHUNK * (g + 1)].as_ptr().cast());
            let nibbles = [
                _mm256_and_si256(bytes, low_mask),
                _mm256_and_si256(_mm256_srli_epi16::<4>(bytes), low_mask),
            ];
            for (half, nibbles) in nibbles.into_iter().enumerate() {
                let s = 2 * g + half;
                // Bit 4 of the code is bit s of the qh byte. ggml shifts the bit into place,
                // a compare against the bit and a mask of 16 give the same bytes.
                let bit = _mm256_set1_epi8((1u8 << s) as i8);
                let set = _mm256_cmpeq_epi8(_mm256_and_si256(high_bits, bit), bit);
                codes[s] = _mm256_or_si256(nibbles, _mm256_and_si256(set, _mm256_set1_epi8(16)));
            }
        }

        Decoded {
            codes,
            scales,
            mins,
            d: fp16(w.d),
            dmin: fp16(w.dmin),
        }
    }

    /// Adds one super-block's terms to the 8 product lanes and the scalar min sum.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn accumulate(w: &Decoded, a: &BlockQ8K, acc: &mut __m256, summs: &mut f32) {
        let dmin = -a.d * w.dmin;
        let products = min_products(w.mins, a);
        let pair = _mm_add_epi32(products, _mm_unpackhi_epi64(products, products));
        let min_sum = _mm_cvtsi128_si32(_mm_add_epi32(pair, _mm_shuffle_epi32::<0b01>(pair)));
        *summs = dmin.mul_add(min_sum as f32, *summs);

        let mut sumi = _mm256_setzero_si256();
        for s in 0..SUB_BLOCKS {
            let act = _mm256_loadu_si256(a.qs[CHUNK * s..CHUNK * (s + 1)].as_ptr().cast());
            sumi = _mm256_add_epi32(sumi, scaled_chunk(w.codes[s], act, w.scales[s]));
        }
        let d = _mm256_set1_ps(a.d * w.d);
        *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), *acc);
    }

    /// Computes the dot product of a Q5_K row and a Q8_K row with ggml's float order.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2 and FMA, and `a` has at least as many blocks as `w`.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn q5_k_q8_k_avx2(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0.0f32;
        for (w, a) in w.iter().zip(a) {
            accumulate(&decode(w), a, &mut acc, &mut summs);
        }
        hsum_float_8_avx2(acc) + summs
    }

    /// Computes [`q5_k_q8_k_avx2`] for four activation rows, decoding each weight block once.
    ///
    /// # Safety
    ///
    /// As [`q5_k_q8_k_avx2`], for every row of `a`.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn q5_k_q8_k_x4_avx2(w: &[BlockQ5K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut summs = [0.0f32; 4];
        for (i, w) in w.iter().enumerate() {
            let decoded = decode(w);
            for r in 0..4 {
                accumulate(&decoded, &a[r][i], &mut acc[r], &mut summs[r]);
            }
        }
        std::array::from_fn(|r| hsum_float_8_avx2(acc[r]) + summs[r])
    }

    /// Sub-block pairs per super-block, one 512-bit register each as in [`nibble_pairs_512`].
    const PAIRS: usize = SUB_BLOCKS / 2;

    /// One Q5_K super-block decoded for 512-bit `vpmaddubsw`: entry `g` holds sub-blocks
    /// `2g` and `2g + 1`.
    struct Decoded512 {
        codes: [__m512i; PAIRS],
        scales: [__m512i; PAIRS],
        mins: __m128i,
        d: f32,
        dmin: f32,
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    #[inline]
    unsafe fn decode_512(w: &BlockQ5K) -> Decoded512 {
        let (scales, mins) = scale_pairs_512(&scales_mins(&w.scales));
        let high_bits = _mm256_loadu_si256(w.qh.as_ptr().cast());
        let high_bits = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(high_bits), high_bits);
        let mut codes = nibble_pairs_512(&w.qs);

        // Sub-block s takes bit s of each qh byte as bit 4 of its code.
        for (g, codes) in codes.iter_mut().enumerate() {
            let low_bit = _mm256_set1_epi8((1u8 << (2 * g)) as i8);
            let high_bit = _mm256_set1_epi8((1u8 << (2 * g + 1)) as i8);
            let bits = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low_bit), high_bit);
            let set = _mm512_test_epi8_mask(high_bits, bits);
            *codes = _mm512_mask_add_epi8(*codes, set, *codes, _mm512_set1_epi8(16));
        }

        Decoded512 {
            codes,
            scales,
            mins,
            d: fp16(w.d),
            dmin: fp16(w.dmin),
        }
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    #[inline]
    unsafe fn accumulate_512(w: &Decoded512, a: &BlockQ8K, acc: &mut __m256, summs: &mut f32) {
        let dmin = -a.d * w.dmin;
        let products = min_products(w.mins, a);
        let pair = _mm_add_epi32(products, _mm_unpackhi_epi64(products, products));
        let min_sum = _mm_cvtsi128_si32(_mm_add_epi32(pair, _mm_shuffle_epi32::<0b01>(pair)));
        *summs = dmin.mul_add(min_sum as f32, *summs);

        let sumi = sub_block_pairs_512(&w.codes, &w.scales, a);
        let d = _mm256_set1_ps(a.d * w.d);
        *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), *acc);
    }

    /// Returns, for each of four activation blocks, the exact integer sums of `w` with it:
    /// the scaled products and the min term.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    pub(in crate::ggml_cpu) unsafe fn tiled_sums_x4_avx512(
        w: &BlockQ5K,
        a: [&BlockQ8K; 4],
    ) -> [(i32, i32); 4] {
        let decoded = decode_512(w);
        tiled_sums_x4_decoded(&decoded.codes, &decoded.scales, decoded.mins, a)
    }

    /// Computes [`q5_k_q8_k_avx2`]'s result, bit for bit, with 512-bit integer products.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2, FMA, AVX-512 F and BW, and `a` has at least as many blocks
    /// as `w`.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    pub(crate) unsafe fn q5_k_q8_k_avx512(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0.0f32;
        for (w, a) in w.iter().zip(a) {
            accumulate_512(&decode_512(w), a, &mut acc, &mut summs);
        }
        hsum_float_8_avx2(acc) + summs
    }

    /// Computes [`q5_k_q8_k_avx512`] for four activation rows, decoding each weight block
    /// once.
    ///
    /// # Safety
    ///
    /// As [`q5_k_q8_k_avx512`], for every row of `a`.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    pub(crate) unsafe fn q5_k_q8_k_x4_avx512(w: &[BlockQ5K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut summs = [0.0f32; 4];
        for (i, w) in w.iter().enumerate() {
            let decoded = decode_512(w);
            for r in 0..4 {
                accumulate_512(&decoded, &a[r][i], &mut acc[r], &mut summs[r]);
            }
        }
        std::array::from_fn(|r| hsum_float_8_avx2(acc[r]) + summs[r])
    }
}
