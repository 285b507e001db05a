//! Q4_K x Q8_K in the float order of ggml's `ggml_vec_dot_q4_K_q8_K` on x86-64.
//!
//! llama.cpp b11312 compiles the `__AVX2__` branch of that kernel on every AVX2 or AVX-512
//! build. Per super-block it keeps two exact integer sums:
//!
//! - 8 i32 lanes of scaled products: lane `k` sums `sc[s] * q * a` over the elements whose
//!   index modulo 32 lies in `4k..4k + 4` (`s` is the element's 32-element sub-block);
//! - 4 i32 lanes of the min term: lane `i` is `m[2i] * sum(a in sub-block 2i) +
//!   m[2i + 1] * sum(a in sub-block 2i + 1)`, from the Q8_K `bsums`.
//!
//! The float steps are:
//!
//! 1. `d = a.d * fp16(w.d)` and `dmin = -a.d * fp16(w.dmin)`, each rounded to f32;
//! 2. `acc[k] = fma(d, f32(lanes[k]), acc[k])` for the 8 lanes and
//!    `acc_m[i] = fma(dmin, f32(min_lanes[i]), acc_m[i])` for the 4 min lanes;
//! 3. after the last super-block, `hsum_float_8(acc) + ((acc_m[0] + acc_m[2]) +
//!    (acc_m[1] + acc_m[3]))`.

use super::vec_dot_q6_k::{hsum_float_8, CHUNK, LANES};
use crate::blocks::{BlockQ4K, BlockQ8K, K_SCALE_SIZE, QK_K};
use crate::dot::scalar::fp16;

/// Lanes of the 128-bit register that accumulates the Q4_K min term.
const MIN_LANES: usize = 4;

/// Sub-blocks of 32 elements in a Q4_K or Q5_K super-block.
pub(super) const SUB_BLOCKS: usize = QK_K / CHUNK;

