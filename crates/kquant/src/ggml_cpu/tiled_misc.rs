//! Q3_K, IQ4_XS and Q2_K x Q8_K in the float order of ggml's tiled K-quant matmul.
//!
//! llama.cpp b11312 runs these types through the same tiled kernel as Q4_K, Q5_K and Q6_K
//! (see [`super::tiled_k`]), with its AVX-512 VNNI micro-kernel. That kernel widens every
//! weight code to an unsigned byte (`code + BIAS`), multiplies it exactly with the Q8_K
//! codes, takes `BIAS * bsums` back off, and multiplies the group scales in, all in i32. So
//! each super-block gives the exact sums
//!
//! - Q3_K: `s1 = sum(scale * (q - 4) * qs)`, with `q` the two low bits plus the `hmask` bit
//!   and `scale` the 6-bit group scale minus 32 (16 groups of 16);
//! - IQ4_XS: `s1 = sum(scale * kvalues_iq4nl[q] * qs)`, with `scale` the 6-bit group scale
//!   minus 32 (8 groups of 32). The products are exact: unlike `ggml_vec_dot_iq4_xs_q8_K`,
//!   the tiled kernel has no sign trick that could wrap a Q8_K code of -128;
//! - Q2_K: `s1 = sum(scale * q * qs)` and `s2 = sum(min * bsums)`, with `scale` and `min`
//!   the low and high nibble of each group byte (16 groups of 16).
//!
//! The float steps are the ones [`super::tiled_k`] describes. The disassembly of the GCC
//! build shows the same instructions for these three instantiations: `vmulps`, then
//! `vfnmadd132ps` for Q2_K's min term, then `vfmadd213ps` into the output.
//!
//! The tiled path quantizes the f32 activations with `quantize_row_q8_K`, the Q8_K
//! `from_float` of ggml's CPU type traits, as the vec-dot path does. On the golden
//! activations its bytes equal those of `quantize_row_q8_K_ref`, so
//! [`QuantizedActivations`](crate::matmul::QuantizedActivations) feeds both paths.
//!
//! Both the portable and the AVX-512 code below first decode a super-block into 256 i16
//! values `scale * code`, which fit easily (at most 127 * 32 in magnitude), and then sum
//! their exact products with the Q8_K codes.

use crate::blocks::{BlockIQ4XS, BlockQ2K, BlockQ3K, BlockQ8K, KVALUES_IQ4NL, QK_K};
use crate::dot::scalar::fp16;
use crate::ggml_cpu::tiled_k::TiledK;
use crate::ggml_cpu::vec_dot_q2_k::{two_bit_code, GROUP};
use crate::ggml_cpu::vec_dot_q3_k::group_scales;

/// Offset a clear `hmask` bit subtracts from a Q3_K code.
const Q3_K_LOW_OFFSET: i16 = 4;

/// Bias of IQ4_XS's 6-bit group scales: stored 0..=63 means -32..=31.
const IQ4_XS_SCALE_BIAS: i16 = 32;

/// Elements per IQ4_XS group scale.
const IQ4_XS_GROUP: usize = 32;

/// A super-block decoded into `scale * code` per element.
type Scaled = [i16; QK_K];

/// Decodes a Q3_K super-block into `scale * (q - 4)` per element.
fn scaled_q3_k(w: &BlockQ3K) -> Scaled {
    let scales = group_scales(&w.scales);
    std::array::from_fn(|e| {
        // Bit `e / 32` of `hmask[e % 32]` is the high bit of element `e`.
        let high_set = (w.hmask[e % 32] >> (e / 32)) & 1 == 1;
        let offset = if high_set { 0 } else { Q3_K_LOW_OFFSET };
        let code = i16::from(two_bit_code(&w.qs, e)) - offset;
        i16::from(scales[e / GROUP]) * code
    })
}

