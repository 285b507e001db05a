//! `ggml_vec_dot_{q4_0,q5_0,q8_0,iq4_nl}_q8_0` in the float order of their AVX2 branch
//! (llama.cpp b11312, `ggml-cpu/arch/x86/quants.c`), which ggml uses for a batch of one
//! activation row.
//!
//! Q4_0, Q5_0 and Q8_0 keep one accumulator of eight lanes: every block adds
//! `fma(d_w * d_a, lanes, acc)`, blocks in order, and [`hsum8`] sums the lanes at the end.
//! IQ4_NL keeps two accumulators, one for even and one for odd blocks, and adds them lane by
//! lane before the final sum. It adds a last odd block in scalar code: the block's whole
//! integer sum times the scale, rounded, then added (not fused).

use crate::blocks::{BlockIQ4NL, BlockQ8_0};

use super::q0_block::{accumulate_block, fp16, hsum8, Q0Block, LANES};

/// Computes the Q4_0, Q5_0 or Q8_0 dot product in ggml's order, one lane array at a time.
pub(crate) fn dot_scalar<W: Q0Block>(w: &[W], a: &[BlockQ8_0]) -> f32 {
    let mut acc = [0.0f32; LANES];
    for (w, a) in w.iter().zip(a) {
        accumulate_block(&mut acc, w, a);
    }
    hsum8(acc)
}

/// Computes the IQ4_NL dot product in ggml's order.
pub(crate) fn iq4_nl_scalar(w: &[BlockIQ4NL], a: &[BlockQ8_0]) -> f32 {
    let mut even = [0.0f32; LANES];
    let mut odd = [0.0f32; LANES];
    let pairs = w.len() / 2;
    for p in 0..pairs {
        accumulate_block(&mut even, &w[2 * p], &a[2 * p]);
        accumulate_block(&mut odd, &w[2 * p + 1], &a[2 * p + 1]);
    }
    let mut sum = hsum8(std::array::from_fn(|i| even[i] + odd[i]));

    if let (Some(last_w), Some(last_a)) = (w.get(2 * pairs), a.get(2 * pairs)) {
        sum = iq4_nl_tail(last_w, last_a, sum);
    }
    sum
}

/// Adds the last block of an odd-length IQ4_NL row as ggml's scalar loop does: the true
/// integer sum (no `vpsignb` wrap), multiplied by the scale and then added, in two roundings.
#[inline]
fn iq4_nl_tail(w: &BlockIQ4NL, a: &BlockQ8_0, sum: f32) -> f32 {
    let scale = fp16(a.d) * fp16(w.d);
    let codes = w.codes();
    let sumi: i32 = codes.iter().zip(&a.qs).map(|(&w, &a)| i32::from(w) * i32::from(a)).sum();
    sum + scale * sumi as f32
}

