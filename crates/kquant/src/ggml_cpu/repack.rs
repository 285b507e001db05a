//! Products of repacked weights in the order of ggml's `CPU_REPACK` kernels (llama.cpp
//! b11312, `ggml-cpu/arch/x86/repack.cpp`).
//!
//! On x86-64 with AVX2, ggml repacks Q4_0, Q4_K and IQ4_NL matrices whose row count is a
//! multiple of 8 into blocks that interleave 8 rows (`q4_0_8x8_q8_0`, `q4_K_8x8_q8_K`,
//! `iq4_nl_8x8_q8_0`). Its `forward_mul_mat` then converts the activations and calls two
//! kernels:
//!
//! - `ggml_gemm_*_8x8` for the first `n_batch - n_batch % 4` activation rows (none when the
//!   batch has fewer than 4 rows), which it converts in groups of 4 with
//!   `ggml_quantize_mat_*_4x8`;
//! - `ggml_gemv_*_8x8` for each remaining row, converted with the type's `from_float`.
//!
//! The grouped quantizers give the same codes and scales as the row quantizers that
//! [`crate::quantize_activations`] follows, with one exception that does not change a
//! product: when a Q8_K block holds both `-M` and `+M` as its largest magnitude `M` and
//! `-M` comes first, `ggml_quantize_mat_q8_K_4x8` picks the positive scale where
//! `quantize_row_q8_K` picks the negative one, so the scale and every code change sign. Each
//! product below multiplies the activation scale with a sum of code products, so both
//! signs flip and the f32 result is the same bit for bit.
//!
//! Every output element gets its whole value from one thread and one formula: the weight
//! layout, the tile shape and the thread count do not change it. The formulas live in
//! [`super::repack_q4_k`] (Q4_K, where the gemm and gemv kernels differ) and
//! [`super::repack_b32`] (Q4_0 and IQ4_NL, one formula for both kernels).

use std::ops::Range;

use gguf_format::GgmlType;
use rayon::prelude::*;

use crate::activation::ActivationBlock;
use crate::blocks::{BlockIQ4NL, BlockQ4_0};
use crate::dot::Isa;
use crate::matmul::{QuantizedActivations, WeightMatrix};
use crate::QuantError;

use super::{repack_b32, repack_q4_k};

/// Activation rows that `ggml_quantize_mat_*_4x8` converts together and
/// `ggml_gemm_*_8x8` multiplies together.
const GEMM_GROUP: usize = 4;

/// Weight rows per parallel tile: two 16-row panels of the AVX-512 kernels.
const ROW_TILE: usize = 32;

/// Activation rows per parallel tile when the weight has too few row tiles to keep every
/// thread busy with whole-batch tiles.
const BATCH_TILE: usize = 64;

/// Row tiles from which a tile spans the whole batch, so each decoded panel serves every
/// activation row.
const MIN_ROW_TILES_FOR_FULL_BATCH: usize = 16;

/// One of ggml's two repacked kernels; each activation row goes to one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// `ggml_gemm_*_8x8`: rows in full groups of 4.
    Gemm,
    /// `ggml_gemv_*_8x8`: the last `n_batch % 4` rows.
    Gemv,
}

impl Kernel {
    /// Returns the kernel that ggml uses for activation row `b` of an `n_batch`-row batch.
    pub(crate) fn for_row(b: usize, n_batch: usize) -> Kernel {
        if b < n_batch - n_batch % GEMM_GROUP {
            Kernel::Gemm
        } else {
            Kernel::Gemv
        }
    }
}

/// Computes `out` in the order of ggml's repacked kernels, or returns `None` for a type
/// without one.
///
/// The caller has checked that the rows are a multiple of 8, the activation type and the
/// output length.
pub(crate) fn matmul(
    isa: Isa,
    weight: &WeightMatrix,
    activations: &QuantizedActivations,
    out: &mut [f32],
) -> Option<Result<(), QuantError>> {
    match weight.ggml_type() {
        GgmlType::Q4_K => Some(repack_q4_k::matmul(isa, weight, activations, out)),
        GgmlType::Q4_0 => Some(repack_b32::matmul::<BlockQ4_0>(
            isa,
            weight,
            activations,
            out,
        )),
        GgmlType::IQ4_NL => Some(repack_b32::matmul::<BlockIQ4NL>(
            isa,
            weight,
            activations,
            out,
        )),
        _ => None,
    }
}