/// Returns the scale of IQ4_XS group `ib`, bias removed: its low 4 bits are nibble `ib % 2`
/// of `scales_l[ib / 2]`, its top 2 bits are bits `2 ib` of `scales_h`.
fn iq4_xs_scale(w: &BlockIQ4XS, ib: usize) -> i16 {
    let low = (w.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
    let high = ((w.scales_h >> (2 * ib)) & 3) as u8;
    i16::from(low | (high << 4)) - IQ4_XS_SCALE_BIAS
}

/// Decodes an IQ4_XS super-block into `scale * kvalues_iq4nl[q]` per element. Elements
/// 0..16 of group `ib` are the low nibbles of `qs[16 ib..16 ib + 16]`, elements 16..32 the
/// high nibbles.
fn scaled_iq4_xs(w: &BlockIQ4XS) -> Scaled {
    let scales: [i16; QK_K / IQ4_XS_GROUP] = std::array::from_fn(|ib| iq4_xs_scale(w, ib));
    std::array::from_fn(|e| {
        let (ib, j) = (e / IQ4_XS_GROUP, e % IQ4_XS_GROUP);
        let byte = w.qs[16 * ib + j % 16];
        let index = usize::from((byte >> (4 * (j / 16))) & 0x0F);
        scales[ib] * i16::from(KVALUES_IQ4NL[index])
    })
}

/// Decodes a Q2_K super-block into `scale * q` per element (the min term is separate).
fn scaled_q2_k(w: &BlockQ2K) -> Scaled {
    std::array::from_fn(|e| {
        let scale = i16::from(w.scales[e / GROUP] & 0x0F);
        scale * i16::from(two_bit_code(&w.qs, e))
    })
}

/// Returns Q2_K's min sum `sum(min * bsums)` of one super-block with `a`.
fn q2_k_min_sum(w: &BlockQ2K, a: &BlockQ8K) -> i32 {
    w.scales
        .iter()
        .zip(&a.bsums)
        .map(|(&packed, &bsum)| i32::from(packed >> 4) * i32::from(bsum))
        .sum()
}

/// Returns the exact sum of `scaled[e] * a.qs[e]`.
fn scaled_sum(scaled: &Scaled, a: &BlockQ8K) -> i32 {
    scaled
        .iter()
        .zip(&a.qs)
        .map(|(&w, &q)| i32::from(w) * i32::from(q))
        .sum()
}

impl TiledK for BlockQ3K {
    const HAS_MIN: bool = false;

    fn scales(&self) -> (f32, f32) {
        (fp16(self.d), 0.0)
    }

    fn sums(&self, a: &BlockQ8K) -> (i32, i32) {
        (scaled_sum(&scaled_q3_k(self), a), 0)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn sums_x4_avx512(&self, a: [&BlockQ8K; 4]) -> [(i32, i32); 4] {
        // SAFETY: the caller guarantees AVX2, AVX-512 F and BW.
        unsafe {
            let scaled = x86::scaled_q3_k(self);
            a.map(|a| (x86::scaled_sum(&scaled, a), 0))
        }
    }
}

impl TiledK for BlockIQ4XS {
    const HAS_MIN: bool = false;

    fn scales(&self) -> (f32, f32) {
        (fp16(self.d), 0.0)
    }

    fn sums(&self, a: &BlockQ8K) -> (i32, i32) {
        (scaled_sum(&scaled_iq4_xs(self), a), 0)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn sums_x4_avx512(&self, a: [&BlockQ8K; 4]) -> [(i32, i32); 4] {
        // SAFETY: the caller guarantees AVX2, AVX-512 F and BW.
        unsafe {
            let scaled = x86::scaled_iq4_xs(self);
            a.map(|a| (x86::scaled_sum(&scaled, a), 0))
        }
    }
}

impl TiledK for BlockQ2K {
    const HAS_MIN: bool = true;

    fn scales(&self) -> (f32, f32) {
        (fp16(self.d), fp16(self.dmin))
    }

    fn sums(&self, a: &BlockQ8K) -> (i32, i32) {
        (scaled_sum(&scaled_q2_k(self), a), q2_k_min_sum(self, a))
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn sums_x4_avx512(&self, a: [&BlockQ8K; 4]) -> [(i32, i32); 4] {
        // SAFETY: the caller guarantees AVX2, AVX-512 F and BW.
        unsafe {
            let scaled = x86::scaled_q2_k(self);
            let mins = x86::q2_k_mins(self);
            a.map(|a| (x86::scaled_sum(&scaled, a), x86::min_sum(mins, a)))
        }
    }
}

/// AVX-512 versions of the decoders and the sum, bit-identical to the portable ones above.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{iq4_xs_scale, Q3_K_LOW_OFFSET};
    use crate::blocks::{BlockIQ4XS, BlockQ2K, BlockQ3K, BlockQ8K, KVALUES_IQ4NL, QK_K};
    use crate::ggml_cpu::vec_dot_lanes::x86::{load_i8x32, load_u8x32};
    use crate::ggml_cpu::vec_dot_q3_k::group_scales;

    /// Elements per chunk: one 256-bit register of i8 codes, one 512-bit register of i16.
    const CHUNK: usize = 32;

    /// Chunks per super-block.
    const CHUNKS: usize = QK_K / CHUNK;

    /// A super-block decoded into `scale * code`, 32 i16 per register, in element order.
    pub(super) type Scaled = [__m512i; CHUNKS];

    /// Returns the four 2-bit planes of 32 packed bytes: plane `k` contains bits `2 k..2 k + 2`
    /// of each byte, which are elements `32 k..32 k + 32` of the 128 the bytes pack.
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    fn two_bit_planes(packed: __m256i) -> [__m256i; 4] {
        let mask = _mm256_set1_epi8(3);
        // The 16-bit shifts move bits across bytes, but only above the 2 bits the mask keeps.
        [
            _mm256_and_si256(packed, mask),
            _mm256_and_si256(_mm256_srli_epi16::<2>(packed), mask),
            _mm256_and_si256(_mm256_srli_epi16::<4>(packed), mask),
            _mm256_and_si256(_mm256_srli_epi16::<6>(packed), mask),
        ]
    }

    /// Returns the 2-bit codes of a Q2_K or Q3_K super-block, 32 per chunk.
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    fn two_bit_codes(qs: &[u8; QK_K / 4]) -> [__m256i; CHUNKS] {
        let first = two_bit_planes(load_u8x32(&qs[..CHUNK]));
        let second = two_bit_planes(load_u8x32(&qs[CHUNK..]));
        [
            first[0], first[1], first[2], first[3], second[0], second[1], second[2], second[3],
        ]
    }

    /// Multiplies i8 codes by per-16 scales: chunk `c` takes `scales[2 c]` for its first 16
    /// elements and `scales[2 c + 1]` for the rest.
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    fn scale_codes(codes: [__m256i; CHUNKS], scales: [i16; 2 * CHUNKS]) -> Scaled {
        std::array::from_fn(|c| {
            let low = _mm256_set1_epi16(scales[2 * c]);
            let high = _mm256_set1_epi16(scales[2 * c + 1]);
            let scale = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low), high);
            _mm512_mullo_epi16(_mm512_cvtepi8_epi16(codes[c]), scale)
        })
    }

    /// Decodes a Q3_K super-block, as [`super::scaled_q3_k`] does.
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    pub(super) fn scaled_q3_k(w: &BlockQ3K) -> Scaled {
        let low = two_bit_codes(&w.qs);
        let hmask = load_u8x32(&w.hmask);
        let one = _mm256_set1_epi8(1);
        let offset = _mm256_set1_epi8(Q3_K_LOW_OFFSET as i8);

        // Chunk c takes its high bits from bit c of each hmask byte. A set bit adds 4.
        let codes = std::array::from_fn(|c| {
            let shift = _mm_cvtsi32_si128(c as i32);
            let high = _mm256_and_si256(_mm256_srl_epi16(hmask, shift), one);
            let high = _mm256_slli_epi16::<2>(high);
            _mm256_sub_epi8(_mm256_add_epi8(low[c], high), offset)
        });
        scale_codes(codes, group_scales(&w.scales).map(i16::from))
    }

    /// Decodes a Q2_K super-block, as [`super::scaled_q2_k`] does.
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    pub(super) fn scaled_q2_k(w: &BlockQ2K) -> Scaled {
        let scales = w.scales.map(|packed| i16::from(packed & 0x0F));
        scale_codes(two_bit_codes(&w.qs), scales)
    }

    /// Returns the 16 group mins of a Q2_K super-block as i16.
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    pub(super) fn q2_k_mins(w: &BlockQ2K) -> __m256i {
        // SAFETY: `scales` is 16 readable bytes; the load has no alignment requirement.
        let packed = unsafe { _mm_loadu_si128(w.scales.as_ptr().cast()) };
        _mm256_cvtepu8_epi16(_mm_and_si128(
            _mm_srli_epi16::<4>(packed),
            _mm_set1_epi8(0x0F),
        ))
    }

    /// Returns Q2_K's min sum `sum(min * bsums)`, as [`super::q2_k_min_sum`] does.
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    pub(super) fn min_sum(mins: __m256i, a: &BlockQ8K) -> i32 {
        // SAFETY: `bsums` is 16 i16, 32 readable bytes; the load has no alignment requirement.
        let bsums = unsafe { _mm256_loadu_si256(a.bsums.as_ptr().cast()) };
        let pairs = _mm256_madd_epi16(mins, bsums);
        let quad = _mm_add_epi32(
            _mm256_castsi256_si128(pairs),
            _mm256_extracti128_si256::<1>(pairs),
        );
        let pair = _mm_add_epi32(quad, _mm_unpackhi_epi64(quad, quad));
        _mm_cvtsi128_si32(_mm_add_epi32(pair, _mm_srli_epi64::<32>(pair)))
    }

    /// Decodes an IQ4_XS super-block, as [`super::scaled_iq4_xs`] does.
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    pub(super) fn scaled_iq4_xs(w: &BlockIQ4XS) -> Scaled {
        let table: [u8; 16] = KVALUES_IQ4NL.map(|v| v as u8);
        // SAFETY: `table` is 16 readable bytes; the load has no alignment requirement.
        let table = unsafe { _mm_loadu_si128(table.as_ptr().cast()) };
        let table = _mm256_broadcastsi128_si256(table);
        let mask = _mm256_set1_epi8(0x0F);

        // Group ib's 16 bytes give its elements 0..16 (low nibbles) and 16..32 (high).
        let codes = std::array::from_fn(|ib| {
            // SAFETY: `qs` has 16 bytes per group; the load has no alignment requirement.
            let bytes = unsafe { _mm_loadu_si128(w.qs[16 * ib..].as_ptr().cast()) };
            let both = _mm256_set_m128i(_mm_srli_epi16::<4>(bytes), bytes);
            _mm256_shuffle_epi8(table, _mm256_and_si256(both, mask))
        });
        let scales = std::array::from_fn(|g| iq4_xs_scale(w, g / 2));
        scale_codes(codes, scales)
    }

    /// Returns the exact sum of `scaled[e] * a.qs[e]`, as [`super::scaled_sum`] does.
    ///
    /// Each `vpmaddwd` adds two i16 products into one i32, at most 2 * 127 * 32 * 128 in
    /// magnitude. Integer addition is exact, so the lane order does not matter.
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    pub(super) fn scaled_sum(scaled: &Scaled, a: &BlockQ8K) -> i32 {
        let mut acc = _mm512_setzero_si512();
        for (c, &w) in scaled.iter().enumerate() {
            let q = _mm512_cvtepi8_epi16(load_i8x32(&a.qs[CHUNK * c..]));
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(w, q));
        }
        _mm512_reduce_add_epi32(acc)
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use bytemuck::{Pod, Zeroable};

    use super::*;

    /// Random blocks compared per type.
    const RANDOM_BLOCKS: usize = 200;

    /// Fills `bytes` from a xorshift64 generator.
    fn fill_random(bytes: &mut [u8], state: &mut u64) {
        for byte in bytes {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *byte = (*state >> 32) as u8;
        }
    }

    /// Returns a random weight block and four random Q8_K blocks (codes of -128 included).
    fn random_blocks<W: Pod + Zeroable>(state: &mut u64) -> (W, [BlockQ8K; 4]) {
        let mut w = W::zeroed();
        fill_random(bytemuck::bytes_of_mut(&mut w), state);
        let a = std::array::from_fn(|_| {
            let mut a = BlockQ8K::zeroed();
            fill_random(bytemuck::bytes_of_mut(&mut a), state);
            a
        });
        (w, a)
    }

    /// Checks that the AVX-512 sums equal the portable ones on random blocks.
    fn check_sums<W: TiledK + Zeroable>() {
        if !(is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw"))
        {
            println!("skipped: this CPU has no AVX-512 BW");
            return;
        }

        let mut state = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..RANDOM_BLOCKS {
            let (w, a) = random_blocks::<W>(&mut state);
            let expected = a.each_ref().map(|a| w.sums(a));
            // SAFETY: the features were detected above.
            let found = unsafe { w.sums_x4_avx512(a.each_ref()) };
            assert_eq!(found, expected);
        }
    }

    #[test]
    fn q3_k_avx512_sums_match_portable() {
        check_sums::<BlockQ3K>();
    }

    #[test]
    fn iq4_xs_avx512_sums_match_portable() {
        check_sums::<BlockIQ4XS>();
    }

    #[test]
    fn q2_k_avx512_sums_match_portable() {
        check_sums::<BlockQ2K>();
    }
}
