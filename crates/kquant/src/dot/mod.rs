//! Vec-dot kernels: the dot product of one weight row with one activation row.
//!
//! ggml's CPU backend never multiplies a quantized weight by f32 activations directly. It
//! first converts the activation row to the weight type's `vec_dot_type` (see
//! [`crate::activation`]) and then sums integer products block by block. [`VecDot`] makes
//! that pairing a type-level fact; [`vec_dot_type`] gives it at run time.
//!
//! | weight | activation |
//! |---|---|
//! | Q4_0, Q5_0, Q8_0, IQ4_NL | Q8_0 |
//! | Q4_1, Q5_1 | Q8_1 |
//! | Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS | Q8_K |
//! | F32 / F16 / BF16 | F32 / F16 / BF16 |
//!
//! Every kernel exists as portable scalar code (the readable definition) and in SIMD
//! variants chosen at run time by [`Isa`].

mod isa;
mod kernels;
pub(crate) mod scalar;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod x86;

use bytemuck::Pod;
use gguf_format::GgmlType;

use crate::activation::ActivationBlock;

pub use isa::Isa;

/// A weight format with a dot-product kernel against its activation format.
///
/// `weights` and `activations` describe the same number of elements:
/// `weights.len() * BLOCK_SIZE == activations.len() * VecDotType::BLOCK_SIZE`.
pub trait VecDot: Pod + Send + Sync {
    /// The ggml type of the weights.
    const TYPE: GgmlType;

    /// Weights per block.
    const BLOCK_SIZE: usize;

    /// The activation format ggml's CPU backend pairs with this weight type.
    type VecDotType: ActivationBlock;

    /// Returns the dot product of a weight row and an activation row, computed with `isa`.
    ///
    /// An `isa` this CPU lacks falls back to the best one it has, so every value is safe to
    /// pass.
    ///
    /// # Panics
    ///
    /// Panics when the two rows hold different numbers of elements.
    fn vec_dot(isa: Isa, weights: &[Self], activations: &[Self::VecDotType]) -> f32;

    /// Computes the dot products of one weight row with four activation rows.
    ///
    /// The result for each activation equals [`VecDot::vec_dot`] with the same `isa` bit
    /// for bit; kernels that override it decode each weight block once for all four.
    ///
    /// # Panics
    ///
    /// Panics when a row holds a different number of elements than `weights`.
    fn vec_dot_x4(isa: Isa, weights: &[Self], activations: [&[Self::VecDotType]; 4]) -> [f32; 4] {
        activations.map(|a| Self::vec_dot(isa, weights, a))
    }
}

/// Returns the activation type ggml's CPU backend pairs with weights of type `weight`, or
/// `None` when this crate has no dot product for it.
///
/// # Examples
///
/// ```
/// use gguf_format::GgmlType;
///
/// assert_eq!(kquant::vec_dot_type(GgmlType::Q4_K), Some(GgmlType::Q8_K));
/// assert_eq!(kquant::vec_dot_type(GgmlType::Q5_1), Some(GgmlType::Q8_1));
/// assert_eq!(kquant::vec_dot_type(GgmlType::IQ2_XXS), None);
/// ```
pub fn vec_dot_type(weight: GgmlType) -> Option<GgmlType> {
    use GgmlType::*;

    match weight {
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL => Some(Q8_0),
        Q4_1 | Q5_1 => Some(Q8_1),
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | IQ4_XS => Some(Q8_K),
        F32 | F16 | BF16 => Some(weight),
        _ => None,
    }
}

/// Asserts the element-count contract of [`VecDot::vec_dot`].
#[inline]
fn check_lengths<W: VecDot>(weights: &[W], activations: &[W::VecDotType]) {
    assert_eq!(
        weights.len() * W::BLOCK_SIZE,
        activations.len() * <W::VecDotType as ActivationBlock>::BLOCK_SIZE,
        "{} weights and {} activations describe rows of different lengths",
        W::TYPE,
        <W::VecDotType as ActivationBlock>::TYPE,
    );
}