/// Returns the activation rows as blocks of `A`.
///
/// # Errors
///
/// [`QuantError::ActivationMismatch`] when they are stored as another type; the caller's
/// type check rules that out.
pub(crate) fn activation_blocks<'a, A: ActivationBlock>(
    weight: &WeightMatrix,
    activations: &'a QuantizedActivations,
) -> Result<&'a [A], QuantError> {
    activations
        .blocks::<A>()
        .ok_or(QuantError::ActivationMismatch {
            weight_type: weight.ggml_type(),
            weight_cols: weight.n_cols(),
            expected_type: A::TYPE,
            found_type: activations.ggml_type(),
            found_cols: activations.n_cols(),
        })
}

/// Splits the (weight row, activation row) grid into tiles and runs `tile(state, rows,
/// batch)` for each on the rayon thread pool, with one `state` per worker from `init`.
///
/// Row tiles start at multiples of [`ROW_TILE`], so a tile's rows split into whole 16-row
/// panels and, for a row count that is 8 more than a multiple of 16, one last 8-row panel.
pub(crate) fn for_each_tile<S>(
    n_rows: usize,
    n_batch: usize,
    init: impl Fn() -> S + Sync + Send,
    tile: impl Fn(&mut S, Range<usize>, Range<usize>) + Sync + Send,
) {
    let row_tiles = n_rows.div_ceil(ROW_TILE);
    let batch_tile = if row_tiles >= MIN_ROW_TILES_FOR_FULL_BATCH {
        n_batch.max(1)
    } else {
        BATCH_TILE
    };
    let batch_tiles = n_batch.div_ceil(batch_tile);

    (0..row_tiles * batch_tiles)
        .into_par_iter()
        .for_each_init(init, |state, index| {
            let (row_tile, batch_index) = (index / batch_tiles, index % batch_tiles);
            let rows = row_tile * ROW_TILE..((row_tile + 1) * ROW_TILE).min(n_rows);
            let batch = batch_index * batch_tile..((batch_index + 1) * batch_tile).min(n_batch);
            tile(state, rows, batch);
        });
}

/// Splits `batch` into runs of at most `max_len` rows that use one kernel each.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only the x86-64 kernels use it
pub(crate) fn kernel_runs(
    batch: Range<usize>,
    n_batch: usize,
    max_len: usize,
) -> impl Iterator<Item = (Range<usize>, Kernel)> {
    let gemm_end = n_batch - n_batch % GEMM_GROUP;
    let mut start = batch.start;

    std::iter::from_fn(move || {
        if start >= batch.end {
            return None;
        }
        let kernel = Kernel::for_row(start, n_batch);
        let limit = if kernel == Kernel::Gemm {
            gemm_end.min(batch.end)
        } else {
            batch.end
        };
        let end = (start + max_len).min(limit);
        let run = start..end;
        start = end;
        Some((run, kernel))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_for_row_splits_at_group() {
        assert_eq!(Kernel::for_row(0, 3), Kernel::Gemv);
        assert_eq!(Kernel::for_row(3, 4), Kernel::Gemm);
        assert_eq!(Kernel::for_row(3, 5), Kernel::Gemm);
        assert_eq!(Kernel::for_row(4, 5), Kernel::Gemv);
        assert_eq!(Kernel::for_row(7, 9), Kernel::Gemm);
        assert_eq!(Kernel::for_row(8, 9), Kernel::Gemv);
    }

    #[test]
    fn kernel_runs_cover_batch() {
        let runs: Vec<_> = kernel_runs(2..11, 11, 4).collect();

        assert_eq!(
            runs,
            vec![
                (2..6, Kernel::Gemm),
                (6..8, Kernel::Gemm),
                (8..11, Kernel::Gemv),
            ]
        );
    }
}
