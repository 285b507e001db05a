//! `ggml_vec_dot_q2_K_q8_K` in the float order of ggml's x86-64 build.
//!
//! A Q2_K weight is `d * sc * q - dmin * m` per group of 16, so a super-block contributes
//! `d * d_a * sum(sc * q * qs) - dmin * d_a * sum(m * bsums)`. The AVX2 branch of
//! llama.cpp b11312 (compiled in its AVX-512 build) adds both terms to the eight-lane f32
//! accumulator, per super-block and in this order:
//!
//! 1. the mins: `vpmaddwd` of the 16 mins with the 16 `bsums` leaves groups `2 k` and
//!    `2 k + 1` in lane `k`; one fused multiply-add by `dmin = -d_a * dmin_w`;
//! 2. the codes: element `e` lands in lane `(e % 32) / 4`, scaled by its group's scale;
//!    one fused multiply-add by `d = d_a * d_w`.
//!
//! The lanes are summed as `hsum_float_8` at the end.

use crate::blocks::{BlockQ2K, BlockQ8K, QK_K};
use crate::dot::scalar::fp16;
use crate::ggml_cpu::vec_dot_lanes::{fmadd_lanes, hsum_float_8, lane_of, Lanes, LANES};

/// Elements per scale group.
pub(crate) const GROUP: usize = 16;

/// Returns the 2-bit code of element `e`: byte `32 h + l` contains elements `128 h + 32 k + l`
/// for `k` in 0..4, at bits `2 k`.
#[inline]
pub(crate) fn two_bit_code(qs: &[u8; QK_K / 4], e: usize) -> u8 {
    let (h, k, l) = (e / 128, (e % 128) / 32, e % 32);
    (qs[32 * h + l] >> (2 * k)) & 3
}

/// Returns the dot product of a Q2_K row with a Q8_K row in ggml's float order.
pub(crate) fn q2_k_q8_k(w: &[BlockQ2K], a: &[BlockQ8K]) -> f32 {
    let mut acc: Lanes = [0.0; LANES];

    for (w, a) in w.iter().zip(a) {
        let mut min_sums = [0i32; LANES];
        for (g, (&packed, &bsum)) in w.scales.iter().zip(&a.bsums).enumerate() {
            min_sums[g / 2] += i32::from(packed >> 4) * i32::from(bsum);
        }
        fmadd_lanes(&mut acc, -a.d * fp16(w.dmin), &min_sums);

        let mut sums = [0i32; LANES];
        for (e, &q8) in a.qs.iter().enumerate() {
            let scale = i32::from(w.scales[e / GROUP] & 0x0F);
            sums[lane_of(e)] += scale * i32::from(two_bit_code(&w.qs, e)) * i32::from(q8);
        }
        fmadd_lanes(&mut acc, a.d * fp16(w.d), &sums);
    }

    hsum_float_8(&acc)
}

