//! Matrix products in the floating-point order of ggml's x86-64 CPU backend.
//!
//! Every kernel below sums the exact integer products of a block the way ggml does. ggml's
//! kernels differ in how they turn those integers into an f32 result. They split a block
//! into a different number of partial sums (the lanes of one SIMD register), apply a scale
//! with or without a fused multiply-add, and add the lanes in their own order at the end.
//! A perplexity run quantizes every activation row to 8 bits before each product, so a
//! difference in the last bit of one product can move a code by one step, and the two
//! runs drift apart by a few tenths of a percent over a few thousand tokens. Following
//! ggml's order per output element removes that drift.
//!
//! llama.cpp's CPU backend picks one of four kernel families for each matrix product, as
//! this module does:
//!
//! 1. A repacked kernel (`ggml_gemm_*_8x8` / `ggml_gemv_*_8x8` in ggml's `repack.cpp`)
//!    when the weight lives in the `CPU_REPACK` buffer (see [`WeightMatrix::with_repack`]).
//! 2. llamafile's `tinyBLAS` when the batch has at least 2 rows and the type is one it
//!    handles (Q4_0, Q5_0, Q8_0, IQ4_NL with Q8_0 activations; F32; F16 with F16
//!    activations).
//! 3. The tiled K-quant matmul (`ggml-cpu/tiled/`) for Q2_K to Q6_K and IQ4_XS weights that
//!    are not repacked, when the batch has at least 8 rows.
//! 4. The type's `ggml_vec_dot_*` kernel, one call per output element, otherwise.
//!
//! Each output element is computed by one thread from start to end, so the result does not
//! depend on the number of threads, and the scalar versions of these kernels reproduce the
//! SIMD versions bit for bit.

use gguf_format::GgmlType;

use crate::blocks::{BlockQ4K, BlockQ5K, BlockQ6K};
use crate::blocks::{BlockIQ4XS, BlockQ2K, BlockQ3K, BlockQ4_1, BlockQ5_1};
use crate::matmul::matmul_typed;
use crate::dot::Isa;
use crate::matmul::{QuantizedActivations, WeightMatrix};
use crate::QuantError;

pub(crate) mod vec_dot_q4_k;
pub(crate) mod vec_dot_q5_k;
pub(crate) mod vec_dot_q6_k;
pub(crate) mod tiled_k;
mod tiled_misc;
pub(crate) mod vec_dot_iq4_xs;
pub(crate) mod vec_dot_lanes;
pub(crate) mod vec_dot_q2_k;
pub(crate) mod vec_dot_q3_k;
pub(crate) mod vec_dot_q4_1;
pub(crate) mod vec_dot_q5_1;
pub(crate) mod q0_block;
pub(crate) mod vec_dot_q0;
pub(crate) mod vec_dot_float;
mod tiles;
mod tinyblas_float;
mod tinyblas_q0;

mod repack;
mod repack_b32;
mod repack_q4_k;

/// Weight rows that a repacked block interleaves; a repacked matrix needs a multiple of it.
pub(crate) const REPACK_ROWS: usize = 8;

/// The smallest batch that llamafile's `tinyBLAS` accepts; single rows use `ggml_vec_dot_*`.
pub(crate) const TINYBLAS_MIN_BATCH: usize = 2;

/// The ggml kernel family that computes a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// `ggml_gemm_*_8x8` for groups of 4 activation rows, `ggml_gemv_*_8x8` for the rest.
    Repack,
    /// llamafile's `tinyBLAS_Q0_AVX`: Q4_0, Q5_0, Q8_0 and IQ4_NL against Q8_0.
    TinyBlasQ0,
    /// llamafile's float `tinyBLAS`: F32 against F32, F16 against F16.
    TinyBlasFloat,
    /// One `ggml_vec_dot_*` call per output element.
    VecDot,
}

/// Returns the kernel family ggml's x86-64 CPU backend uses for `weight` and a batch of
/// `n_batch` activation rows.
pub(crate) fn path(weight: &WeightMatrix, n_batch: usize) -> Path {
    let ggml_type = weight.ggml_type();
    let repackable = matches!(ggml_type, GgmlType::Q4_0 | GgmlType::Q4_K | GgmlType::IQ4_NL);
    if weight.is_repacked() && repackable && weight.n_rows() % REPACK_ROWS == 0 {
        return Path::Repack;
    }

    if n_batch < TINYBLAS_MIN_BATCH {
        return Path::VecDot;
    }
    match ggml_type {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::IQ4_NL => Path::TinyBlasQ0,
        GgmlType::F32 | GgmlType::F16 if tinyblas_float::accepts(weight.n_rows(), weight.n_cols()) => Path::TinyBlasFloat,
        _ => Path::VecDot,
    }
}

