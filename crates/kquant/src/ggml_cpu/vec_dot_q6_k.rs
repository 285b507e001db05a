//! Q6_K x Q8_K in the float order of ggml's `ggml_vec_dot_q6_K_q8_K` on x86-64.
//!
//! llama.cpp b11312 compiles the `__AVX2__` branch of that kernel on every AVX2 or AVX-512
//! build. It keeps 8 i32 lanes per super-block, one per 4-byte column of a 32-byte
//! register: lane `k` sums `scale * q * a` over the elements whose index modulo 32 lies in
//! `4k..4k + 4`, with the unsigned codes `q` in `0..64`. The code offset of 32 is removed
//! afterwards, in the same lane layout but by element ranges: lane `k` subtracts
//! `32 * (sc[2k] * bsums[2k] + sc[2k + 1] * bsums[2k + 1])`, the offset of elements
//! `32k..32k + 32`. All of that is exact integer arithmetic. The float steps are:
//!
//! 1. `d = a.d * fp16(w.d)`, rounded to f32, per super-block;
//! 2. `acc[k] = fma(d, f32(lanes[k]), acc[k])` for the 8 lanes;
//! 3. after the last super-block, [`hsum_float_8`] of `acc`.
//!
//! [`hsum_float_8`] and [`LANES`] are shared with the Q4_K and Q5_K kernels, which keep the
//! same 8-lane accumulator.

use crate::blocks::{BlockQ6K, BlockQ8K, QK_K};
use crate::dot::scalar::fp16;

/// i32 (and f32) lanes of the 256-bit registers ggml's AVX2 kernels accumulate in.
pub(super) const LANES: usize = 8;

/// Bytes of one AVX2 register: the elements one `vpmaddubsw` multiplies at a time.
pub(super) const CHUNK: usize = 32;

/// Elements that share one Q6_K scale (and one Q8_K `bsums` entry).
const GROUP: usize = 16;

/// Offset of the stored Q6_K codes: a stored code `q` in `0..64` means `q - 32`.
const CODE_OFFSET: i32 = 32;

/// Sums eight f32 lanes in the order of ggml's `hsum_float_8`: upper half plus lower half,
/// then lanes 2 and 3 onto 0 and 1, then lane 1 onto lane 0.
#[inline]
pub(super) fn hsum_float_8(acc: [f32; LANES]) -> f32 {
    let quad = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    let pair = [quad[0] + quad[2], quad[1] + quad[3]];
    pair[0] + pair[1]
}

/// Returns the unsigned 6-bit code (`0..64`) of element `e` of a Q6_K block.
///
/// Element `128 h + 32 k + l` takes its low nibble from `ql[64 h + 32 (k % 2) + l]` (the
/// high nibble for `k >= 2`) and its top two bits from `qh[32 h + l]` at bit `2 k`.
#[inline]
fn code(w: &BlockQ6K, e: usize) -> i32 {
    let (h, k, l) = (e / 128, (e % 128) / CHUNK, e % CHUNK);
    let low = (w.ql[64 * h + CHUNK * (k % 2) + l] >> (4 * (k / 2))) & 0x0F;
    let high = (w.qh[CHUNK * h + l] >> (2 * k)) & 3;
    i32::from(low | (high << 4))
}

/// Returns the 8 exact i32 lane sums of one super-block, offset already removed.
fn block_lanes(w: &BlockQ6K, a: &BlockQ8K) -> [i32; LANES] {
    let mut lanes = [0i32; LANES];
    for e in 0..QK_K {
        let lane = (e % CHUNK) / 4;
        lanes[lane] += i32::from(w.scales[e / GROUP]) * code(w, e) * i32::from(a.qs[e]);
    }

    for (k, lane) in lanes.iter_mut().enumerate() {
        let offset: i32 = (2 * k..2 * k + 2)
            .map(|g| i32::from(w.scales[g]) * i32::from(a.bsums[g]))
            .sum();
        *lane -= CODE_OFFSET * offset;
    }
    lanes
}

/// Returns the exact integer dot product of one super-block, code offset included.
pub(super) fn block_sum(w: &BlockQ6K, a: &BlockQ8K) -> i32 {
    block_lanes(w, a).iter().sum()
}

