//! `ggml_vec_dot_q3_K_q8_K` in the float order of ggml's x86-64 build.
//!
//! A Q3_K code is `q - 4` with `q` the two low bits plus a high bit from `hmask`, scaled by
//! a signed 6-bit group scale. The AVX2 branch of llama.cpp b11312 (compiled in its
//! AVX-512 build) sums `scale * code * qs` exactly in eight i32 lanes, element `e` in lane
//! `(e % 32) / 4`, and adds them once per super-block with a fused multiply-add by
//! `d = d_a * d_w`. The lanes are summed as `hsum_float_8` at the end.

use crate::blocks::{BlockQ3K, BlockQ8K, QK_K};
use crate::dot::scalar::fp16;
use crate::ggml_cpu::vec_dot_lanes::{fmadd_lanes, hsum_float_8, lane_of, Lanes, LANES};
use crate::ggml_cpu::vec_dot_q2_k::{two_bit_code, GROUP};

/// Bias of the 6-bit scales: stored 0..=63 means -32..=31.
const SCALE_BIAS: i8 = 32;

/// Offset a clear high bit subtracts from a code.
const LOW_OFFSET: i32 = 4;

/// Decodes the 16 six-bit group scales, bias removed.
///
/// The low 4 bits of scale `j` are in byte `j % 8`, in the low nibble for `j < 8` and the
/// high nibble otherwise. Its top 2 bits are in byte `8 + j % 4` at bit `2 * (j / 4)`.
pub(crate) fn group_scales(packed: &[u8; 12]) -> [i8; QK_K / GROUP] {
    std::array::from_fn(|j| {
        let low = (packed[j % 8] >> (4 * (j / 8))) & 0x0F;
        let high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        (low | (high << 4)) as i8 - SCALE_BIAS
    })
}

/// Returns the dot product of a Q3_K row with a Q8_K row in ggml's float order.
pub(crate) fn q3_k_q8_k(w: &[BlockQ3K], a: &[BlockQ8K]) -> f32 {
    let mut acc: Lanes = [0.0; LANES];

    for (w, a) in w.iter().zip(a) {
        let scales = group_scales(&w.scales);
        let mut sums = [0i32; LANES];
        for (e, &q8) in a.qs.iter().enumerate() {
            // Bit `e / 32` of `hmask[e % 32]` is the high bit of element `e`.
            let high_set = (w.hmask[e % 32] >> (e / 32)) & 1 == 1;
            let offset = if high_set { 0 } else { LOW_OFFSET };
            let code = i32::from(two_bit_code(&w.qs, e)) - offset;
            sums[lane_of(e)] += i32::from(scales[e / GROUP]) * code * i32::from(q8);
        }
        fmadd_lanes(&mut acc, a.d * fp16(w.d), &sums);
    }

    hsum_float_8(&acc)
}

