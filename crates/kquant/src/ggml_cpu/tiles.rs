//! The per-element product loop that the scalar and single-row kernels of this module share.

use bytemuck::Pod;
use gguf_format::GgmlType;
use rayon::prelude::*;

use crate::matmul::{tile_blocks, OutPtr, QuantizedActivations, WeightMatrix};
use crate::QuantError;

/// Weight rows per parallel tile: 32 rows of a 640-column Q8_0 matrix are 21.8 KB, which
/// stays in a 32 KB L1 data cache while the tile's activation rows stream past it.
pub(crate) const ROW_TILE: usize = 32;

/// Activation rows per parallel tile.
pub(crate) const BATCH_TILE: usize = 64;

/// Computes `out[b * n_rows + r] = dot(weight row r, activation row b)` on the rayon pool.
///
/// `acts` contains `n_batch` rows of equal length, and `dot` computes one output element from
/// start to end, so the result does not depend on the number of threads.
pub(crate) fn for_each_element<W: Pod + Send + Sync, A: Sync>(
    weight: &WeightMatrix,
    acts: &[A],
    n_batch: usize,
    out: &mut [f32],
    dot: impl Fn(&[W], &[A]) -> f32 + Sync,
) {
    let n_rows = weight.n_rows();
    assert_eq!(out.len(), n_rows * n_batch, "output length");
    if n_batch == 0 || n_rows == 0 {
        return;
    }
    let act_row_len = acts.len() / n_batch;
    let row_tiles = n_rows.div_ceil(ROW_TILE);
    let batch_tiles = n_batch.div_ceil(BATCH_TILE);
    let out_ptr = OutPtr(out.as_mut_ptr());

    (0..row_tiles * batch_tiles).into_par_iter().for_each_init(Vec::<W>::new, |copied, tile| {
        let rows = (tile / batch_tiles) * ROW_TILE..((tile / batch_tiles + 1) * ROW_TILE).min(n_rows);
        let batch = (tile % batch_tiles) * BATCH_TILE..((tile % batch_tiles + 1) * BATCH_TILE).min(n_batch);
        let tile_weights = tile_blocks(weight, &rows, copied);
        let blocks_per_row = tile_weights.len() / rows.len();

        for b in batch {
            let act_row = &acts[b * act_row_len..(b + 1) * act_row_len];
            for (i, r) in rows.clone().enumerate() {
                let w_row = &tile_weights[i * blocks_per_row..(i + 1) * blocks_per_row];
                let value = dot(w_row, act_row);
                // SAFETY: tiles partition the (row, batch) grid, so this element is written by
                // this tile only, and `b * n_rows + r < out.len()` was checked above.
                unsafe { out_ptr.write(b * n_rows + r, value) };
            }
        }
    });
}

/// Builds the error for activations stored as another type than `expected`.
pub(crate) fn mismatch(
    weight: &WeightMatrix,
    activations: &QuantizedActivations,
    expected: GgmlType,
) -> QuantError {
    QuantError::ActivationMismatch {
        weight_type: weight.ggml_type(),
        weight_cols: weight.n_cols(),
        expected_type: expected,
        found_type: activations.ggml_type(),
        found_cols: activations.n_cols(),
    }
}
