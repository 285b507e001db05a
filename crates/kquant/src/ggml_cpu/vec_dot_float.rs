//! `ggml_vec_dot_f32` and `ggml_vec_dot_f16` in the float order of their AVX-512 branch
//! (llama.cpp b11312, `ggml-cpu/vec.cpp` with the `GGML_F32x16` / `GGML_F32Cx16` macros of
//! `simd-mappings.h`, on a CPU without AVX512-FP16).
//!
//! Both keep four accumulators of 16 lanes and step through the row 64 elements at a time,
//! register `j` taking elements `16 j .. 16 j + 16` of each step with a fused multiply-add.
//! They then add register 2 onto 0 and 3 onto 1, then 1 onto 0, and sum the 16 lanes with
//! GCC's `_mm512_reduce_add_ps` ([`reduce16`]). The last `n % 64` elements follow one at a
//! time, and each product is rounded to f32 before it is added, because the compiled loop
//! does not fuse them. F32 adds them to the f32 sum. F16 adds them to an f64 sum that is
//! rounded to f32 at the end.

use half::f16;

/// f32 lanes of a 512-bit register (`GGML_F32_EPR`).
pub(crate) const EPR: usize = 16;

/// Registers per step (`GGML_F32_ARR`).
const ARR: usize = 4;

/// Elements per step (`GGML_F32_STEP`).
const STEP: usize = EPR * ARR;

/// Sums 16 lanes as GCC 12's `_mm512_reduce_add_ps` does: upper 256 bits onto lower, upper
/// 128 onto lower, lanes 2 and 3 onto 0 and 1, then lane 1 onto lane 0.
#[inline]
pub(crate) fn reduce16(v: [f32; EPR]) -> f32 {
    let eight: [f32; 8] = std::array::from_fn(|i| v[i + 8] + v[i]);
    let four: [f32; 4] = std::array::from_fn(|i| eight[i + 4] + eight[i]);
    let two = [four[0] + four[2], four[1] + four[3]];
    two[0] + two[1]
}

/// Runs the 64-element steps of both kernels and returns the reduced sum and the number of
/// elements consumed.
#[inline]
fn sum_steps<T: Copy>(x: &[T], y: &[T], to_f32: impl Fn(T) -> f32) -> (f32, usize) {
    let n = x.len().min(y.len());
    let np = n - n % STEP;
    let mut sum = [[0.0f32; EPR]; ARR];
    for i in (0..np).step_by(STEP) {
        for (j, reg) in sum.iter_mut().enumerate() {
            for (l, lane) in reg.iter_mut().enumerate() {
                let k = i + j * EPR + l;
                *lane = to_f32(x[k]).mul_add(to_f32(y[k]), *lane);
            }
        }
    }

    let [s0, s1, s2, s3] = sum;
    let s0: [f32; EPR] = std::array::from_fn(|l| s0[l] + s2[l]);
    let s1: [f32; EPR] = std::array::from_fn(|l| s1[l] + s3[l]);
    (reduce16(std::array::from_fn(|l| s0[l] + s1[l])), np)
}

/// Computes `ggml_vec_dot_f32` in ggml's order.
pub(crate) fn f32_scalar(x: &[f32], y: &[f32]) -> f32 {
    let (mut sum, np) = sum_steps(x, y, |v| v);
    for (&x, &y) in x[np..].iter().zip(&y[np..]) {
        sum += x * y;
    }
    sum
}

/// Computes `ggml_vec_dot_f16` in ggml's order.
pub(crate) fn f16_scalar(x: &[f16], y: &[f16]) -> f32 {
    let (sum, np) = sum_steps(x, y, f16::to_f32);
    let mut wide = f64::from(sum);
    for (&x, &y) in x[np..].iter().zip(&y[np..]) {
        wide += f64::from(x.to_f32() * y.to_f32());
    }
    wide as f32
}

