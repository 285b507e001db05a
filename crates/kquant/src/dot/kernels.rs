//! [`VecDot`] implementations: each weight type wired to its kernel per instruction set.

use gguf_format::GgmlType;
use half::{bf16, f16};

use super::{check_lengths, scalar, Isa, VecDot};
use crate::ggml_cpu::{vec_dot_q4_k, vec_dot_q5_k, vec_dot_q6_k};
use crate::ggml_cpu::{vec_dot_iq4_xs, vec_dot_q2_k, vec_dot_q3_k, vec_dot_q4_1, vec_dot_q5_1};
use crate::ggml_cpu::{vec_dot_float, vec_dot_q0};
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512};
use crate::blocks::{
    BlockIQ4NL, BlockIQ4XS, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K,
    BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1, QK, QK_K,
};

/// Implements [`VecDot`] for one weight type.
///
/// The optional kernels are `unsafe fn`s with a `#[target_feature]` attribute; they are only
/// called after [`Isa::resolve`] has confirmed the CPU supports them. A missing AVX-512
/// kernel falls through to the AVX2 one, a missing SIMD kernel to the scalar one. The
/// optional `x4` kernel pair (AVX2, AVX-512) overrides [`VecDot::vec_dot_x4`] for AVX2 and AVX-512.
macro_rules! impl_vec_dot {
    (
        $weight:ty, $ggml:ident, $block_size:expr, $act:ty, $scalar:path
        $(, avx2: $avx2:path)?
        $(, avx512: $avx512:path)?
        $(, x4: $x4_avx2:path, $x4_avx512:path)?
    ) => {
        impl VecDot for $weight {
            const TYPE: GgmlType = GgmlType::$ggml;
            const BLOCK_SIZE: usize = $block_size;
            type VecDotType = $act;

            #[inline]
            #[allow(unreachable_patterns)]
            fn vec_dot(isa: Isa, weights: &[Self], activations: &[$act]) -> f32 {
                check_lengths::<Self>(weights, activations);

                match isa.resolve() {
                    // SAFETY: `resolve` returned Avx512, so the CPU has every feature the
                    // kernel's `#[target_feature]` enables.
                    $(#[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => unsafe { $avx512(weights, activations) },)?
                    // SAFETY: as above; Avx512 implies every Avx2 feature.
                    $(#[cfg(target_arch = "x86_64")]
                    Isa::Avx2 | Isa::Avx512 => unsafe { $avx2(weights, activations) },)?
                    _ => $scalar(weights, activations),
                }
            }

            $(
            #[inline]
            #[allow(unreachable_patterns)]
            fn vec_dot_x4(isa: Isa, weights: &[Self], activations: [&[$act]; 4]) -> [f32; 4] {
                for a in activations {
                    check_lengths::<Self>(weights, a);
                }

                match isa.resolve() {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `resolve` returned Avx512, so every enabled feature is present.
                    Isa::Avx512 => unsafe { $x4_avx512(weights, activations) },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `resolve` returned Avx2 or Avx512, both with every Avx2 feature.
                    Isa::Avx2 | Isa::Avx512 => unsafe { $x4_avx2(weights, activations) },
                    _ => activations.map(|a| Self::vec_dot(isa, weights, a)),
                }
            }
            )?
        }
    };
}

impl_vec_dot!(BlockQ4_0, Q4_0, QK, BlockQ8_0, vec_dot_q0::dot_scalar::<BlockQ4_0>, avx2: vec_dot_q0::x86::dot::<BlockQ4_0>);
impl_vec_dot!(BlockQ4_1, Q4_1, QK, BlockQ8_1, vec_dot_q4_1::q4_1_q8_1, avx2: vec_dot_q4_1::x86::q4_1_q8_1, x4: vec_dot_q4_1::x86::q4_1_q8_1_x4, vec_dot_q4_1::x86::q4_1_q8_1_x4);
impl_vec_dot!(BlockQ5_0, Q5_0, QK, BlockQ8_0, vec_dot_q0::dot_scalar::<BlockQ5_0>, avx2: vec_dot_q0::x86::dot::<BlockQ5_0>);
impl_vec_dot!(BlockQ5_1, Q5_1, QK, BlockQ8_1, vec_dot_q5_1::q5_1_q8_1, avx2: vec_dot_q5_1::x86::q5_1_q8_1, x4: vec_dot_q5_1::x86::q5_1_q8_1_x4, vec_dot_q5_1::x86::q5_1_q8_1_x4);
impl_vec_dot!(BlockQ8_0, Q8_0, QK, BlockQ8_0, vec_dot_q0::dot_scalar::<BlockQ8_0>, avx2: vec_dot_q0::x86::dot::<BlockQ8_0>);
impl_vec_dot!(BlockIQ4NL, IQ4_NL, QK, BlockQ8_0, vec_dot_q0::iq4_nl_scalar, avx2: vec_dot_q0::x86::iq4_nl);
impl_vec_dot!(BlockQ2K, Q2_K, QK_K, BlockQ8K, vec_dot_q2_k::q2_k_q8_k, avx2: vec_dot_q2_k::x86::q2_k_q8_k, x4: vec_dot_q2_k::x86::q2_k_q8_k_x4, vec_dot_q2_k::x86::q2_k_q8_k_x4);
impl_vec_dot!(BlockQ3K, Q3_K, QK_K, BlockQ8K, vec_dot_q3_k::q3_k_q8_k, avx2: vec_dot_q3_k::x86::q3_k_q8_k, avx512: vec_dot_q3_k::x86::q3_k_q8_k_avx512, x4: vec_dot_q3_k::x86::q3_k_q8_k_x4, vec_dot_q3_k::x86::q3_k_q8_k_x4_avx512);
impl_vec_dot!(BlockQ4K, Q4_K, QK_K, BlockQ8K, vec_dot_q4_k::q4_k_q8_k, avx2: vec_dot_q4_k::q4_k_q8_k_avx2, avx512: vec_dot_q4_k::q4_k_q8_k_avx512, x4: vec_dot_q4_k::q4_k_q8_k_x4_avx2, vec_dot_q4_k::q4_k_q8_k_x4_avx512);
impl_vec_dot!(BlockQ5K, Q5_K, QK_K, BlockQ8K, vec_dot_q5_k::q5_k_q8_k, avx2: vec_dot_q5_k::q5_k_q8_k_avx2, avx512: vec_dot_q5_k::q5_k_q8_k_avx512, x4: vec_dot_q5_k::q5_k_q8_k_x4_avx2, vec_dot_q5_k::q5_k_q8_k_x4_avx512);
impl_vec_dot!(BlockQ6K, Q6_K, QK_K, BlockQ8K, vec_dot_q6_k::q6_k_q8_k, avx2: vec_dot_q6_k::q6_k_q8_k_avx2, avx512: vec_dot_q6_k::q6_k_q8_k_avx512, x4: vec_dot_q6_k::q6_k_q8_k_x4_avx2, vec_dot_q6_k::q6_k_q8_k_x4_avx512);
impl_vec_dot!(BlockIQ4XS, IQ4_XS, QK_K, BlockQ8K, vec_dot_iq4_xs::iq4_xs_q8_k, avx2: vec_dot_iq4_xs::x86::iq4_xs_q8_k, avx512: vec_dot_iq4_xs::x86::iq4_xs_q8_k_avx512, x4: vec_dot_iq4_xs::x86::iq4_xs_q8_k_x4, vec_dot_iq4_xs::x86::iq4_xs_q8_k_x4_avx512);
impl_vec_dot!(f32, F32, 1, f32, vec_dot_float::f32_scalar, avx2: vec_dot_float::avx2::f32_dot, avx512: vec_dot_float::x86::f32_dot);
impl_vec_dot!(f16, F16, 1, f16, vec_dot_float::f16_scalar, avx2: vec_dot_float::avx2::f16_dot, avx512: vec_dot_float::x86::f16_dot);
impl_vec_dot!(bf16, BF16, 1, bf16, scalar::bf16_bf16, avx2: avx2::bf16_bf16, avx512: avx512::bf16_bf16);
