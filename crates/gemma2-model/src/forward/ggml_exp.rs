//! The exponential and the lane sum that ggml's AVX-512 softmax uses, one value at a time.
//!
//! ggml's CPU flash attention turns scores into weights with `ggml_vec_soft_max_f32`, which
//! on an AVX-512 build evaluates `ggml_v_expf` (a polynomial, not libm's `expf`) on 16
//! lanes and adds each group of 16 with `_mm512_reduce_add_ps`. Both are reproduced here
//! with the same fused multiply-adds and the same order of additions, so the weights agree
//! bit for bit.

/// Round-to-integer shifter: adding `1.5 * 2^23` pushes the fraction bits out of an f32.
const SHIFTER: f32 = 12_582_912.0;
const LOG2_E: f32 = f32::from_bits(0x3fb8_aa3b);
/// `ln 2` split into a high part with trailing zero bits and a low correction.
const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
const LN2_LO: f32 = f32::from_bits(0x35bf_be8e);
/// Polynomial coefficients of `exp(b)` for `|b| <= ln2 / 2`, highest degree first.
const C5: f32 = f32::from_bits(0x3c07_2010);
const C4: f32 = f32::from_bits(0x3d2b_9f17);
const C3: f32 = f32::from_bits(0x3e2a_af33);
const C2: f32 = f32::from_bits(0x3eff_fedb);
const C1: f32 = f32::from_bits(0x3f7f_fff6);
/// Beyond this exponent the result is 0 or infinity without the polynomial.
const EXPONENT_LIMIT: f32 = 192.0;

/// Lanes of one AVX-512 register of f32: the group size of the softmax sum.
pub(crate) const SOFTMAX_LANES: usize = 16;

/// Computes `e^x` as ggml's AVX-512 `ggml_v_expf` does (max error about 1.5 ulp): split
/// `x = n ln2 + b`, evaluate a degree-5 polynomial in `b`, and scale by `2^n`.
///
/// Returns 0 for `x = -inf` and for large negative `x`, and infinity for large positive `x`.
#[inline(always)]
pub(crate) fn expf(x: f32) -> f32 {
    let z = x.mul_add(LOG2_E, SHIFTER);
    let n = z - SHIFTER;
    let b = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));

    if n.abs() > EXPONENT_LIMIT {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }

    let u = b * b;
    let high = C5.mul_add(b, C4).mul_add(u, C3.mul_add(b, C2));
    let j = high.mul_add(u, C1.mul_add(b, 1.0));
    scale_by_power_of_two(j, n)
}

/// Returns `j * 2^n` rounded once to f32, as `_mm512_scalef_ps` does for an integral `n`
/// within `[-192, 192]`.
#[inline(always)]
fn scale_by_power_of_two(j: f32, n: f32) -> f32 {
    // j has 24 significant bits and 2^n lies well inside f64's range, so the f64 product is
    // exact and the cast is the only rounding, subnormal results included.
    (f64::from(j) * f64::from(n).exp2()) as f32
}

/// Adds 16 values in the order of GCC's `_mm512_reduce_add_ps`: halves, then quarters, then
/// pairs.
#[inline(always)]
pub(crate) fn reduce_add_16(lanes: &[f32; SOFTMAX_LANES]) -> f32 {
    let mut eighths = [0.0f32; 8];
    for (i, sum) in eighths.iter_mut().enumerate() {
        *sum = lanes[8 + i] + lanes[i];
    }
    let mut quarters = [0.0f32; 4];
    for (i, sum) in quarters.iter_mut().enumerate() {
        *sum = eighths[4 + i] + eighths[i];
    }
    let first = quarters[0] + quarters[2];
    let second = quarters[1] + quarters[3];
    first + second
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expf_within_two_ulp_of_libm() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let ours = expf(x);
            let libm = x.exp();
            let ulps = (ours.to_bits() as i64 - libm.to_bits() as i64).abs();
            assert!(ulps <= 2, "x = {x}: {ours} vs {libm}");
            x += 0.173;
        }
    }

    #[test]
    fn expf_limits() {
        assert_eq!(expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(expf(-200.0), 0.0);
        assert_eq!(expf(200.0), f32::INFINITY);
        assert_eq!(expf(0.0), 1.0);
    }

    #[test]
    fn expf_subnormal_result() {
        // e^-100 is about 3.7e-44, a subnormal f32.
        let value = expf(-100.0);
        assert!(value > 0.0, "{value}");
        assert!(value < f32::MIN_POSITIVE, "{value}");
    }

    #[test]
    fn reduce_order_is_tree() {
        // 1e8 absorbs a 1 when added first in sequence but not in the tree order.
        let mut lanes = [0.0f32; 16];
        lanes[0] = 1e8;
        lanes[8] = -1e8;
        lanes[1] = 1.0;
        assert_eq!(reduce_add_16(&lanes), 1.0);
        let sequential: f32 = lanes.iter().sum();
        assert_eq!(sequential, 0.0);
    }
}
