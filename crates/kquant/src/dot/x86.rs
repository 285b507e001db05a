//! x86-64 kernels, written once and compiled twice: for AVX2 ([`super::avx2`]) and for
//! AVX-512 ([`super::avx512`]).
//!
//! Every quantized type and F16/F32 now run through [`crate::ggml_cpu`], which follows
//! ggml's float order. What remains here is the BF16 product, which has no such kernel.

/// Expands the x86-64 kernels for the feature list `$features`.
macro_rules! x86_kernels {
    ($features:literal) => {
        use std::arch::x86_64::*;

        use half::bf16;

        /// Elements per step: four registers of eight.
        const FLOAT_STEP: usize = 32;

        /// Sums the eight f32 lanes.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn hsum_ps(v: __m256) -> f32 {
            let sum4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let sum2 = _mm_add_ps(sum4, _mm_movehl_ps(sum4, sum4));
            let sum1 = _mm_add_ss(sum2, _mm_movehdup_ps(sum2));
            _mm_cvtss_f32(sum1)
        }

        /// Widens eight BF16 values to f32.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn load_bf16(p: *const bf16) -> __m256 {
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()))))
        }

        /// Computes the dot product of two BF16 rows with four f32 accumulators.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn bf16_bf16(w: &[bf16], a: &[bf16]) -> f32 {
            let n = w.len().min(a.len());
            let main = n - n % FLOAT_STEP;
            let mut acc = [_mm256_setzero_ps(); 4];

            let mut i = 0;
            while i < main {
                for (k, acc) in acc.iter_mut().enumerate() {
                    let wv = load_bf16(w.as_ptr().add(i + 8 * k));
                    let av = load_bf16(a.as_ptr().add(i + 8 * k));
                    *acc = _mm256_fmadd_ps(wv, av, *acc);
                }
                i += FLOAT_STEP;
            }

            let total = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            hsum_ps(total) + crate::dot::scalar::bf16_bf16(&w[main..n], &a[main..n])
        }
    };
}

pub(crate) use x86_kernels;
