//! The weight blocks that ggml multiplies as 32 signed bytes and one scale (Q4_0, Q5_0,
//! Q8_0 and IQ4_NL against Q8_0 activations), and the float steps their x86-64 kernels
//! share.
//!
//! ggml's AVX2 kernels for these types (`ggml_vec_dot_*_q8_0` and llamafile's
//! `tinyBLAS_Q0_AVX`) turn a block product into eight i32 lanes, lane `i` being the sum of
//! the four products of elements `4 i .. 4 i + 4`. They form those products with
//! `vpsignb` and an unsigned-by-signed multiply (`vpdpbusd` with AVX-512 VNNI, `vpmaddubsw`
//! + `vpmaddwd` without): `|w| * (a * sign(w))`. The lanes are then converted to f32 and
//! scaled by `d_w * d_a` with a fused multiply-add, and the eight lanes are summed at the
//! end by [`hsum8`].

use crate::blocks::{BlockIQ4NL, BlockQ4_0, BlockQ5_0, BlockQ8_0, KVALUES_IQ4NL, QK};
use crate::dot::VecDot;

/// i32 lanes of one block product: eight lanes of four elements each.
pub(crate) const LANES: usize = 8;

/// Elements summed into one lane.
const LANE_WIDTH: usize = QK / LANES;

/// Offset of the 4-bit Q4_0 codes: stored 0..=15 means -8..=7.
const Q4_0_OFFSET: i8 = 8;

/// Offset of the 5-bit Q5_0 codes: stored 0..=31 means -16..=15.
const Q5_0_OFFSET: i8 = 16;

/// Storage layout of a block's 32 signed codes, for the SIMD decoders.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only the x86-64 kernels use it
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    /// Q4_0: nibbles minus 8.
    Nibbles,
    /// Q5_0: nibbles plus a fifth bit from `qh`, minus 16.
    NibblesHighBit,
    /// Q8_0: the codes themselves.
    Bytes,
    /// IQ4_NL: nibbles as indices into [`KVALUES_IQ4NL`].
    Lookup,
}

/// A weight block of 32 signed codes and an f16 scale, multiplied against Q8_0.
pub(crate) trait Q0Block: VecDot<VecDotType = BlockQ8_0> {
    /// The storage layout of the codes.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only the x86-64 kernels use it
    const CODING: Coding;

    /// Returns the f16 bits of the scale.
    fn d(&self) -> u16;

    /// Returns the 32 signed codes in element order.
    fn codes(&self) -> [i8; QK];

    /// Returns the packed nibbles (Q4_0, Q5_0, IQ4_NL) or the codes (Q8_0) as bytes.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only the x86-64 kernels use it
    fn qs_bytes(&self) -> &[u8];

    /// Returns the fifth bits of Q5_0 (bit `j` for element `j`), or 0 for the other types.
    fn qh(&self) -> u32 {
        0
    }
}

/// Splits packed nibbles into element order: low nibbles first, then high nibbles.
fn unpack_nibbles(qs: &[u8; QK / 2], mut map: impl FnMut(u8) -> i8) -> [i8; QK] {
    let mut codes = [0i8; QK];
    for (j, &byte) in qs.iter().enumerate() {
        codes[j] = map(byte & 0x0F);
        codes[j + QK / 2] = map(byte >> 4);
    }
    codes
}

impl Q0Block for BlockQ4_0 {
    const CODING: Coding = Coding::Nibbles;

    fn d(&self) -> u16 {
        self.d
    }

    fn codes(&self) -> [i8; QK] {
        unpack_nibbles(&self.qs, |n| n as i8 - Q4_0_OFFSET)
    }

    fn qs_bytes(&self) -> &[u8] {
        &self.qs
    }
}

impl Q0Block for BlockQ5_0 {
    const CODING: Coding = Coding::NibblesHighBit;

    fn d(&self) -> u16 {
        self.d
    }

    fn codes(&self) -> [i8; QK] {
        let qh = self.qh();
        let mut codes = unpack_nibbles(&self.qs, |n| n as i8);
        for (j, code) in codes.iter_mut().enumerate() {
            let high = ((qh >> j) & 1) as i8;
            *code = (*code | (high << 4)) - Q5_0_OFFSET;
        }
        codes
    }