/// Computes the dot product of a Q6_K row and a Q8_K row with ggml's float order, in
/// portable Rust (`f32::mul_add` for each fused multiply-add).
pub(crate) fn q6_k_q8_k(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut acc = [0.0f32; LANES];
    for (w, a) in w.iter().zip(a) {
        let d = a.d * fp16(w.d);
        let lanes = block_lanes(w, a);
        for (acc, &lane) in acc.iter_mut().zip(&lanes) {
            *acc = d.mul_add(lane as f32, *acc);
        }
    }
    hsum_float_8(acc)
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{q6_k_q8_k_avx2, q6_k_q8_k_avx512, q6_k_q8_k_x4_avx2, q6_k_q8_k_x4_avx512};

#[cfg(target_arch = "x86_64")]
pub(super) use x86::{horizontal_sums_x4, hsum_float_8_avx2, scaled_chunk, tiled_sums_x4_avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::CHUNK;
    use crate::blocks::{BlockQ6K, BlockQ8K};
    use crate::dot::scalar::fp16;

    /// Sums the eight lanes of `acc` as [`super::hsum_float_8`] does.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(in crate::ggml_cpu) unsafe fn hsum_float_8_avx2(acc: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_extractf128_ps::<1>(acc), _mm256_castps256_ps128(acc));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
    }

    /// Multiplies 32 unsigned codes by 32 signed activations and sums them with i16
    /// `scales` in ggml's lane layout: i32 lane `k` gets the four products of bytes
    /// `4k..4k + 4`, each pair weighted by the scale of its i16 position.
    ///
    /// Callers pass codes in `0..64`, so the i16 pair sums of `vpmaddubsw` never saturate:
    /// with activations in `-128..=127` a pair is at most 2 * 63 * 128 = 16128 in magnitude.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(in crate::ggml_cpu) unsafe fn scaled_chunk(
        codes: __m256i,
        act: __m256i,
        scales: __m256i,
    ) -> __m256i {
        _mm256_madd_epi16(scales, _mm256_maddubs_epi16(codes, act))
    }

    /// Loads 32 bytes starting at `bytes[0]`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load(bytes: &[u8]) -> __m256i {
        assert!(bytes.len() >= CHUNK);
        _mm256_loadu_si256(bytes.as_ptr().cast())
    }

    /// Loads 32 signed bytes starting at `bytes[0]`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load_i8(bytes: &[i8]) -> __m256i {
        assert!(bytes.len() >= CHUNK);
        _mm256_loadu_si256(bytes.as_ptr().cast())
    }

    /// One Q6_K super-block decoded for `vpmaddubsw`: codes `0..64` of the 8 chunks of 32
    /// elements, and per chunk the i16 scales of its 16 byte pairs.
    struct Decoded {
        codes: [__m256i; 8],
        scales: [__m256i; 8],
        /// `sc[g]` as i16, for the offset term.
        scales_16: __m256i,
        d: f32,
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn decode(w: &BlockQ6K) -> Decoded {
        let low_mask = _mm256_set1_epi8(0x0F);
        let scales_8 = _mm_loadu_si128(w.scales.as_ptr().cast());

        let mut codes = [_mm256_setzero_si256(); 8];
        for h in 0..2 {
            let ql_even = load(&w.ql[64 * h..]);
            let ql_odd = load(&w.ql[64 * h + CHUNK..]);
            let qh = load(&w.qh[CHUNK * h..]);

            let high = [
                _mm256_slli_epi16::<4>(_mm256_and_si256(qh, _mm256_set1_epi8(3))),
                _mm256_slli_epi16::<2>(_mm256_and_si256(qh, _mm256_set1_epi8(12))),
                _mm256_and_si256(qh, _mm256_set1_epi8(48)),
                _mm256_srli_epi16::<2>(_mm256_and_si256(qh, _mm256_set1_epi8(-64))),
            ];
            let low = [
                _mm256_and_si256(ql_even, low_mask),
                _mm256_and_si256(ql_odd, low_mask),
                _mm256_and_si256(_mm256_srli_epi16::<4>(ql_even), low_mask),
                _mm256_and_si256(_mm256_srli_epi16::<4>(ql_odd), low_mask),
            ];
            for k in 0..4 {
                codes[4 * h + k] = _mm256_or_si256(low[k], high[k]);
            }
        }

        // Chunk c covers groups 2c and 2c + 1: bytes 0..16 of the chunk take sc[2c], bytes
        // 16..32 take sc[2c + 1], which is what ggml's `get_scale_shuffle` selects.
        let mut scales = [_mm256_setzero_si256(); 8];
        for (c, scale) in scales.iter_mut().enumerate() {
            let low_group = 0x0101_0101_0101_0101_i64 * (2 * c as i64);
            let high_group = 0x0101_0101_0101_0101_i64 * (2 * c as i64 + 1);
            let picked = _mm_shuffle_epi8(scales_8, _mm_set_epi64x(high_group, low_group));
            *scale = _mm256_cvtepi8_epi16(picked);
        }

        Decoded {
            codes,
            scales,
            scales_16: _mm256_cvtepi8_epi16(scales_8),
            d: fp16(w.d),
        }
    }

    /// Returns the 8 exact lane sums of a decoded block against `a`, offset removed.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn lanes(w: &Decoded, a: &BlockQ8K) -> __m256i {
        let mut sumi = _mm256_setzero_si256();
        for c in 0..8 {
            let act = load_i8(&a.qs[CHUNK * c..]);
            sumi = _mm256_add_epi32(sumi, scaled_chunk(w.codes[c], act, w.scales[c]));
        }

        // Lane k: 32 * (sc[2k] * bsums[2k] + sc[2k + 1] * bsums[2k + 1]).
        let bsums = _mm256_loadu_si256(a.bsums.as_ptr().cast());
        let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(bsums, w.scales_16));
        _mm256_sub_epi32(sumi, offset)
    }

    /// Computes the dot product of a Q6_K row and a Q8_K row with ggml's float order.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2 and FMA, and `a` has at least as many blocks as `w`.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn q6_k_q8_k_avx2(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (w, a) in w.iter().zip(a) {
            let decoded = decode(w);
            let d = _mm256_set1_ps(a.d * decoded.d);
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(lanes(&decoded, a)), acc);
        }
        hsum_float_8_avx2(acc)
    }

    /// Computes [`q6_k_q8_k_avx2`] for four activation rows, decoding each weight block once.
    ///
    /// # Safety
    ///
    /// As [`q6_k_q8_k_avx2`], for every row of `a`.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn q6_k_q8_k_x4_avx2(w: &[BlockQ6K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
        let mut acc = [_mm256_setzero_ps(); 4];
        for (i, w) in w.iter().enumerate() {
            let decoded = decode(w);
            for (acc, a) in acc.iter_mut().zip(a) {
                let a = &a[i];
                let d = _mm256_set1_ps(a.d * decoded.d);
                *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(lanes(&decoded, a)), *acc);
            }
        }
        acc.map(|acc| hsum_float_8_avx2(acc))
    }

    /// Returns the i16 lane indices that spread four consecutive scales over a 512-bit
    /// register, eight copies each: `index[m] = first + m / 8`.
    const fn scale_index(first: i16) -> [i16; 32] {
        let mut index = [0i16; 32];
        let mut m = 0;
        while m < 32 {
            index[m] = first + (m / 8) as i16;
            m += 1;
        }
        index
    }

    /// `vpermw` indices for chunk pairs 0..4: pair `p` covers groups `4p..4p + 4`.
    static PAIR_SCALE_INDEX: [[i16; 32]; 4] = [
        scale_index(0),
        scale_index(4),
        scale_index(8),
        scale_index(12),
    ];

    /// One Q6_K super-block decoded for 512-bit `vpmaddubsw`: entry `p` holds chunks `2p`
    /// (low 256 bits) and `2p + 1` (high 256 bits), which are adjacent in the activations.
    struct Decoded512 {
        codes: [__m512i; 4],
        scales: [__m512i; 4],
        /// `sc[g]` as i16, for the offset term.
        scales_16: __m256i,
        d: f32,
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    #[inline]
    unsafe fn decode_512(w: &BlockQ6K) -> Decoded512 {
        let low_mask = _mm512_set1_epi8(0x0F);
        let scales_16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.scales.as_ptr().cast()));

        let mut codes = [_mm512_setzero_si512(); 4];
        for h in 0..2 {
            let ql = _mm512_loadu_si512(w.ql[64 * h..64 * h + 64].as_ptr().cast());
            let qh = load(&w.qh[CHUNK * h..]);

            // The high half contains qh shifted right by 2, so one mask serves both chunks of a pair:
            // bits 0-1 and 2-3 for chunks 4h and 4h + 1, bits 4-5 and 6-7 for 4h + 2, 4h + 3.
            let qh_pair =
                _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qh), _mm256_srli_epi16::<2>(qh));
            let high_01 = _mm512_slli_epi16::<4>(_mm512_and_si512(qh_pair, _mm512_set1_epi8(3)));
            let high_23 = _mm512_and_si512(qh_pair, _mm512_set1_epi8(48));

            codes[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, low_mask), high_01);
            codes[2 * h + 1] = _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi16::<4>(ql), low_mask),
                high_23,
            );
        }

        let wide_scales = _mm512_castsi256_si512(scales_16);
        let scales = PAIR_SCALE_INDEX.map(|index| {
            _mm512_permutexvar_epi16(_mm512_loadu_si512(index.as_ptr().cast()), wide_scales)
        });

        Decoded512 {
            codes,
            scales,
            scales_16,
            d: fp16(w.d),
        }
    }

    /// Returns the same 8 lane sums as [`lanes`], from 512-bit products folded in half.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    #[inline]
    unsafe fn lanes_512(w: &Decoded512, a: &BlockQ8K) -> __m256i {
        let mut sumi = _mm512_setzero_si512();
        for p in 0..4 {
            let act = _mm512_loadu_si512(a.qs[2 * CHUNK * p..2 * CHUNK * (p + 1)].as_ptr().cast());
            let products = _mm512_madd_epi16(w.scales[p], _mm512_maddubs_epi16(w.codes[p], act));
            sumi = _mm512_add_epi32(sumi, products);
        }
        let folded = _mm256_add_epi32(
            _mm512_castsi512_si256(sumi),
            _mm512_extracti64x4_epi64::<1>(sumi),
        );

        let bsums = _mm256_loadu_si256(a.bsums.as_ptr().cast());
        let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(bsums, w.scales_16));
        _mm256_sub_epi32(folded, offset)
    }

    /// Returns, for each of four activation blocks, the exact integer dot product of `w`
    /// with it, code offset included, and 0 for the absent min term.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    pub(in crate::ggml_cpu) unsafe fn tiled_sums_x4_avx512(
        w: &BlockQ6K,
        a: [&BlockQ8K; 4],
    ) -> [(i32, i32); 4] {
        let decoded = decode_512(w);
        let lanes = [
            lanes_512(&decoded, a[0]),
            lanes_512(&decoded, a[1]),
            lanes_512(&decoded, a[2]),
            lanes_512(&decoded, a[3]),
        ];
        horizontal_sums_x4(lanes).map(|sum| (sum, 0))
    }

    /// Adds the eight i32 lanes of each of four registers, in five instructions for all
    /// four. The K-quant lanes stay below 2^26 in magnitude (Q6_K's largest: 32 products of
    /// at most 128 * 63 * 127, plus the code offset), so the sums cannot overflow and are
    /// exact in any order.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(in crate::ggml_cpu) unsafe fn horizontal_sums_x4(lanes: [__m256i; 4]) -> [i32; 4] {
        let pairs_01 = _mm256_hadd_epi32(lanes[0], lanes[1]);
        let pairs_23 = _mm256_hadd_epi32(lanes[2], lanes[3]);
        let quads = _mm256_hadd_epi32(pairs_01, pairs_23);
        let sums = _mm_add_epi32(_mm256_castsi256_si128(quads), _mm256_extracti128_si256::<1>(quads));

        let mut out = [0i32; 4];
        _mm_storeu_si128(out.as_mut_ptr().cast(), sums);
        out
    }

    /// Computes [`q6_k_q8_k_avx2`]'s result, bit for bit, with 512-bit integer products.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2, FMA, AVX-512 F and BW, and `a` has at least as many blocks
    /// as `w`.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    pub(crate) unsafe fn q6_k_q8_k_avx512(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (w, a) in w.iter().zip(a) {
            let decoded = decode_512(w);
            let d = _mm256_set1_ps(a.d * decoded.d);
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(lanes_512(&decoded, a)), acc);
        }
        hsum_float_8_avx2(acc)
    }

    /// Computes [`q6_k_q8_k_avx512`] for four activation rows, decoding each weight block
    /// once.
    ///
    /// # Safety
    ///
    /// As [`q6_k_q8_k_avx512`], for every row of `a`.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw")]
    pub(crate) unsafe fn q6_k_q8_k_x4_avx512(w: &[BlockQ6K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
        let mut acc = [_mm256_setzero_ps(); 4];
        for (i, w) in w.iter().enumerate() {
            let decoded = decode_512(w);
            for (acc, a) in acc.iter_mut().zip(a) {
                let a = &a[i];
                let d = _mm256_set1_ps(a.d * decoded.d);
                *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(lanes_512(&decoded, a)), *acc);
            }
        }
        acc.map(|acc| hsum_float_8_avx2(acc))
    }
}
