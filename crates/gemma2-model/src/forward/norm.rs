//! RMSNorm as ggml computes it.

/// Normalizes each row of `x` (rows of `weight.len()` values) in place to
/// `x / sqrt(mean(x²) + eps) * weight`.
///
/// Like ggml's `rms_norm`, each square is computed in f32 and accumulated in f64, the scale
/// `1 / sqrtf(mean + eps)` is computed in f32, and the weight is applied as a second
/// multiplication (ggml's separate `mul` node), so the rounding matches llama.cpp.
/// `x.len()` should be a multiple of `weight.len()`; a shorter tail is left unchanged.
pub fn rms_norm_rows(x: &mut [f32], weight: &[f32], eps: f32) {
    let n = weight.len();
    for row in x.chunks_exact_mut(n) {
        let sum: f64 = row.iter().map(|&v| f64::from(v * v)).sum();
        let mean = (sum / n as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for (value, &w) in row.iter_mut().zip(weight) {
            *value = (*value * scale) * w;
        }
    }
}

/// Writes the RMSNorm of each row of `x` into `out` (same layout); see [`rms_norm_rows`].
pub(crate) fn rms_norm_rows_into(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    out.copy_from_slice(x);
    rms_norm_rows(out, weight, eps);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_weight_matches_hand_value() {
        let mut x = [1.0, 2.0, 3.0, 4.0];
        rms_norm_rows(&mut x, &[1.0; 4], 1e-6);
        let expected = [0.365148, 0.730297, 1.095445, 1.460593];
        for (got, want) in x.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }
}