/// Computes `out` with ggml's kernel family for this product, or returns `None` when this
/// module does not follow that family's order yet and the caller's kernels apply.
///
/// The caller has checked the activation type and the output length.
pub(crate) fn matmul(
    isa: Isa,
    weight: &WeightMatrix,
    activations: &QuantizedActivations,
    out: &mut [f32],
) -> Option<Result<(), QuantError>> {
    let _ = (isa, &out);
    match path(weight, activations.n_batch()) {
        Path::Repack => repack::matmul(isa, weight, activations, out),
        Path::TinyBlasQ0 => Some(match weight.ggml_type() {
            GgmlType::Q4_0 => tinyblas_q0::matmul::<crate::blocks::BlockQ4_0>(isa, weight, activations, out),
            GgmlType::Q5_0 => tinyblas_q0::matmul::<crate::blocks::BlockQ5_0>(isa, weight, activations, out),
            GgmlType::Q8_0 => tinyblas_q0::matmul::<crate::blocks::BlockQ8_0>(isa, weight, activations, out),
            _ => tinyblas_q0::matmul::<crate::blocks::BlockIQ4NL>(isa, weight, activations, out),
        }),
        Path::TinyBlasFloat => Some(match weight.ggml_type() {
            GgmlType::F16 => tinyblas_float::matmul::<half::f16>(isa, weight, activations, out),
            _ => tinyblas_float::matmul::<f32>(isa, weight, activations, out),
        }),
        Path::VecDot => vec_dot_matmul(isa, weight, activations, out),
    }
}

/// Computes one `ggml_vec_dot_*` per output element for the types whose [`crate::VecDot`]
/// kernels follow ggml's order; `None` for the others.
fn vec_dot_matmul(
    isa: Isa,
    weight: &WeightMatrix,
    activations: &QuantizedActivations,
    out: &mut [f32],
) -> Option<Result<(), QuantError>> {
    let _ = (isa, activations, &out);
    match weight.ggml_type() {
        // ggml b11312 multiplies K-quants by batches of 8 or more rows with its tiled kernel.
        GgmlType::Q4_K if activations.n_batch() >= tiled_k::TILED_MIN_BATCH => Some(tiled_k::matmul::<BlockQ4K>(isa, weight, activations, out)),
        GgmlType::Q5_K if activations.n_batch() >= tiled_k::TILED_MIN_BATCH => Some(tiled_k::matmul::<BlockQ5K>(isa, weight, activations, out)),
        GgmlType::Q6_K if activations.n_batch() >= tiled_k::TILED_MIN_BATCH => Some(tiled_k::matmul::<BlockQ6K>(isa, weight, activations, out)),
        GgmlType::Q3_K if activations.n_batch() >= tiled_k::TILED_MIN_BATCH => Some(tiled_k::matmul::<BlockQ3K>(isa, weight, activations, out)),
        GgmlType::IQ4_XS if activations.n_batch() >= tiled_k::TILED_MIN_BATCH => Some(tiled_k::matmul::<BlockIQ4XS>(isa, weight, activations, out)),
        GgmlType::Q2_K if activations.n_batch() >= tiled_k::TILED_MIN_BATCH => Some(tiled_k::matmul::<BlockQ2K>(isa, weight, activations, out)),
        GgmlType::Q4_K => Some(crate::matmul::matmul_typed::<BlockQ4K>(isa, weight, activations, out)),
        GgmlType::Q5_K => Some(crate::matmul::matmul_typed::<BlockQ5K>(isa, weight, activations, out)),
        GgmlType::Q6_K => Some(crate::matmul::matmul_typed::<BlockQ6K>(isa, weight, activations, out)),
        GgmlType::Q4_1 => Some(matmul_typed::<BlockQ4_1>(isa, weight, activations, out)),
        GgmlType::Q5_1 => Some(matmul_typed::<BlockQ5_1>(isa, weight, activations, out)),
        GgmlType::Q2_K => Some(matmul_typed::<BlockQ2K>(isa, weight, activations, out)),
        GgmlType::Q3_K => Some(matmul_typed::<BlockQ3K>(isa, weight, activations, out)),
        GgmlType::IQ4_XS => Some(matmul_typed::<BlockIQ4XS>(isa, weight, activations, out)),
        GgmlType::Q4_0 => Some(matmul_typed::<crate::blocks::BlockQ4_0>(isa, weight, activations, out)),
        GgmlType::Q5_0 => Some(matmul_typed::<crate::blocks::BlockQ5_0>(isa, weight, activations, out)),
        GgmlType::Q8_0 => Some(matmul_typed::<crate::blocks::BlockQ8_0>(isa, weight, activations, out)),
        GgmlType::IQ4_NL => Some(matmul_typed::<crate::blocks::BlockIQ4NL>(isa, weight, activations, out)),
        GgmlType::F16 => Some(matmul_typed::<half::f16>(isa, weight, activations, out)),
        GgmlType::F32 => Some(matmul_typed::<f32>(isa, weight, activations, out)),
        _ => None,
    }
}
