//! The eight-lane float accumulator of ggml's AVX2 `ggml_vec_dot_*` kernels, as plain
//! arrays for the scalar kernels and as `__m256` helpers for the SIMD ones.
//!
//! ggml's AVX2 kernels keep one `__m256` of eight f32 partial sums. Each block (or
//! super-block) adds its exact integer sums, one i32 per lane, with one fused multiply-add
//! by the block's scale. `vpmaddubsw` followed by `vpmaddwd` (or one `vpdpbusd`) leaves
//! bytes `4 k .. 4 k + 4` of a 32-byte register in i32 lane `k`, so element `e` of a
//! 32-element chunk lands in lane `(e % 32) / 4`. The lanes are only added together at the
//! end, in the order of ggml's `hsum_float_8`.

/// f32 lanes of one `__m256` register.
pub(crate) const LANES: usize = 8;

/// Elements of one 32-byte register of 8-bit codes.
pub(crate) const CHUNK: usize = 32;

/// Bytes that one i32 lane sums.
const BYTES_PER_LANE: usize = CHUNK / LANES;

/// Eight f32 partial sums, lane `k` standing for element `k` of a `__m256`.
pub(crate) type Lanes = [f32; LANES];

/// Returns the i32 lane that element `e` of a block lands in.
#[inline]
pub(crate) fn lane_of(e: usize) -> usize {
    (e % CHUNK) / BYTES_PER_LANE
}

/// Adds `scale * sums[k]` to lane `k` with one rounding, as `_mm256_fmadd_ps` does after
/// `_mm256_cvtepi32_ps`.
#[inline]
pub(crate) fn fmadd_lanes(acc: &mut Lanes, scale: f32, sums: &[i32; LANES]) {
    for (lane, &sum) in acc.iter_mut().zip(sums) {
        *lane = (sum as f32).mul_add(scale, *lane);
    }
}

/// Sums the eight lanes in the order of ggml's `hsum_float_8`: the upper half onto the
/// lower half, then lanes 2 and 3 onto 0 and 1, then lane 1 onto lane 0.
#[inline]
pub(crate) fn hsum_float_8(acc: &Lanes) -> f32 {
    let quad = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    let pair = [quad[0] + quad[2], quad[1] + quad[3]];
    pair[0] + pair[1]
}

/// The same steps on x86-64 registers.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    /// Converts f16 bits to f32 with F16C (exact, as ggml's lookup table is).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) fn fp16(bits: u16) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
    }

    /// Sums the eight lanes of `acc` in the order of ggml's `hsum_float_8`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) fn hsum_float_8(acc: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_extractf128_ps::<1>(acc), _mm256_castps256_ps128(acc));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
    }

    /// Loads 32 signed bytes starting at `bytes[0]`.
    ///
    /// # Panics
    ///
    /// Panics when `bytes` is shorter than 32 bytes.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) fn load_i8x32(bytes: &[i8]) -> __m256i {
        let chunk: &[i8; 32] = bytes[..32].try_into().expect("slice of 32 bytes");
        // SAFETY: `chunk` is 32 readable bytes; the load has no alignment requirement.
        unsafe { _mm256_loadu_si256(chunk.as_ptr().cast()) }
    }

    /// Loads 32 unsigned bytes starting at `bytes[0]`.
    ///
    /// # Panics
    ///
    /// Panics when `bytes` is shorter than 32 bytes.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) fn load_u8x32(bytes: &[u8]) -> __m256i {
        let chunk: &[u8; 32] = bytes[..32].try_into().expect("slice of 32 bytes");
        // SAFETY: as in `load_i8x32`.
        unsafe { _mm256_loadu_si256(chunk.as_ptr().cast()) }
    }

    /// Expands 16 bytes of nibbles to 32 bytes: the low nibbles of `qs[0..16]` in bytes
    /// 0..16, their high nibbles in bytes 16..32.
    ///
    /// # Panics
    ///
    /// Panics when `qs` is shorter than 16 bytes.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) fn nibbles(qs: &[u8]) -> __m256i {
        let chunk: &[u8; 16] = qs[..16].try_into().expect("slice of 16 bytes");
        // SAFETY: `chunk` is 16 readable bytes; the load has no alignment requirement.
        let packed = unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) };
        let both = _mm256_set_m128i(_mm_srli_epi16::<4>(packed), packed);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
    }

    /// Sums each group of four `u8 * i8` byte products into one i32 lane.
    ///
    /// `vpmaddubsw` saturates its i16 pair sums; every caller keeps a pair below
    /// `i16::MAX` (at most 2 * 127 * 128 = 32,512), so the sums are exact, as with the
    /// `vpdpbusd` that ggml's AVX-512 VNNI build uses.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) fn mul_sum_u8_i8(unsigned: __m256i, signed: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(unsigned, signed), _mm256_set1_epi16(1))
    }

    /// Adds `scale * sums` to `acc` lane by lane with one rounding each.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) fn fmadd_sums(acc: __m256, scale: f32, sums: __m256i) -> __m256 {
        _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(sums), acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_of_groups_four_bytes() {
        assert_eq!(lane_of(0), 0);
        assert_eq!(lane_of(3), 0);
        assert_eq!(lane_of(4), 1);
        assert_eq!(lane_of(31), 7);
        assert_eq!(lane_of(32), 0);
        assert_eq!(lane_of(255), 7);
    }

    #[test]
    fn hsum_float_8_pairs_halves_first() {
        // Left to right, 1e8 + 1 rounds the 1 away (the f32 spacing near 1e8 is 8), so the
        // sum is 0. ggml's order cancels lanes 0 and 2 first and keeps lane 1.
        let acc = [1e8, 1.0, -1e8, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(hsum_float_8(&acc), 1.0);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_hsum_matches_scalar() {
        use std::arch::x86_64::_mm256_loadu_ps;

        if !(is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c"))
        {
            eprintln!("skipped: this CPU lacks AVX2, FMA or F16C");
            return;
        }
        let acc: Lanes = [3.5e7, -1.25, 7.0e-3, 1.0, 0.3, -3.5e7, 2.5, 1e-9];

        // SAFETY: the features were detected above; `acc` contains eight f32.
        let simd = unsafe { x86::hsum_float_8(_mm256_loadu_ps(acc.as_ptr())) };

        assert_eq!(simd.to_bits(), hsum_float_8(&acc).to_bits());
    }
}
