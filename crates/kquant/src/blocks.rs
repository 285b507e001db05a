//! On-disk block structs of the ggml formats, byte for byte as `ggml-common.h` lays them out.
//!
//! Every struct is `#[repr(C)]`, `bytemuck::Pod` and carries a compile-time size assertion,
//! so a slice of GGUF tensor bytes can be viewed as blocks without copying
//! (`bytemuck::try_cast_slice`). Half-precision scales are stored as raw `u16` bits
//! (`f16` in ggml) so the structs stay `Pod` with alignment 2 at most, except Q8_K whose
//! scale is an `f32`.

use bytemuck::{Pod, Zeroable};

/// Elements in one block of the legacy formats (Q4_0 .. Q8_1) and IQ4_NL.
pub const QK: usize = 32;

/// Elements in one k-quant super-block (Q2_K .. Q8_K, IQ4_XS).
pub const QK_K: usize = 256;

/// Size in bytes of the packed 6-bit scales and mins of Q4_K and Q5_K.
pub const K_SCALE_SIZE: usize = 12;

macro_rules! assert_block_size {
    ($block:ty, $bytes:expr) => {
        const _: () = assert!(std::mem::size_of::<$block>() == $bytes);
    };
}

/// Q4_0: 32 weights as 4-bit codes `n`, value `(n - 8) * d`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_0 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Byte `j`: low nibble is element `j`, high nibble is element `j + 16`.
    pub qs: [u8; QK / 2],
}
assert_block_size!(BlockQ4_0, 18);

/// Q4_1: 32 weights as 4-bit codes `n`, value `n * d + m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_1 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Minimum, f16 bits.
    pub m: u16,
    /// Nibbles, packed as in [`BlockQ4_0::qs`].
    pub qs: [u8; QK / 2],
}
assert_block_size!(BlockQ4_1, 20);

/// Q5_0: 32 weights as 5-bit codes `n`, value `(n - 16) * d`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_0 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Fifth bits: bit `j` of this little-endian u32 is the high bit of element `j`.
    pub qh: [u8; 4],
    /// Low nibbles, packed as in [`BlockQ4_0::qs`].
    pub qs: [u8; QK / 2],
}
assert_block_size!(BlockQ5_0, 22);

/// Q5_1: 32 weights as 5-bit codes `n`, value `n * d + m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_1 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Minimum, f16 bits.
    pub m: u16,
    /// Fifth bits, as in [`BlockQ5_0::qh`].
    pub qh: [u8; 4],
    /// Low nibbles, packed as in [`BlockQ4_0::qs`].
    pub qs: [u8; QK / 2],
}
assert_block_size!(BlockQ5_1, 24);

/// Q8_0: 32 weights as signed bytes `q`, value `q * d`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Signed codes.
    pub qs: [i8; QK],
}
assert_block_size!(BlockQ8_0, 34);

/// Q8_1: the activation format paired with Q4_1 and Q5_1; Q8_0 plus `s = d * sum(qs)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_1 {
    /// Scale, f16 bits.
    pub d: u16,
    /// `d * sum(qs)`, f16 bits.
    pub s: u16,
    /// Signed codes.
    pub qs: [i8; QK],
}
assert_block_size!(BlockQ8_1, 36);

/// Q2_K: 16 groups of 16 weights, 2-bit codes, value `d * sc * q - dmin * m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ2K {
    /// Per group: low nibble the 4-bit scale, high nibble the 4-bit min.
    pub scales: [u8; QK_K / 16],
    /// 2-bit codes, four per byte (see the crate docs for the bit planes).
    pub qs: [u8; QK_K / 4],
    /// Super-block scale of the scales, f16 bits.
    pub d: u16,
    /// Super-block scale of the mins, f16 bits.
    pub dmin: u16,
}
assert_block_size!(BlockQ2K, 84);