/// The AVX2 kernels, bit-identical to the scalar ones above.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    use crate::blocks::{BlockIQ4NL, BlockQ8_0, KVALUES_IQ4NL};
    use crate::ggml_cpu::q0_block::{fp16, Coding, Q0Block};

    /// Expands 16 bytes of nibbles to 32 bytes: low nibbles, then high nibbles.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn nibbles(qs: &[u8]) -> __m256i {
        debug_assert!(qs.len() >= 16);
        let packed = _mm_loadu_si128(qs.as_ptr().cast());
        let both = _mm256_set_m128i(_mm_srli_epi16::<4>(packed), packed);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
    }

    /// Expands 32 bits to 32 bytes: 0xFF where the bit is set, 0 elsewhere.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn bytes_from_bits(bits: u32) -> __m256i {
        // Byte i takes byte i / 8 of `bits`; OR-ing every bit except bit i % 8 leaves
        // 0xFF exactly when that bit is set.
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(bits as i32),
            _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0),
        );
        let others = _mm256_set1_epi64x(0x7FBF_DFEF_F7FB_FDFE);
        _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi64x(-1))
    }

    /// Decodes a block to its 32 signed codes, element order.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) unsafe fn decode<W: Q0Block>(w: &W) -> __m256i {
        match W::CODING {
            Coding::Bytes => _mm256_loadu_si256(w.qs_bytes().as_ptr().cast()),
            Coding::Nibbles => _mm256_sub_epi8(nibbles(w.qs_bytes()), _mm256_set1_epi8(8)),
            Coding::NibblesHighBit => {
                // A clear fifth bit means "subtract 16", which is OR-ing 0xF0 into the nibble.
                let clear = _mm256_andnot_si256(bytes_from_bits(w.qh()), _mm256_set1_epi8(0xF0u8 as i8));
                _mm256_or_si256(nibbles(w.qs_bytes()), clear)
            }
            Coding::Lookup => {
                let table = _mm_loadu_si128(KVALUES_IQ4NL.as_ptr().cast());
                _mm256_shuffle_epi8(_mm256_set_m128i(table, table), nibbles(w.qs_bytes()))
            }
        }
    }

    /// Sums one block product into eight i32 lanes with `vpsignb`, `vpmaddubsw` and
    /// `vpmaddwd`. The pairs cannot saturate: |w| <= 128 and |a| <= 128 keep each below
    /// 2 * 128 * 128 = 32768, and only `w = a = -128` twice reaches -32768 exactly.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) unsafe fn block_lanes(w: __m256i, a: __m256i) -> __m256 {
        let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
        _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }

    /// Sums the eight lanes in the order of [`super::hsum8`].
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) unsafe fn hsum8(v: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_extractf128_ps::<1>(v), _mm256_castps256_ps128(v));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
    }

    /// Adds one block product to `acc`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn accumulate<W: Q0Block>(acc: __m256, w: &W, a: &BlockQ8_0) -> __m256 {
        let lanes = block_lanes(decode(w), _mm256_loadu_si256(a.qs.as_ptr().cast()));
        let scale = _mm256_set1_ps(fp16(w.d()) * fp16(a.d));
        _mm256_fmadd_ps(scale, lanes, acc)
    }

    /// Computes [`super::dot_scalar`] with AVX2.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn dot<W: Q0Block>(w: &[W], a: &[BlockQ8_0]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (w, a) in w.iter().zip(a) {
            acc = accumulate(acc, w, a);
        }
        hsum8(acc)
    }

    /// Computes [`super::iq4_nl_scalar`] with AVX2.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn iq4_nl(w: &[BlockIQ4NL], a: &[BlockQ8_0]) -> f32 {
        let mut even = _mm256_setzero_ps();
        let mut odd = _mm256_setzero_ps();
        let pairs = w.len() / 2;
        for p in 0..pairs {
            even = accumulate(even, &w[2 * p], &a[2 * p]);
            odd = accumulate(odd, &w[2 * p + 1], &a[2 * p + 1]);
        }
        let sum = hsum8(_mm256_add_ps(even, odd));

        match (w.get(2 * pairs), a.get(2 * pairs)) {
            (Some(last_w), Some(last_a)) => super::iq4_nl_tail(last_w, last_a, sum),
            _ => sum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::{BlockQ4_0, BlockQ5_0, QK};

    /// Fills blocks with every byte pattern a file may hold, -128 codes and scales included.
    fn random_blocks<T: bytemuck::Pod>(n: usize, seed: u64) -> Vec<T> {
        let mut state = seed;
        let mut bytes = vec![0u8; n * std::mem::size_of::<T>()];
        for byte in &mut bytes {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = (state >> 32) as u8;
        }
        // Keep scales finite and small: the f16 at offset 0 of every block.
        for block in bytes.chunks_mut(std::mem::size_of::<T>()) {
            block[1] &= 0x3B;
        }
        bytemuck::cast_slice(&bytes).to_vec()
    }

    #[cfg(target_arch = "x86_64")]
    fn check<W: Q0Block>(scalar: fn(&[W], &[BlockQ8_0]) -> f32, simd: unsafe fn(&[W], &[BlockQ8_0]) -> f32) {
        if !crate::dot::Isa::Avx2.is_supported() {
            return;
        }
        for n_blocks in [1, 2, 3, 8, 9] {
            for seed in 1..40 {
                let w: Vec<W> = random_blocks(n_blocks, seed);
                let a: Vec<BlockQ8_0> = random_blocks(n_blocks, seed + 1000);

                let want = scalar(&w, &a);
                // SAFETY: AVX2 (with FMA and F16C) was checked above.
                let got = unsafe { simd(&w, &a) };

                assert_eq!(got.to_bits(), want.to_bits(), "{} blocks {n_blocks} seed {seed}", W::TYPE);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_equals_scalar_on_raw_blocks() {
        check::<BlockQ4_0>(dot_scalar, x86::dot);
        check::<BlockQ5_0>(dot_scalar, x86::dot);
        check::<BlockQ8_0>(dot_scalar, x86::dot);
        check::<BlockIQ4NL>(iq4_nl_scalar, x86::iq4_nl);
    }

    #[test]
    fn iq4_nl_odd_tail_uses_true_products() {
        // One block: weight code -127 (index 0) everywhere, activation -128 everywhere.
        let w = [BlockIQ4NL { d: 0x3C00, qs: [0; QK / 2] }];
        let a = [BlockQ8_0 { d: 0x3C00, qs: [-128; QK] }];

        assert_eq!(iq4_nl_scalar(&w, &a), (32 * 127 * 128) as f32);
    }
}
