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
        let scaled = scaled_q3_k(self);
        // SAFETY: the caller guarantees AVX-512 F and BW.
        a.map(|a| (unsafe { x86::scaled_sum_avx512(&scaled, a) }, 0))
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
        let scaled = scaled_iq4_xs(self);
        // SAFETY: the caller guarantees AVX-512 F and BW.
        a.map(|a| (unsafe { x86::scaled_sum_avx512(&scaled, a) }, 0))
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
        let scaled = scaled_q2_k(self);
        // SAFETY: the caller guarantees AVX-512 F and BW.
        a.map(|a| {
            (
                unsafe { x86::scaled_sum_avx512(&scaled, a) },
                q2_k_min_sum(self, a),
            )
        })
    }
}

/// The AVX-512 sum of a decoded super-block with Q8_K codes.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Scaled;
    use crate::blocks::{BlockQ8K, QK_K};

    /// i16 elements per 512-bit register.
    const STEP: usize = 32;

    /// Returns the exact sum of `scaled[e] * a.qs[e]`, as [`super::scaled_sum`] does.
    ///
    /// Each `vpmaddwd` adds two i16 products into one i32, at most 2 * 127 * 32 * 128 in
    /// magnitude. Integer addition is exact, so the lane order does not matter.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn scaled_sum_avx512(scaled: &Scaled, a: &BlockQ8K) -> i32 {
        let mut acc = _mm512_setzero_si512();
        for k in (0..QK_K).step_by(STEP) {
            // SAFETY: `k + STEP <= QK_K`, so both loads read inside their arrays; neither
            // needs alignment.
            let (w, q) = unsafe {
                (
                    _mm512_loadu_si512(scaled[k..].as_ptr().cast()),
                    _mm256_loadu_si256(a.qs[k..].as_ptr().cast()),
                )
            };
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(w, _mm512_cvtepi8_epi16(q)));
        }
        _mm512_reduce_add_epi32(acc)
    }
}