/// The AVX-512 kernels, bit-identical to the scalar ones above.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{ARR, EPR, STEP};

    /// Sums 16 lanes in the order of [`super::reduce16`].
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) unsafe fn reduce16(v: __m512) -> f32 {
        let eight = _mm256_add_ps(
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))),
            _mm512_castps512_ps256(v),
        );
        let four = _mm_add_ps(_mm256_extractf128_ps::<1>(eight), _mm256_castps256_ps128(eight));
        let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
        _mm_cvtss_f32(_mm_add_ss(two, _mm_movehdup_ps(two)))
    }

    /// Loads 16 f16 values as f32.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) unsafe fn load_f16(p: *const f16) -> __m512 {
        _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()))
    }

    /// Runs the 64-element steps with `load` and returns the reduced sum and the number of
    /// elements consumed.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn sum_steps<T>(x: &[T], y: &[T], load: impl Fn(*const T) -> __m512) -> (f32, usize) {
        let n = x.len().min(y.len());
        let np = n - n % STEP;
        let mut sum = [_mm512_setzero_ps(); ARR];
        let mut i = 0;
        while i < np {
            for (j, reg) in sum.iter_mut().enumerate() {
                let xv = load(x.as_ptr().add(i + j * EPR));
                let yv = load(y.as_ptr().add(i + j * EPR));
                *reg = _mm512_fmadd_ps(xv, yv, *reg);
            }
            i += STEP;
        }
        let low = _mm512_add_ps(sum[0], sum[2]);
        let high = _mm512_add_ps(sum[1], sum[3]);
        (reduce16(_mm512_add_ps(low, high)), np)
    }

    /// Computes [`super::f32_scalar`] with AVX-512.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn f32_dot(x: &[f32], y: &[f32]) -> f32 {
        // SAFETY (closure): `sum_steps` loads 16 elements at a time, ending at most at
        // `np <= len`.
        let (mut sum, np) = sum_steps(x, y, |p| unsafe { _mm512_loadu_ps(p) });
        for (&x, &y) in x[np..].iter().zip(&y[np..]) {
            sum += x * y;
        }
        sum
    }

    /// Computes [`super::f16_scalar`] with AVX-512.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn f16_dot(x: &[f16], y: &[f16]) -> f32 {
        // SAFETY (closure): as in `f32_dot`.
        let (sum, np) = sum_steps(x, y, |p| unsafe { load_f16(p) });
        let mut wide = f64::from(sum);
        for (&x, &y) in x[np..].iter().zip(&y[np..]) {
            wide += f64::from(x.to_f32() * y.to_f32());
        }
        wide as f32
    }
}