/// AVX2 and AVX-512 versions, bit-identical to the scalar one above.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    use super::{group_scales, LOW_OFFSET};
    use crate::blocks::{BlockQ3K, BlockQ8K};
    use crate::ggml_cpu::vec_dot_lanes::x86::{
        fmadd_sums, fp16, hsum_float_8, load_i8x32, load_u8x32,
    };
    use crate::ggml_cpu::vec_dot_lanes::CHUNK;
    use crate::ggml_cpu::vec_dot_q2_k::x86::{chunk_scales, two_bit_planes, CHUNKS};

    /// One Q3_K super-block, decoded once for any number of activation rows. A code is
    /// `low - offset`; both parts stay unsigned so that `vpmaddubsw` takes them.
    struct Decoded {
        low: [__m256i; CHUNKS],
        offset: [__m256i; CHUNKS],
        scales: [__m256i; CHUNKS],
        d: f32,
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn decode(w: &BlockQ3K) -> Decoded {
        let scales = group_scales(&w.scales);
        // SAFETY: `scales` is 16 readable bytes; the load has no alignment requirement.
        let scales = unsafe { _mm_loadu_si128(scales.as_ptr().cast()) };

        let first = two_bit_planes(load_u8x32(&w.qs[..CHUNK]));
        let second = two_bit_planes(load_u8x32(&w.qs[CHUNK..]));
        let low = [
            first[0], first[1], first[2], first[3], second[0], second[1], second[2], second[3],
        ];

        // Chunk c takes its high bits from bit c of each hmask byte.
        let hmask = load_u8x32(&w.hmask);
        let offset = std::array::from_fn(|c| {
            let bit = _mm256_set1_epi8((1u8 << c) as i8);
            let clear = _mm256_cmpeq_epi8(_mm256_and_si256(hmask, bit), _mm256_setzero_si256());
            _mm256_and_si256(clear, _mm256_set1_epi8(LOW_OFFSET as i8))
        });

        Decoded {
            low,
            offset,
            scales: chunk_scales(_mm256_cvtepi8_epi16(scales)),
            d: fp16(w.d),
        }
    }

    /// Adds one super-block's term to `acc` and returns it.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn add_block(acc: __m256, w: &Decoded, a: &BlockQ8K) -> __m256 {
        let mut sums = _mm256_setzero_si256();
        for c in 0..CHUNKS {
            let q8 = load_i8x32(&a.qs[CHUNK * c..]);
            // Both parts are at most 4, so no pair saturates.
            let pairs = _mm256_sub_epi16(
                _mm256_maddubs_epi16(w.low[c], q8),
                _mm256_maddubs_epi16(w.offset[c], q8),
            );
            sums = _mm256_add_epi32(sums, _mm256_madd_epi16(w.scales[c], pairs));
        }
        fmadd_sums(acc, a.d * w.d, sums)
    }

    /// Returns the dot product of a Q3_K row with a Q8_K row.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn q3_k_q8_k(w: &[BlockQ3K], a: &[BlockQ8K]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (w, a) in w.iter().zip(a) {
            acc = add_block(acc, &decode(w), a);
        }
        hsum_float_8(acc)
    }

    /// Returns the dot products of one Q3_K row with four Q8_K rows, decoding each weight
    /// super-block once.
    ///
    /// # Panics
    ///
    /// Panics when an activation row is shorter than the weight row.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn q3_k_q8_k_x4(w: &[BlockQ3K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
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

    /// A decoded super-block with two chunks per 64-byte register: chunk `2 p` in bytes
    /// 0..32 of register `p`, chunk `2 p + 1` in bytes 32..64.
    struct DecodedPairs {
        low: [__m512i; CHUNKS / 2],
        offset: [__m512i; CHUNKS / 2],
        scales: [__m512i; CHUNKS / 2],
        d: f32,
    }

    /// Joins two 32-byte registers into one 64-byte register, `low` first.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    #[inline]
    fn join(low: __m256i, high: __m256i) -> __m512i {
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low), high)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    #[inline]
    fn decode_pairs(w: &BlockQ3K) -> DecodedPairs {
        let decoded = decode(w);
        let pair = |v: &[__m256i; CHUNKS]| -> [__m512i; CHUNKS / 2] {
            std::array::from_fn(|p| join(v[2 * p], v[2 * p + 1]))
        };
        DecodedPairs {
            low: pair(&decoded.low),
            offset: pair(&decoded.offset),
            scales: pair(&decoded.scales),
            d: decoded.d,
        }
    }

    /// Adds one super-block's term to `acc` and returns it, two chunks per instruction.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    #[inline]
    fn add_block_pairs(acc: __m256, w: &DecodedPairs, a: &BlockQ8K) -> __m256 {
        let mut sums = _mm512_setzero_si512();
        for p in 0..CHUNKS / 2 {
            let q8: &[i8; 2 * CHUNK] = a.qs[2 * CHUNK * p..][..2 * CHUNK]
                .try_into()
                .expect("64 bytes");
            // SAFETY: `q8` is 64 readable bytes; the load has no alignment requirement.
            let q8 = unsafe { _mm512_loadu_si512(q8.as_ptr().cast()) };
            let pairs = _mm512_sub_epi16(
                _mm512_maddubs_epi16(w.low[p], q8),
                _mm512_maddubs_epi16(w.offset[p], q8),
            );
            sums = _mm512_add_epi32(sums, _mm512_madd_epi16(w.scales[p], pairs));
        }

        // Lane k of chunk 2 p is i32 lane k, lane k of chunk 2 p + 1 is i32 lane 8 + k, so
        // adding the two halves gives the AVX2 kernel's exact lane sums.
        let sums = _mm256_add_epi32(
            _mm512_castsi512_si256(sums),
            _mm512_extracti64x4_epi64::<1>(sums),
        );
        fmadd_sums(acc, a.d * w.d, sums)
    }

    /// Returns the dot product of a Q3_K row with a Q8_K row, with 64-byte registers.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    pub(crate) fn q3_k_q8_k_avx512(w: &[BlockQ3K], a: &[BlockQ8K]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (w, a) in w.iter().zip(a) {
            acc = add_block_pairs(acc, &decode_pairs(w), a);
        }
        hsum_float_8(acc)
    }

    /// [`q3_k_q8_k_x4`] with 64-byte registers.
    ///
    /// # Panics
    ///
    /// Panics when an activation row is shorter than the weight row.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    pub(crate) fn q3_k_q8_k_x4_avx512(w: &[BlockQ3K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
        let mut acc = [_mm256_setzero_ps(); 4];
        for (i, w) in w.iter().enumerate() {
            let decoded = decode_pairs(w);
            for k in 0..4 {
                acc[k] = add_block_pairs(acc[k], &decoded, &a[k][i]);
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
