//! Causal grouped-query attention with an optional sliding window and logit soft-cap.

use rayon::prelude::*;

/// Shapes and options of one attention call.
pub(crate) struct AttentionParams {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Keys at `p0` are hidden from a query at `p1` when `p1 - p0 >= window`.
    pub window: Option<usize>,
    /// Scores become `cap * tanh(s / cap)` before the softmax.
    pub softcap: Option<f32>,
}

/// Computes `out = softmax(q kᵀ) v` per head for the queries at positions `first_query..`.
///
/// `q` contains the query rows to compute (`n_head * head_dim` each, already scaled), `k` and
/// `v` every position from 0 (`n_head_kv * head_dim` each), and `out` one row per query.
/// Query row `r` sits at position `first_query + r` and sees keys `0..=first_query + r`
/// within the window.
///
/// The numerics follow ggml's tiled CPU flash-attention kernel, which llama.cpp uses for
/// batches of prompt tokens: f32 scores and weighted sums, the soft-cap applied as
/// `cap * tanh(s * (1/cap))`, and the output multiplied by `1/sum` of the exponentials.
pub(crate) fn attention(
    params: &AttentionParams,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    first_query: usize,
    out: &mut [f32],
) {
    let q_width = params.n_head * params.head_dim;
    let n_kv = k.len() / (params.n_head_kv * params.head_dim);
    let use_avx2 = has_avx2_fma();

    out.par_chunks_mut(q_width)
        .zip(q.par_chunks(q_width))
        .enumerate()
        .for_each_init(
            || vec![0.0f32; n_kv],
            |scores, (r, (out_row, q_row))| {
                let row = QueryRow {
                    pos: first_query + r,
                    q_row,
                    out_row,
                };
                #[cfg(target_arch = "x86_64")]
                if use_avx2 {
                    // SAFETY: the CPU supports AVX2 and FMA, checked by `has_avx2_fma`.
                    unsafe { attend_row_avx2(params, k, v, row, scores) };
                    return;
                }
                let _ = use_avx2;
                attend_row(params, k, v, row, scores);
            },
        );
}

/// One query row: its position, its Q values (all heads) and its output.
struct QueryRow<'a> {
    pos: usize,
    q_row: &'a [f32],
    out_row: &'a mut [f32],
}

/// Reports whether this CPU runs the AVX2 + FMA build of the attention loop.
fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Compiles [`attend_row`] with AVX2 and FMA enabled, so its loops use 256-bit vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_row_avx2(params: &AttentionParams, k: &[f32], v: &[f32], row: QueryRow<'_>, scores: &mut [f32]) {
    attend_row(params, k, v, row, scores);
}

/// Computes every head of one query row.
#[inline(always)]
fn attend_row(params: &AttentionParams, k: &[f32], v: &[f32], row: QueryRow<'_>, scores: &mut [f32]) {
    let head_dim = params.head_dim;
    let kv_width = params.n_head_kv * head_dim;
    let group = params.n_head / params.n_head_kv;
    let pos = row.pos;
    let start = params.window.map_or(0, |w| (pos + 1).saturating_sub(w));
    let visible = start..=pos;

    for h in 0..params.n_head {
        let kv_head = h / group;
        let q_head = &row.q_row[h * head_dim..(h + 1) * head_dim];
        let head_scores = &mut scores[visible.clone()];

        let mut max = f32::NEG_INFINITY;
        for (j, score) in visible.clone().zip(head_scores.iter_mut()) {
            let k_head = &k[j * kv_width + kv_head * head_dim..][..head_dim];
            let mut s = dot(q_head, k_head);
            if let Some(cap) = params.softcap {
                s = crate::ops::soft_cap(s, cap);
            }
            *score = s;
            max = max.max(s);
        }

        let mut sum = 0.0f64;
        for score in head_scores.iter_mut() {
            *score = (*score - max).exp();
            sum += f64::from(*score);
        }

        let out_head = &mut row.out_row[h * head_dim..(h + 1) * head_dim];
        out_head.fill(0.0);
        for (j, &p) in visible.clone().zip(head_scores.iter()) {
            let v_head = &v[j * kv_width + kv_head * head_dim..][..head_dim];
            for (o, &x) in out_head.iter_mut().zip(v_head) {
                *o += p * x;
            }
        }

        let inv_sum = 1.0 / sum as f32;
        for o in out_head.iter_mut() {
            *o *= inv_sum;
        }
    }
}

/// Computes the dot product of two equal-length slices with sixteen f32 partial sums, which
/// the compiler turns into SIMD.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let chunks = a.len() / LANES * LANES;
    for (xa, xb) in a[..chunks].chunks_exact(LANES).zip(b[..chunks].chunks_exact(LANES)) {
        for lane in 0..LANES {
            acc[lane] += xa[lane] * xb[lane];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in a[chunks..].iter().zip(&b[chunks..]) {
        sum += x * y;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_key_returns_its_value() {
        let params = AttentionParams {
            n_head: 2,
            n_head_kv: 1,
            head_dim: 2,
            window: None,
            softcap: None,
        };
        let q = [1.0, 0.0, 0.0, 1.0];
        let k = [0.5, 0.5];
        let v = [3.0, -2.0];
        let mut out = [0.0; 4];
        attention(&params, &q, &k, &v, 0, &mut out);
        assert_eq!(out, [3.0, -2.0, 3.0, -2.0]);
    }

    #[test]
    fn window_hides_old_keys() {
        let params = AttentionParams {
            n_head: 1,
            n_head_kv: 1,
            head_dim: 1,
            window: Some(2),
            softcap: None,
        };
        // Position 2 attends to keys 1 and 2 only; both scores are equal, so it averages v1 and v2.
        let q = [0.0, 0.0, 0.0];
        let k = [0.0, 0.0, 0.0];
        let v = [100.0, 1.0, 3.0];
        let mut out = [0.0; 3];
        attention(&params, &q, &k, &v, 0, &mut out);
        assert_eq!(out, [100.0, 50.5, 2.0]);
    }

    #[test]
    fn softcap_bounds_scores() {
        let params = AttentionParams {
            n_head: 1,
            n_head_kv: 1,
            head_dim: 1,
            window: None,
            softcap: Some(50.0),
        };
        // Raw scores 500 and -500 become about +-50, so the softmax stays finite.
        let q = [0.0, 500.0];
        let k = [1.0, -1.0];
        let v = [1.0, 2.0];
        let mut out = [0.0; 2];
        attention(&params, &q, &k, &v, 0, &mut out);
        assert!(out.iter().all(|x| x.is_finite()));
        assert!((out[1] - 1.0).abs() < 1e-6);
    }
}