/// The AVX2 kernels: each 16-lane register of ggml's AVX-512 code becomes two 8-lane
/// halves. Every lane gets the same operations, so the bits are those of the scalar
/// kernels above.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{ARR, EPR, STEP};

    /// Lanes of one AVX2 register.
    const HALF: usize = EPR / 2;

    /// One 16-lane register of ggml's AVX-512 code as two halves.
    #[derive(Clone, Copy)]
    pub(crate) struct Lanes16 {
        pub(crate) low: __m256,
        pub(crate) high: __m256,
    }

    /// Returns 16 zero lanes.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) unsafe fn zero() -> Lanes16 {
        Lanes16 { low: _mm256_setzero_ps(), high: _mm256_setzero_ps() }
    }

    /// Adds two 16-lane registers lane by lane.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) unsafe fn add(a: Lanes16, b: Lanes16) -> Lanes16 {
        Lanes16 { low: _mm256_add_ps(a.low, b.low), high: _mm256_add_ps(a.high, b.high) }
    }

    /// Returns `fma(x, y, acc)` lane by lane.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) unsafe fn fmadd(x: Lanes16, y: Lanes16, acc: Lanes16) -> Lanes16 {
        Lanes16 { low: _mm256_fmadd_ps(x.low, y.low, acc.low), high: _mm256_fmadd_ps(x.high, y.high, acc.high) }
    }

    /// Loads 16 f32 values.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) unsafe fn load_f32(p: *const f32) -> Lanes16 {
        Lanes16 { low: _mm256_loadu_ps(p), high: _mm256_loadu_ps(p.add(HALF)) }
    }

    /// Loads 16 f16 values as f32.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) unsafe fn load_f16(p: *const f16) -> Lanes16 {
        Lanes16 {
            low: _mm256_cvtph_ps(_mm_loadu_si128(p.cast())),
            high: _mm256_cvtph_ps(_mm_loadu_si128(p.add(HALF).cast())),
        }
    }

    /// Sums 16 lanes in the order of [`super::reduce16`].
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) unsafe fn reduce16(v: Lanes16) -> f32 {
        let eight = _mm256_add_ps(v.high, v.low);
        let four = _mm_add_ps(_mm256_extractf128_ps::<1>(eight), _mm256_castps256_ps128(eight));
        let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
        _mm_cvtss_f32(_mm_add_ss(two, _mm_movehdup_ps(two)))
    }

    /// Runs the 64-element steps with `load` and returns the reduced sum and the number of
    /// elements consumed.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn sum_steps<T>(x: &[T], y: &[T], load: impl Fn(*const T) -> Lanes16) -> (f32, usize) {
        let n = x.len().min(y.len());
        let np = n - n % STEP;
        let mut sum = [zero(); ARR];
        let mut i = 0;
        while i < np {
            for (j, reg) in sum.iter_mut().enumerate() {
                *reg = fmadd(load(x.as_ptr().add(i + j * EPR)), load(y.as_ptr().add(i + j * EPR)), *reg);
            }
            i += STEP;
        }
        (reduce16(add(add(sum[0], sum[2]), add(sum[1], sum[3]))), np)
    }

    /// Computes [`super::f32_scalar`] with AVX2.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn f32_dot(x: &[f32], y: &[f32]) -> f32 {
        // SAFETY (closure): `sum_steps` loads 16 elements at a time, ending at most at
        // `np <= len`.
        let (mut sum, np) = sum_steps(x, y, |p| unsafe { load_f32(p) });
        for (&x, &y) in x[np..].iter().zip(&y[np..]) {
            sum += x * y;
        }
        sum
    }

    /// Computes [`super::f16_scalar`] with AVX2.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn f16_dot(x: &[f16], y: &[f16]) -> f32 {
        // SAFETY (closure): as in `f32_dot`.
        let (sum, np) = sum_steps(x, y, |p| unsafe { load_f16(p) });
        let mut wide = f64::from(sum);
        for (&x, &y) in x[np..].iter().zip(&y[np..]) {
            wide += f64::from(x.to_f32() * y.to_f32());
        }
        wide as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0
            })
            .collect()
    }

    #[test]
    fn reduce16_matches_pairwise_tree() {
        // 1e8 cancels only when lanes i and i + 8 are added first.
        let mut v = [1.0f32; EPR];
        v[0] = 1e8;
        v[8] = -1e8;

        assert_eq!(reduce16(v), 14.0);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_equals_scalar() {
        if !crate::dot::Isa::Avx2.is_supported() {
            return;
        }
        for n in [1, 15, 16, 63, 64, 65, 100, 128, 200, 640] {
            let x = values(n, 3);
            let y = values(n, 5);
            let xh: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
            let yh: Vec<f16> = y.iter().map(|&v| f16::from_f32(v)).collect();

            // SAFETY: AVX2, FMA and F16C were checked above.
            let (f32_simd, f16_simd) = unsafe { (avx2::f32_dot(&x, &y), avx2::f16_dot(&xh, &yh)) };

            assert_eq!(f32_simd.to_bits(), f32_scalar(&x, &y).to_bits(), "f32 n = {n}");
            assert_eq!(f16_simd.to_bits(), f16_scalar(&xh, &yh).to_bits(), "f16 n = {n}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_equals_scalar() {
        if !crate::dot::Isa::Avx512.is_supported() {
            return;
        }
        for n in [1, 15, 16, 63, 64, 65, 100, 128, 200, 640] {
            let x = values(n, 3);
            let y = values(n, 5);
            let xh: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
            let yh: Vec<f16> = y.iter().map(|&v| f16::from_f32(v)).collect();

            // SAFETY: AVX-512 F was checked above.
            let (f32_simd, f16_simd) = unsafe { (x86::f32_dot(&x, &y), x86::f16_dot(&xh, &yh)) };

            assert_eq!(f32_simd.to_bits(), f32_scalar(&x, &y).to_bits(), "f32 n = {n}");
            assert_eq!(f16_simd.to_bits(), f16_scalar(&xh, &yh).to_bits(), "f16 n = {n}");
        }
    }
}