    fn qs_bytes(&self) -> &[u8] {
        &self.qs
    }

    fn qh(&self) -> u32 {
        u32::from_le_bytes(self.qh)
    }
}

impl Q0Block for BlockQ8_0 {
    const CODING: Coding = Coding::Bytes;

    fn d(&self) -> u16 {
        self.d
    }

    fn codes(&self) -> [i8; QK] {
        self.qs
    }

    fn qs_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.qs)
    }
}

impl Q0Block for BlockIQ4NL {
    const CODING: Coding = Coding::Lookup;

    fn d(&self) -> u16 {
        self.d
    }

    fn codes(&self) -> [i8; QK] {
        unpack_nibbles(&self.qs, |n| KVALUES_IQ4NL[usize::from(n)])
    }

    fn qs_bytes(&self) -> &[u8] {
        &self.qs
    }
}

/// Converts f16 bits to f32 (exact, as F16C's `vcvtph2ps`).
#[inline]
pub(crate) fn fp16(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// Sums one block product into eight lanes the way `vpsignb` + `vpdpbusd` do.
///
/// The weight's sign moves onto the activation: `|w| * (a * sign(w))`. `vpsignb` negates
/// with wrap-around, so an activation code of -128 under a negative weight stays -128 and
/// the product takes the wrong sign. ggml's Q8_0 activation quantizer never writes -128,
/// but a hand-made block may hold it, and ggml gives that wrong sign too.
#[inline]
pub(crate) fn block_lanes(w: &[i8; QK], a: &[i8; QK]) -> [i32; LANES] {
    let mut lanes = [0i32; LANES];
    for (j, (&w, &a)) in w.iter().zip(a).enumerate() {
        let magnitude = i32::from(w.unsigned_abs());
        let signed = match w.signum() {
            -1 => a.wrapping_neg(),
            0 => 0,
            _ => a,
        };
        lanes[j / LANE_WIDTH] += magnitude * i32::from(signed);
    }
    lanes
}

/// Sums eight f32 lanes as ggml's `hsum_float_8` and tinyBLAS's `hsum(__m256)` do: the
/// upper half onto the lower half, then lanes 2 and 3 onto 0 and 1, then lane 1 onto 0.
#[inline]
pub(crate) fn hsum8(lanes: [f32; LANES]) -> f32 {
    let quad: [f32; 4] = std::array::from_fn(|i| lanes[i + 4] + lanes[i]);
    let pair = [quad[0] + quad[2], quad[1] + quad[3]];
    pair[0] + pair[1]
}

/// Adds one block product to `acc`: `acc[i] = fma(d_w * d_a, lanes[i], acc[i])`.
#[inline]
pub(crate) fn accumulate_block<W: Q0Block>(acc: &mut [f32; LANES], w: &W, a: &BlockQ8_0) {
    let scale = fp16(w.d()) * fp16(a.d);
    let lanes = block_lanes(&w.codes(), &a.qs);
    for (acc, lane) in acc.iter_mut().zip(lanes) {
        *acc = scale.mul_add(lane as f32, *acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q5_0_codes_take_fifth_bit() {
        let mut block = BlockQ5_0 { d: 0, qh: [0; 4], qs: [0x1F; QK / 2] };
        block.qh = 1u32.to_le_bytes();

        let codes = block.codes();

        assert_eq!(codes[0], 15 + 16 - 16);
        assert_eq!(codes[1], 15 - 16);
        assert_eq!(codes[16], 1 - 16);
    }

    #[test]
    fn block_lanes_mirror_sign_wrap() {
        let mut w = [0i8; QK];
        let mut a = [0i8; QK];
        w[0] = -3;
        a[0] = -128;
        w[5] = -128;
        a[5] = 2;

        let lanes = block_lanes(&w, &a);

        assert_eq!(lanes[0], 3 * -128, "-(-128) wraps to -128 as in vpsignb");
        assert_eq!(lanes[1], -128 * 2);
    }

    #[test]
    fn hsum8_adds_halves_first() {
        // 1e8 + 1 + ... loses the ones in one order and keeps some in another.
        let lanes = [1e8, 1.0, 1.0, 1.0, -1e8, 1.0, 1.0, 1.0];

        assert_eq!(hsum8(lanes), 6.0);
    }
}
