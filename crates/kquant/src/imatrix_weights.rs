//! Per-element weights of ggml's imatrix-aware Q4_0, Q4_1, Q5_0 and Q5_1 quantizers.

use crate::blocks::QK;

/// Returns the mean square of a whole row (ggml's `sigma2` for the 32-element formats).
///
/// Sums in element order in f32, as ggml does, so that the result is bit-exact.
pub(crate) fn row_sigma2(row: &[f32]) -> f32 {
    let mut sum_x2 = 0.0f32;
    for &v in row {
        sum_x2 += v * v;
    }
    sum_x2 / row.len() as f32
}

/// Returns the weights `importance[j] * sqrt(sigma2 + x[j]^2)` of one 32-element block.
///
/// The `sigma2` term keeps small weights from being ignored when the row is large overall.
pub(crate) fn element_weights(x: &[f32], importance: &[f32], sigma2: f32) -> [f32; QK] {
    std::array::from_fn(|j| importance[j] * (sigma2 + x[j] * x[j]).sqrt())
}