/// Q3_K: 16 groups of 16 weights, 3-bit codes, value `d * (s - 32) * q`, `q` in -4..=3.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ3K {
    /// High bits: bit `b` of `hmask[l]` is set when element `32 b + l` has code >= 4.
    pub hmask: [u8; QK_K / 8],
    /// Low 2 bits of the codes, four per byte.
    pub qs: [u8; QK_K / 4],
    /// 16 six-bit scales, biased by 32, packed in 12 bytes.
    pub scales: [u8; 12],
    /// Super-block scale, f16 bits.
    pub d: u16,
}
assert_block_size!(BlockQ3K, 110);

/// Q4_K: 8 groups of 32 weights, 4-bit codes, value `d * sc * q - dmin * m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4K {
    /// Super-block scale of the scales, f16 bits.
    pub d: u16,
    /// Super-block scale of the mins, f16 bits.
    pub dmin: u16,
    /// 8 six-bit scales and 8 six-bit mins, packed in 12 bytes.
    pub scales: [u8; K_SCALE_SIZE],
    /// Nibbles: byte `32 g + l` holds element `64 g + l` (low) and `64 g + 32 + l` (high).
    pub qs: [u8; QK_K / 2],
}
assert_block_size!(BlockQ4K, 144);

/// Q5_K: Q4_K with a fifth bit per code.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5K {
    /// Super-block scale of the scales, f16 bits.
    pub d: u16,
    /// Super-block scale of the mins, f16 bits.
    pub dmin: u16,
    /// 8 six-bit scales and 8 six-bit mins, packed as in [`BlockQ4K::scales`].
    pub scales: [u8; K_SCALE_SIZE],
    /// Fifth bits: bit `2 g` of `qh[l]` belongs to element `64 g + l`, bit `2 g + 1` to `64 g + 32 + l`.
    pub qh: [u8; QK_K / 8],
    /// Low nibbles, packed as in [`BlockQ4K::qs`].
    pub qs: [u8; QK_K / 2],
}
assert_block_size!(BlockQ5K, 176);

/// Q6_K: 16 groups of 16 weights, 6-bit codes, value `d * sc * (q - 32)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ6K {
    /// Low 4 bits of the codes.
    pub ql: [u8; QK_K / 2],
    /// High 2 bits of the codes.
    pub qh: [u8; QK_K / 4],
    /// Signed 8-bit group scales.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale, f16 bits.
    pub d: u16,
}
assert_block_size!(BlockQ6K, 210);

/// Q8_K: the activation format paired with the k-quants and IQ4_XS.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8K {
    /// Scale (f32, unlike the other formats).
    pub d: f32,
    /// Signed codes.
    pub qs: [i8; QK_K],
    /// Sums of each group of 16 codes, used by the dot products to apply the mins.
    pub bsums: [i16; QK_K / 16],
}
assert_block_size!(BlockQ8K, 292);

/// IQ4_NL: 32 weights as 4-bit indices into [`KVALUES_IQ4NL`], value `d * table[n]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockIQ4NL {
    /// Scale, f16 bits.
    pub d: u16,
    /// Indices, packed as in [`BlockQ4_0::qs`].
    pub qs: [u8; QK / 2],
}
assert_block_size!(BlockIQ4NL, 18);

/// IQ4_XS: 8 groups of 32 weights as IQ4_NL indices with 6-bit group scales.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ4XS {
    /// Super-block scale, f16 bits.
    pub d: u16,
    /// High 2 bits of the 8 six-bit group scales, 2 bits per group.
    pub scales_h: u16,
    /// Low 4 bits of the group scales, two groups per byte.
    pub scales_l: [u8; QK_K / 64],
    /// Indices, each group of 32 packed as in [`BlockQ4_0::qs`].
    pub qs: [u8; QK_K / 2],
}
assert_block_size!(BlockIQ4XS, 136);

/// The non-linear 4-bit code book of IQ4_NL and IQ4_XS (`kvalues_iq4nl` in ggml).
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];