/// AVX2 versions, bit-identical to the scalar one above.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    use crate::blocks::{BlockQ2K, BlockQ8K};
    use crate::ggml_cpu::vec_dot_lanes::x86::{
        fmadd_sums, fp16, hsum_float_8, load_i8x32, load_u8x32,
    };
    use crate::ggml_cpu::vec_dot_lanes::CHUNK;

    /// 32-element chunks per super-block.
    pub(crate) const CHUNKS: usize = 8;

    /// Returns the `vpshufb` mask that fills the low 128 bits with i16 `2 t` and the high
    /// 128 bits with i16 `2 t + 1` of a register whose halves hold the same eight i16.
    const fn scale_pick(t: usize) -> [u8; 32] {
        let mut mask = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            let scale = 2 * t + i / 16;
            mask[i] = (2 * scale + i % 2) as u8;
            i += 1;
        }
        mask
    }

    /// [`scale_pick`] for the four chunks that share one half of the scales.
    const SCALE_PICKS: [[u8; 32]; 4] = [scale_pick(0), scale_pick(1), scale_pick(2), scale_pick(3)];

    /// Spreads 16 i16 group scales to one register per chunk: chunk `c` gets scale `2 c`
    /// in its low 128 bits (elements 0..16) and scale `2 c + 1` in its high 128 bits.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) fn chunk_scales(scales: __m256i) -> [__m256i; CHUNKS] {
        let low = _mm256_permute2x128_si256::<0x00>(scales, scales);
        let high = _mm256_permute2x128_si256::<0x11>(scales, scales);
        std::array::from_fn(|c| {
            let half = if c < CHUNKS / 2 { low } else { high };
            // SAFETY: each mask is 32 readable bytes; the load has no alignment requirement.
            let pick = unsafe { _mm256_loadu_si256(SCALE_PICKS[c % 4].as_ptr().cast()) };
            _mm256_shuffle_epi8(half, pick)
        })
    }

    /// Splits the four 2-bit planes of 32 bytes into four registers of codes 0..=3.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) fn two_bit_planes(packed: __m256i) -> [__m256i; 4] {
        let mask = _mm256_set1_epi8(3);
        [
            _mm256_and_si256(packed, mask),
            _mm256_and_si256(_mm256_srli_epi16::<2>(packed), mask),
            _mm256_and_si256(_mm256_srli_epi16::<4>(packed), mask),
            _mm256_and_si256(_mm256_srli_epi16::<6>(packed), mask),
        ]
    }

    /// One Q2_K super-block, decoded once for any number of activation rows.
    struct Decoded {
        codes: [__m256i; CHUNKS],
        scales: [__m256i; CHUNKS],
        mins: __m256i,
        d: f32,
        dmin: f32,
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn decode(w: &BlockQ2K) -> Decoded {
        // SAFETY: `w.scales` is 16 readable bytes; the load has no alignment requirement.
        let packed = unsafe { _mm_loadu_si128(w.scales.as_ptr().cast()) };
        let nibble = _mm_set1_epi8(0x0F);
        let scales = _mm256_cvtepu8_epi16(_mm_and_si128(packed, nibble));
        let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(packed), nibble));

        let low = two_bit_planes(load_u8x32(&w.qs[..CHUNK]));
        let high = two_bit_planes(load_u8x32(&w.qs[CHUNK..]));
        let codes = [
            low[0], low[1], low[2], low[3], high[0], high[1], high[2], high[3],
        ];

        Decoded {
            codes,
            scales: chunk_scales(scales),
            mins,
            d: fp16(w.d),
            dmin: fp16(w.dmin),
        }
    }

    /// Adds one super-block's min term, then its code term, to `acc` and returns it.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn add_block(acc: __m256, w: &Decoded, a: &BlockQ8K) -> __m256 {
        // SAFETY: `a.bsums` is 16 i16, 32 readable bytes; no alignment requirement.
        let bsums = unsafe { _mm256_loadu_si256(a.bsums.as_ptr().cast()) };
        let min_sums = _mm256_madd_epi16(w.mins, bsums);
        let acc = fmadd_sums(acc, -a.d * w.dmin, min_sums);

        let mut sums = _mm256_setzero_si256();
        for c in 0..CHUNKS {
            // Codes are at most 3, so a pair is at most 2 * 3 * 128 and cannot saturate.
            let pairs = _mm256_maddubs_epi16(w.codes[c], load_i8x32(&a.qs[CHUNK * c..]));
            sums = _mm256_add_epi32(sums, _mm256_madd_epi16(w.scales[c], pairs));
        }
        fmadd_sums(acc, a.d * w.d, sums)
    }

    /// Returns the dot product of a Q2_K row with a Q8_K row.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn q2_k_q8_k(w: &[BlockQ2K], a: &[BlockQ8K]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (w, a) in w.iter().zip(a) {
            acc = add_block(acc, &decode(w), a);
        }
        hsum_float_8(acc)
    }

    /// Returns the dot products of one Q2_K row with four Q8_K rows, decoding each weight
    /// super-block once.
    ///
    /// # Panics
    ///
    /// Panics when an activation row is shorter than the weight row.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn q2_k_q8_k_x4(w: &[BlockQ2K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
        let mut acc = [_mm256_setzero_ps(); 4];
        for (i, w) in w.iter().enumerate() {
            let decoded = decode(w);
            for k in 0..4 {
                acc[k] = add_block(acc[k], &decoded, &a[k][i]);
            }
        }
        [
            hsum_float_8(acc[0]),
            hsum_float_8(acc[1]),
            hsum_float_8(acc[2]),
            hsum_float_8(acc[3]),
        ]
    }
}
