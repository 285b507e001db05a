//! Conversions and bit packing shared by the 32-element block formats.
//!
//! The conversions reproduce what ggml's C code does on x86-64, where the golden vectors
//! were made. They matter for bit-exactness only in corner cases, such as subnormal scales
//! whose inverse overflows to infinity.

use half::f16;

use crate::blocks::QK;

/// Rounds `x` to f16 to nearest, ties to even, and returns the bits (ggml's `GGML_FP32_TO_FP16`).
pub(crate) fn f16_bits(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

/// Widens stored f16 bits to f32 exactly (ggml's `GGML_FP16_TO_FP32`).
pub(crate) fn f16_value(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// Converts like a C cast from `float` to an 8-bit integer on x86-64.
///
/// The compiler truncates to a 32-bit integer with `cvttss2si`, which yields `i32::MIN`
/// for NaN and for values outside the i32 range, and then keeps the low byte. In range
/// this is plain truncation toward zero. Rust's `as u8` saturates instead, which would
/// turn an infinite product into code 255 where ggml writes 0.
pub(crate) fn c_float_to_byte(x: f32) -> u8 {
    const I32_RANGE_END: f32 = 2_147_483_648.0;

    let truncated = if x.is_nan() || !(-I32_RANGE_END..I32_RANGE_END).contains(&x) {
        i32::MIN
    } else {
        x as i32
    };
    truncated as u8
}

/// Rounds half away from zero (C's `roundf`) and converts like [`c_float_to_byte`].
///
/// Below 2^23 in magnitude the fraction `x - trunc(x)` is exact, so comparing it with ±0.5
/// reproduces `roundf` without the libm call that `f32::round` compiles to on x86-64.
pub(crate) fn c_roundf_to_byte(x: f32) -> u8 {
    const EXACT_FRACTION_LIMIT: f32 = 8_388_608.0;

    if x.is_nan() || x.abs() >= EXACT_FRACTION_LIMIT {
        return c_float_to_byte(x.round());
    }

    let truncated = x as i32;
    let fraction = x - truncated as f32;
    let rounded = if fraction >= 0.5 {
        truncated + 1
    } else if fraction <= -0.5 {
        truncated - 1
    } else {
        truncated
    };
    rounded as u8
}

/// Packs 32 four-bit codes: the low nibble of byte `j` is element `j`, the high nibble element `j + 16`.
///
/// Codes must be below 16; higher bits are dropped.
pub(crate) fn pack_nibbles(codes: &[u8; QK]) -> [u8; QK / 2] {
    let mut qs = [0u8; QK / 2];
    for (j, byte) in qs.iter_mut().enumerate() {
        *byte = (codes[j] & 0x0F) | ((codes[j + QK / 2] & 0x0F) << 4);
    }
    qs
}

/// Collects bit 4 of each of 32 five-bit codes into the `qh` field of Q5_0 and Q5_1.
///
/// Bit `j` of the little-endian u32 is the fifth bit of element `j`.
pub(crate) fn pack_fifth_bits(codes: &[u8; QK]) -> [u8; 4] {
    let mut qh = 0u32;
    for (j, &code) in codes.iter().enumerate() {
        qh |= u32::from((code >> 4) & 1) << j;
    }
    qh.to_le_bytes()
}

/// Returns the 32 codes of a block: low nibbles from `qs` plus, when given, fifth bits from `qh`.
pub(crate) fn unpack_codes(qs: &[u8; QK / 2], qh: Option<&[u8; 4]>) -> [u8; QK] {
    let high_bits = qh.map_or(0, |bytes| u32::from_le_bytes(*bytes));

    let mut codes = [0u8; QK];
    for (j, &byte) in qs.iter().enumerate() {
        codes[j] = byte & 0x0F;
        codes[j + QK / 2] = byte >> 4;
    }
    for (j, code) in codes.iter_mut().enumerate() {
        *code |= (((high_bits >> j) & 1) as u8) << 4;
    }
    codes
}

/// Returns the signed value of largest magnitude in `x` (the first one on a tie, 0.0 for an empty slice).
pub(crate) fn signed_absmax(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_float_to_byte_in_range() {
        assert_eq!(c_float_to_byte(8.99), 8);
        assert_eq!(c_float_to_byte(0.5), 0);
        assert_eq!(c_float_to_byte(16.5), 16);
    }

    #[test]
    fn c_float_to_byte_out_of_range() {
        assert_eq!(c_float_to_byte(f32::INFINITY), 0);
        assert_eq!(c_float_to_byte(f32::NEG_INFINITY), 0);
        assert_eq!(c_float_to_byte(f32::NAN), 0);
        assert_eq!(c_float_to_byte(3.0e9), 0);
    }

    #[test]
    fn c_roundf_to_byte_matches_round() {
        let cases = [
            0.5f32,
            -0.5,
            1.5,
            -1.5,
            2.5,
            126.5,
            -127.49,
            0.49999997,
            -0.49999997,
            3.0,
            0.0,
            -0.0,
        ];
        for x in cases {
            assert_eq!(c_roundf_to_byte(x), x.round() as i32 as u8, "{x}");
        }
        // A sample of every 97th f32 in -128..=128, both signs; ties come from `cases`.
        for bits in (0..=128.0f32.to_bits()).step_by(97) {
            for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
                assert_eq!(c_roundf_to_byte(x), x.round() as i32 as u8, "{x}");
            }
        }
        assert_eq!(c_roundf_to_byte(f32::INFINITY), 0);
        assert_eq!(c_roundf_to_byte(f32::NAN), 0);
    }

    #[test]
    fn nibbles_round_trip() {
        let codes: [u8; QK] = std::array::from_fn(|j| (j % 16) as u8);
        let qs = pack_nibbles(&codes);
        assert_eq!(unpack_codes(&qs, None), codes);
    }

    #[test]
    fn fifth_bits_round_trip() {
        let codes: [u8; QK] = std::array::from_fn(|j| (j * 7 % 32) as u8);
        let qs = pack_nibbles(&codes);
        let qh = pack_fifth_bits(&codes);
        assert_eq!(unpack_codes(&qs, Some(&qh)), codes);
    }

    #[test]
    fn signed_absmax_keeps_sign_and_first_tie() {
        assert_eq!(signed_absmax(&[0.5, -2.0, 2.0, 1.0]), -2.0);
        assert_eq!(signed_absmax(&[]), 0.0);
    }
}