/// Unpacks the 12 scale bytes of a Q4_K or Q5_K block into 8 six-bit scales (bytes 0..8)
/// and 8 six-bit mins (bytes 8..16), with ggml's word shuffle on four little-endian u32s.
#[inline]
pub(super) fn scales_mins(packed: &[u8; K_SCALE_SIZE]) -> [u8; 2 * SUB_BLOCKS] {
    const LOW_6: u32 = 0x3f3f_3f3f;
    const LOW_4: u32 = 0x0f0f_0f0f;
    const LOW_2: u32 = 0x0303_0303;

    let word = |i: usize| {
        u32::from_le_bytes([
            packed[4 * i],
            packed[4 * i + 1],
            packed[4 * i + 2],
            packed[4 * i + 3],
        ])
    };
    let (w0, w1, w2) = (word(0), word(1), word(2));

    let scales_low = w0 & LOW_6;
    let scales_high = (w2 & LOW_4) | (((w0 >> 6) & LOW_2) << 4);
    let mins_low = w1 & LOW_6;
    let mins_high = ((w2 >> 4) & LOW_4) | (((w1 >> 6) & LOW_2) << 4);

    let mut out = [0u8; 2 * SUB_BLOCKS];
    for (i, word) in [scales_low, scales_high, mins_low, mins_high]
        .into_iter()
        .enumerate()
    {
        out[4 * i..4 * i + 4].copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// Returns the 4 exact min-term lanes of one super-block: lane `i` pairs sub-blocks `2i`
/// and `2i + 1`, each sub-block's activation sum being two `bsums` entries.
#[inline]
pub(super) fn min_lanes(mins: &[u8], a: &BlockQ8K) -> [i32; MIN_LANES] {
    let sub_block_sum = |s: usize| i32::from(a.bsums[2 * s]) + i32::from(a.bsums[2 * s + 1]);
    std::array::from_fn(|i| {
        i32::from(mins[2 * i]) * sub_block_sum(2 * i)
            + i32::from(mins[2 * i + 1]) * sub_block_sum(2 * i + 1)
    })
}

/// Returns the 8 exact i32 lane sums of scaled products of one super-block.
fn block_lanes(w: &BlockQ4K, scales: &[u8], a: &BlockQ8K) -> [i32; LANES] {
    let mut lanes = [0i32; LANES];
    for e in 0..QK_K {
        let byte = w.qs[CHUNK * (e / 64) + e % CHUNK];
        let code = if e % 64 < CHUNK {
            byte & 0x0F
        } else {
            byte >> 4
        };
        let scale = i32::from(scales[e / CHUNK]);
        lanes[(e % CHUNK) / 4] += scale * i32::from(code) * i32::from(a.qs[e]);
    }
    lanes
}

/// Returns the exact integer sums of one super-block: scaled products and min term.
pub(super) fn block_sums(w: &BlockQ4K, a: &BlockQ8K) -> (i32, i32) {
    let unpacked = scales_mins(&w.scales);
    let (scales, mins) = unpacked.split_at(SUB_BLOCKS);
    (
        block_lanes(w, scales, a).iter().sum(),
        min_lanes(mins, a).iter().sum(),
    )
}

/// Computes the dot product of a Q4_K row and a Q8_K row with ggml's float order, in
/// portable Rust (`f32::mul_add` for each fused multiply-add).
pub(crate) fn q4_k_q8_k(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut acc_m = [0.0f32; MIN_LANES];
    for (w, a) in w.iter().zip(a) {
        let d = a.d * fp16(w.d);
        let dmin = -a.d * fp16(w.dmin);
        let unpacked = scales_mins(&w.scales);
        let (scales, mins) = unpacked.split_at(SUB_BLOCKS);

        for (acc_m, &lane) in acc_m.iter_mut().zip(&min_lanes(mins, a)) {
            *acc_m = dmin.mul_add(lane as f32, *acc_m);
        }
        for (acc, &lane) in acc.iter_mut().zip(&block_lanes(w, scales, a)) {
            *acc = d.mul_add(lane as f32, *acc);
        }
    }

    let min_sum = (acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]);
    hsum_float_8(acc) + min_sum
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{q4_k_q8_k_avx2, q4_k_q8_k_avx512, q4_k_q8_k_x4_avx2, q4_k_q8_k_x4_avx512};

#[cfg(target_arch = "x86_64")]
pub(super) use x86::{
    min_products, nibble_pairs_512, scale_broadcasts, scale_pairs_512, sub_block_pairs_512,
    tiled_sums_x4_avx512, tiled_sums_x4_decoded,
};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::vec_dot_q6_k::{horizontal_sums_x4, hsum_float_8_avx2, scaled_chunk, CHUNK};
    use super::{scales_mins, SUB_BLOCKS};
    use crate::blocks::{BlockQ4K, BlockQ8K, QK_K};
    use crate::dot::scalar::fp16;

    /// Returns, for each sub-block `s`, a register of 16 copies of `scales[s]` as i16
    /// (ggml's `get_scale_shuffle_k4`), and the 8 mins as i16.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(in crate::ggml_cpu) unsafe fn scale_broadcasts(
        unpacked: &[u8; 2 * SUB_BLOCKS],
    ) -> ([__m256i; SUB_BLOCKS], __m128i) {
        let mins_and_scales = _mm256_cvtepu8_epi16(_mm_loadu_si128(unpacked.as_ptr().cast()));
        let scales_128 = _mm256_castsi256_si128(mins_and_scales);
        let scales = _mm256_set_m128i(scales_128, scales_128);

        let mut out = [_mm256_setzero_si256(); SUB_BLOCKS];
        for (s, out) in out.iter_mut().enumerate() {
            let pick = ((2 * s + 1) << 8 | 2 * s) as i16;
            *out = _mm256_shuffle_epi8(scales, _mm256_set1_epi16(pick));
        }
        (out, _mm256_extracti128_si256::<1>(mins_and_scales))
    }

    /// Returns the 4 min-term lanes: `mins[2i] * sum(2i) + mins[2i + 1] * sum(2i + 1)`,
    /// with the sub-block sums formed by `vphaddw` on the `bsums`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(in crate::ggml_cpu) unsafe fn min_products(mins: __m128i, a: &BlockQ8K) -> __m128i {
        let bsums = _mm256_loadu_si256(a.bsums.as_ptr().cast());
        let sub_block_sums = _mm_hadd_epi16(
            _mm256_castsi256_si128(bsums),
            _mm256_extracti128_si256::<1>(bsums),
        );
        _mm_madd_epi16(mins, sub_block_sums)
    }

    /// One Q4_K super-block decoded for `vpmaddubsw`.
    struct Decoded {
        codes: [__m256i; SUB_BLOCKS],
        scales: [__m256i; SUB_BLOCKS],
        mins: __m128i,
        d: f32,
        dmin: f32,
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn decode(w: &BlockQ4K) -> Decoded {
        let low_mask = _mm256_set1_epi8(0x0F);
        let (scales, mins) = scale_broadcasts(&scales_mins(&w.scales));

        let mut codes = [_mm256_setzero_si256(); SUB_BLOCKS];
        for g in 0..SUB_BLOCKS / 2 {
            let bytes = _mm256_loadu_si256(w.qs[CHUNK * g..CHUNK * (g + 1)].as_ptr().cast());
            codes[2 * g] = _mm256_and_si256(bytes, low_mask);
            codes[2 * g + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(bytes), low_mask);
        }

        Decoded {
            codes,
            scales,
            mins,
            d: fp16(w.d),
            dmin: fp16(w.dmin),
        }
    }

    /// Adds one super-block's terms to the 8 product lanes and the 4 min lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn accumulate(w: &Decoded, a: &BlockQ8K, acc: &mut __m256, acc_m: &mut __m128) {
        let dmin = -a.d * w.dmin;
        *acc_m = _mm_fmadd_ps(
            _mm_set1_ps(dmin),
            _mm_cvtepi32_ps(min_products(w.mins, a)),
            *acc_m,
        );

        let mut sumi = _mm256_setzero_si256();
        for s in 0..SUB_BLOCKS {
            let act = _mm256_loadu_si256(a.qs[CHUNK * s..CHUNK * (s + 1)].as_ptr().cast());
            sumi = _mm256_add_epi32(sumi, scaled_chunk(w.codes[s], act, w.scales[s]));
        }
        let d = _mm256_set1_ps(a.d * w.d);
        *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), *acc);
    }

    /// Adds the 4 min lanes as ggml does, (0 + 2) + (1 + 3), to the 8 product lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn finish(acc: __m256, acc_m: __m128) -> f32 {
        let pair = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
        let min_sum = _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)));
        hsum_float_8_avx2(acc) + min_sum
    }

    /// Computes the dot product of a Q4_K row and a Q8_K row with ggml's float order.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2 and FMA, and `a` has at least as many blocks as `w`.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn q4_k_q8_k_avx2(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm_setzero_ps();
        for (w, a) in w.iter().zip(a) {
            accumulate(&decode(w), a, &mut acc, &mut acc_m);
        }
        finish(acc, acc_m)
    }

    /// Computes [`q4_k_q8_k_avx2`] for four activation rows, decoding each weight block once.
    ///
    /// # Safety
    ///
    /// As [`q4_k_q8_k_avx2`], for every row of `a`.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn q4_k_q8_k_x4_avx2(w: &[BlockQ4K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut acc_m = [_mm_setzero_ps(); 4];
        for (i, w) in w.iter().enumerate() {
            let decoded = decode(w);
            for r in 0..4 {
                accumulate(&decoded, &a[r][i], &mut acc[r], &mut acc_m[r]);
            }
        }
        std::array::from_fn(|r| finish(acc[r], acc_m[r]))
    }

    /// Sub-block pairs per super-block. Register `g` of a pair array holds sub-blocks `2g`
    /// (low 256 bits) and `2g + 1` (high 256 bits), which are adjacent in the activations.
    const PAIRS: usize = SUB_BLOCKS / 2;

    /// Returns the i16 lane indices that give each half of a 512-bit register one scale:
    /// `index[m] = 2 * pair + m / 16`.
    const fn pair_index(pair: usize) -> [i16; 32] {
        let mut index = [0i16; 32];
        let mut m = 0;
        while m < 32 {
            index[m] = (2 * pair + m / 16) as i16;
            m += 1;
        }
        index
    }

    static PAIR_SCALE_INDEX: [[i16; 32]; PAIRS] =
        [pair_index(0), pair_index(1), pair_index(2), pair_index(3)];

    /// Returns the scales of each sub-block pair as 16 i16 copies per half, and the 8 mins
    /// as i16.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    #[inline]
    pub(in crate::ggml_cpu) unsafe fn scale_pairs_512(
        unpacked: &[u8; 2 * SUB_BLOCKS],
    ) -> ([__m512i; PAIRS], __m128i) {
        let mins_and_scales = _mm256_cvtepu8_epi16(_mm_loadu_si128(unpacked.as_ptr().cast()));
        let wide = _mm512_castsi256_si512(mins_and_scales);
        let scales = PAIR_SCALE_INDEX
            .map(|index| _mm512_permutexvar_epi16(_mm512_loadu_si512(index.as_ptr().cast()), wide));
        (scales, _mm256_extracti128_si256::<1>(mins_and_scales))
    }

    /// Returns the 4-bit codes of each sub-block pair: low nibbles of `qs[32g..32g + 32]`
    /// for sub-block `2g`, high nibbles for `2g + 1`.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    #[inline]
    pub(in crate::ggml_cpu) unsafe fn nibble_pairs_512(qs: &[u8; QK_K / 2]) -> [__m512i; PAIRS] {
        let low_mask = _mm256_set1_epi8(0x0F);
        std::array::from_fn(|g| {
            let bytes = _mm256_loadu_si256(qs[CHUNK * g..CHUNK * (g + 1)].as_ptr().cast());
            let low = _mm256_and_si256(bytes, low_mask);
            let high = _mm256_and_si256(_mm256_srli_epi16::<4>(bytes), low_mask);
            _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low), high)
        })
    }

    /// Returns the 8 lane sums of scaled products of one super-block from 512-bit products,
    /// folded in half, the same integers as the 256-bit loop in [`accumulate`].
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    #[inline]
    pub(in crate::ggml_cpu) unsafe fn sub_block_pairs_512(
        codes: &[__m512i; PAIRS],
        scales: &[__m512i; PAIRS],
        a: &BlockQ8K,
    ) -> __m256i {
        let mut sumi = _mm512_setzero_si512();
        for g in 0..PAIRS {
            let act = _mm512_loadu_si512(a.qs[2 * CHUNK * g..2 * CHUNK * (g + 1)].as_ptr().cast());
            sumi = _mm512_add_epi32(
                sumi,
                _mm512_madd_epi16(scales[g], _mm512_maddubs_epi16(codes[g], act)),
            );
        }
        _mm256_add_epi32(
            _mm512_castsi512_si256(sumi),
            _mm512_extracti64x4_epi64::<1>(sumi),
        )
    }

    /// One Q4_K super-block decoded for 512-bit `vpmaddubsw`.
    struct Decoded512 {
        codes: [__m512i; PAIRS],
        scales: [__m512i; PAIRS],
        mins: __m128i,
        d: f32,
        dmin: f32,
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    #[inline]
    unsafe fn decode_512(w: &BlockQ4K) -> Decoded512 {
        let (scales, mins) = scale_pairs_512(&scales_mins(&w.scales));
        Decoded512 {
            codes: nibble_pairs_512(&w.qs),
            scales,
            mins,
            d: fp16(w.d),
            dmin: fp16(w.dmin),
        }
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    #[inline]
    unsafe fn accumulate_512(w: &Decoded512, a: &BlockQ8K, acc: &mut __m256, acc_m: &mut __m128) {
        let dmin = -a.d * w.dmin;
        *acc_m = _mm_fmadd_ps(
            _mm_set1_ps(dmin),
            _mm_cvtepi32_ps(min_products(w.mins, a)),
            *acc_m,
        );

        let sumi = sub_block_pairs_512(&w.codes, &w.scales, a);
        let d = _mm256_set1_ps(a.d * w.d);
        *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), *acc);
    }

    /// Returns, for each of four activation blocks, the exact integer sums of `w` with it:
    /// the scaled products and the min term.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    pub(in crate::ggml_cpu) unsafe fn tiled_sums_x4_avx512(
        w: &BlockQ4K,
        a: [&BlockQ8K; 4],
    ) -> [(i32, i32); 4] {
        let decoded = decode_512(w);
        tiled_sums_x4_decoded(&decoded.codes, &decoded.scales, decoded.mins, a)
    }

    /// Returns the tiled kernel's exact `(s1, s2)` of one decoded Q4_K or Q5_K
    /// super-block with each of four activation blocks.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    #[inline]
    pub(in crate::ggml_cpu) unsafe fn tiled_sums_x4_decoded(
        codes: &[__m512i; PAIRS],
        scales: &[__m512i; PAIRS],
        mins: __m128i,
        a: [&BlockQ8K; 4],
    ) -> [(i32, i32); 4] {
        let products = a.map(|a| sub_block_pairs_512(codes, scales, a));
        let min_terms = a.map(|a| _mm256_zextsi128_si256(min_products(mins, a)));
        let s1 = horizontal_sums_x4(products);
        let s2 = horizontal_sums_x4(min_terms);
        [(s1[0], s2[0]), (s1[1], s2[1]), (s1[2], s2[2]), (s1[3], s2[3])]
    }

    /// Computes [`q4_k_q8_k_avx2`]'s result, bit for bit, with 512-bit integer products.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2, FMA, AVX-512 F and BW, and `a` has at least as many blocks
    /// as `w`.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    pub(crate) unsafe fn q4_k_q8_k_avx512(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm_setzero_ps();
        for (w, a) in w.iter().zip(a) {
            accumulate_512(&decode_512(w), a, &mut acc, &mut acc_m);
        }
        finish(acc, acc_m)
    }

    /// Computes [`q4_k_q8_k_avx512`] for four activation rows, decoding each weight block
    /// once.
    ///
    /// # Safety
    ///
    /// As [`q4_k_q8_k_avx512`], for every row of `a`.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    pub(crate) unsafe fn q4_k_q8_k_x4_avx512(w: &[BlockQ4K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut acc_m = [_mm_setzero_ps(); 4];
        for (i, w) in w.iter().enumerate() {
            let decoded = decode_512(w);
            for r in 0..4 {
                accumulate_512(&decoded, &a[r][i], &mut acc[r], &mut acc_m[r]);
            }
        }
        std::array::from_fn(|r| finish(acc[r], acc_m[r]))
    }
}
