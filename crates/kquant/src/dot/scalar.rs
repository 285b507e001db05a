//! Portable helpers and the portable BF16 product.
//!
//! The portable kernels of the quantized types and of F16/F32 live in [`crate::ggml_cpu`],
//! beside their SIMD versions, because they follow ggml's float order lane by lane.

use half::{bf16, f16};

/// Converts f16 bits to f32.
#[inline]
pub(crate) fn fp16(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// Computes the dot product of two BF16 rows, summing the f32 products in order.
pub(crate) fn bf16_bf16(w: &[bf16], a: &[bf16]) -> f32 {
    w.iter().zip(a).map(|(w, a)| w.to_f32() * a.to_f32()).sum()
}
