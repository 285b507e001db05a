//! `ggml_vec_dot_iq4_xs_q8_K` in the float order of ggml's x86-64 build.
//!
//! IQ4_XS maps 4-bit indices through the signed IQ4_NL code book and scales each group of
//! 32 by a signed 6-bit scale. The AVX2 branch of llama.cpp b11312 (compiled in its
//! AVX-512 build) multiplies `|x|` by `qs` carrying the sign of `x`. That is `vpsignb`, so
//! a `qs` of -128 stays -128. It sums `scale * x * qs` exactly in eight i32 lanes, element
//! `e` in lane `(e % 32) / 4`, and adds them once per super-block with a fused
//! multiply-add by `d = d_w * d_a`. The lanes are summed as `hsum_float_8` at the end.

use crate::blocks::{BlockIQ4XS, BlockQ8K, KVALUES_IQ4NL};
use crate::dot::scalar::fp16;
use crate::ggml_cpu::vec_dot_lanes::{fmadd_lanes, hsum_float_8, lane_of, Lanes, CHUNK, LANES};

/// Bias of the 6-bit scales: stored 0..=63 means -32..=31.
const SCALE_BIAS: i16 = 32;

/// Returns the scale of 32-element group `ib`, bias removed: its low 4 bits are nibble
/// `ib % 2` of `scales_l[ib / 2]`, its top 2 bits are bits `2 ib` of `scales_h`.
#[inline]
fn group_scale(w: &BlockIQ4XS, ib: usize) -> i16 {
    let low = (w.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
    let high = ((w.scales_h >> (2 * ib)) & 3) as u8;
    i16::from(low | (high << 4)) - SCALE_BIAS
}

/// Returns the code book value of element `j` of group `ib`: elements 0..16 of a group are
/// the low nibbles of its 16 bytes, elements 16..32 the high nibbles.
#[inline]
fn code(w: &BlockIQ4XS, ib: usize, j: usize) -> i8 {
    let byte = w.qs[16 * ib + j % 16];
    KVALUES_IQ4NL[usize::from((byte >> (4 * (j / 16))) & 0x0F)]
}

/// Returns `x * y` as `vpmaddubsw(vpsignb(x, x), vpsignb(y, x))` computes it: `|x|` times
/// `y` with the sign of `x`, where negating -128 wraps to -128.
#[inline]
fn sign_trick_product(x: i8, y: i8) -> i32 {
    let signed_y = match x.signum() {
        -1 => y.wrapping_neg(),
        0 => 0,
        _ => y,
    };
    i32::from(x.unsigned_abs()) * i32::from(signed_y)
}

/// Returns the dot product of an IQ4_XS row with a Q8_K row in ggml's float order.
pub(crate) fn iq4_xs_q8_k(w: &[BlockIQ4XS], a: &[BlockQ8K]) -> f32 {
    let mut acc: Lanes = [0.0; LANES];

    for (w, a) in w.iter().zip(a) {
        let mut sums = [0i32; LANES];
        for (e, &q8) in a.qs.iter().enumerate() {
            let (ib, j) = (e / CHUNK, e % CHUNK);
            let product = sign_trick_product(code(w, ib, j), q8);
            sums[lane_of(e)] += i32::from(group_scale(w, ib)) * product;
        }
        fmadd_lanes(&mut acc, fp16(w.d) * a.d, &sums);
    }

    hsum_float_8(&acc)
}

/// AVX2 and AVX-512 versions, bit-identical to the scalar one above.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    use super::group_scale;
    use crate::blocks::{BlockIQ4XS, BlockQ8K, KVALUES_IQ4NL};
    use crate::ggml_cpu::vec_dot_lanes::x86::{
        fmadd_sums, fp16, hsum_float_8, load_i8x32, nibbles,
    };
    use crate::ggml_cpu::vec_dot_lanes::CHUNK;

    /// 32-element groups per super-block.
    const GROUPS: usize = 8;

    /// One IQ4_XS super-block, decoded once for any number of activation rows.
    struct Decoded {
        /// Code book values, whose signs move onto the activations.
        codes: [__m256i; GROUPS],
        /// `|codes|`, unsigned for `vpmaddubsw`.
        magnitudes: [__m256i; GROUPS],
        /// Each group's scale in all 16 i16.
        scales: [__m256i; GROUPS],
        d: f32,
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn decode(w: &BlockIQ4XS) -> Decoded {
        // SAFETY: the table is 16 readable bytes; the load has no alignment requirement.
        let table = unsafe { _mm_loadu_si128(KVALUES_IQ4NL.as_ptr().cast()) };
        let table = _mm256_set_m128i(table, table);

        let codes: [__m256i; GROUPS] =
            std::array::from_fn(|ib| _mm256_shuffle_epi8(table, nibbles(&w.qs[16 * ib..])));
        let magnitudes = codes.map(|c| _mm256_sign_epi8(c, c));
        let scales = std::array::from_fn(|ib| _mm256_set1_epi16(group_scale(w, ib)));

        Decoded {
            codes,
            magnitudes,
            scales,
            d: fp16(w.d),
        }
    }

    /// Adds one super-block's term to `acc` and returns it.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn add_block(acc: __m256, w: &Decoded, a: &BlockQ8K) -> __m256 {
        let mut sums = _mm256_setzero_si256();
        for ib in 0..GROUPS {
            let signed = _mm256_sign_epi8(load_i8x32(&a.qs[CHUNK * ib..]), w.codes[ib]);
            // |code| <= 127 and |qs| <= 128 keep a pair at most 32,512: no saturation.
            let pairs = _mm256_maddubs_epi16(w.magnitudes[ib], signed);
            sums = _mm256_add_epi32(sums, _mm256_madd_epi16(pairs, w.scales[ib]));
        }
        fmadd_sums(acc, w.d * a.d, sums)
    }

    /// Returns the dot product of an IQ4_XS row with a Q8_K row.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn iq4_xs_q8_k(w: &[BlockIQ4XS], a: &[BlockQ8K]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (w, a) in w.iter().zip(a) {
            acc = add_block(acc, &decode(w), a);
        }
        hsum_float_8(acc)
    }

    /// Returns the dot products of one IQ4_XS row with four Q8_K rows, decoding each
    /// weight super-block once.
    ///
    /// # Panics
    ///
    /// Panics when an activation row is shorter than the weight row.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn iq4_xs_q8_k_x4(w: &[BlockIQ4XS], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
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

    /// A decoded super-block with two groups per 64-byte register: group `2 p` in bytes
    /// 0..32 of register `p`, group `2 p + 1` in bytes 32..64.
    struct DecodedPairs {
        /// Bit `i` set where byte `i` of the codes is negative.
        negative: [__mmask64; GROUPS / 2],
        magnitudes: [__m512i; GROUPS / 2],
        scales: [__m512i; GROUPS / 2],
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
    fn decode_pairs(w: &BlockIQ4XS) -> DecodedPairs {
        let decoded = decode(w);
        let pair = |v: &[__m256i; GROUPS]| -> [__m512i; GROUPS / 2] {
            std::array::from_fn(|p| join(v[2 * p], v[2 * p + 1]))
        };
        DecodedPairs {
            negative: pair(&decoded.codes).map(|c| _mm512_movepi8_mask(c)),
            magnitudes: pair(&decoded.magnitudes),
            scales: pair(&decoded.scales),
            d: decoded.d,
        }
    }

    /// Adds one super-block's term to `acc` and returns it, two groups per instruction.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    #[inline]
    fn add_block_pairs(acc: __m256, w: &DecodedPairs, a: &BlockQ8K) -> __m256 {
        let mut sums = _mm512_setzero_si512();
        for p in 0..GROUPS / 2 {
            let q8: &[i8; 2 * CHUNK] = a.qs[2 * CHUNK * p..][..2 * CHUNK]
                .try_into()
                .expect("64 bytes");
            // SAFETY: `q8` is 64 readable bytes; the load has no alignment requirement.
            let q8 = unsafe { _mm512_loadu_si512(q8.as_ptr().cast()) };
            // AVX-512 has no `vpsignb`: negate where the code is negative, wrapping -128 to
            // -128 as `vpsignb` does. Where the code is 0 its magnitude zeroes the product.
            let signed = _mm512_mask_sub_epi8(q8, w.negative[p], _mm512_setzero_si512(), q8);
            let pairs = _mm512_maddubs_epi16(w.magnitudes[p], signed);
            sums = _mm512_add_epi32(sums, _mm512_madd_epi16(pairs, w.scales[p]));
        }

        // Lane k of group 2 p is i32 lane k, lane k of group 2 p + 1 is i32 lane 8 + k, so
        // adding the two halves gives the AVX2 kernel's exact lane sums.
        let sums = _mm256_add_epi32(
            _mm512_castsi512_si256(sums),
            _mm512_extracti64x4_epi64::<1>(sums),
        );
        fmadd_sums(acc, w.d * a.d, sums)
    }

    /// Returns the dot product of an IQ4_XS row with a Q8_K row, with 64-byte registers.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    pub(crate) fn iq4_xs_q8_k_avx512(w: &[BlockIQ4XS], a: &[BlockQ8K]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (w, a) in w.iter().zip(a) {
            acc = add_block_pairs(acc, &decode_pairs(w), a);
        }
        hsum_float_8(acc)
    }

    /// [`iq4_xs_q8_k_x4`] with 64-byte registers.
    ///
    /// # Panics
    ///
    /// Panics when an activation row is shorter than the weight row.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    pub(crate) fn iq4_xs_q8_k_x4_avx512(w: &[BlockIQ4XS], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
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
