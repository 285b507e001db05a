//! Weight matrix products, with the activation hook in front of them.

use gguf_format::GgmlType;
use rayon::prelude::*;

use super::attention::dot;
use crate::error::ModelError;
use crate::hook::MatmulHook;
use crate::tensor::WeightTensor;

/// Computes `out = x · wᵀ`: `x` is `n_batch` rows of `w.n_cols`, `out` is `n_batch` rows of
/// `w.n_rows`. The hook, when set, first receives `x` under the weight's name.
///
/// Activations are rounded to the weight's ggml vec-dot type before the products, as ggml's
/// CPU backend does (F32 weights: none; F16: f16; BF16: bf16).
pub(crate) fn matmul(
    w: &WeightTensor,
    x: &[f32],
    n_batch: usize,
    out: &mut [f32],
    hook: &mut Option<&mut dyn MatmulHook>,
) -> Result<(), ModelError> {
    debug_assert_eq!(x.len(), n_batch * w.n_cols);
    debug_assert_eq!(out.len(), n_batch * w.n_rows);

    if let Some(hook) = hook.as_deref_mut() {
        hook.on_matmul_input(&w.name, x, n_batch, w.n_cols);
    }

    match w.ggml_type {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
            float_matmul(w, x, n_batch, out);
            Ok(())
        }
        other => Err(ModelError::UnsupportedTensorType {
            name: w.name.clone(),
            ggml_type: other,
            reason: "no matmul kernel for this type yet".into(),
        }),
    }
}

/// Number of weight rows decoded to f32 at once by the float path.
const ROW_TILE: usize = 16;

/// Computes the product for F32, F16 and BF16 weights, one tile of weight rows per task.
fn float_matmul(w: &WeightTensor, x: &[f32], n_batch: usize, out: &mut [f32]) {
    let n_cols = w.n_cols;
    let n_rows = w.n_rows;

    let x_rounded: Vec<f32>;
    let x = match w.ggml_type {
        GgmlType::F16 => {
            x_rounded = x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
            &x_rounded[..]
        }
        GgmlType::BF16 => {
            x_rounded = x.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect();
            &x_rounded[..]
        }
        _ => x,
    };

    // Each task owns a tile of weight rows and returns its outputs, which are then
    // scattered into the batch-major `out`.
    let tiles: Vec<(usize, Vec<f32>)> = (0..n_rows.div_ceil(ROW_TILE))
        .into_par_iter()
        .map(|tile| {
            let r0 = tile * ROW_TILE;
            let r1 = (r0 + ROW_TILE).min(n_rows);
            let mut rows = vec![0.0f32; (r1 - r0) * n_cols];
            for (r, dst) in (r0..r1).zip(rows.chunks_exact_mut(n_cols)) {
                w.dequantize_row(r, dst).expect("float rows always decode");
            }
            let mut result = vec![0.0f32; n_batch * (r1 - r0)];
            for (b, x_row) in x.chunks_exact(n_cols).enumerate() {
                for (i, w_row) in rows.chunks_exact(n_cols).enumerate() {
                    result[b * (r1 - r0) + i] = dot(x_row, w_row);
                }
            }
            (r0, result)
        })
        .collect();

    for (r0, result) in tiles {
        let width = result.len() / n_batch;
        for b in 0..n_batch {
            out[b * n_rows + r0..b * n_rows + r0 + width].copy_from_slice(&result[b * width..(b + 1) * width]);
        }
    }
}
