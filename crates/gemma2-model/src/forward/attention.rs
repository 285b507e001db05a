//! Causal grouped-query attention with an optional sliding window and logit soft-cap.

use rayon::prelude::*;

use super::ggml_exp;

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

/// Keys per tile of ggml's tiled flash-attention kernel (`GGML_FA_TILE_KV`); the online
/// softmax rescales once per tile, so the tile size fixes the rounding.
const KV_TILE: usize = 64;

/// Computes `out = softmax(q kᵀ) v` per head for the queries at positions `first_query..`.
///
/// `q` contains the query rows to compute (`n_head * head_dim` each, already scaled), `k` and
/// `v` every position from 0 (`n_head_kv * head_dim` each), and `out` one row per query.
/// Query row `r` sits at position `first_query + r` and sees keys `0..=first_query + r`
/// within the window.
///
/// The float order is that of ggml's tiled CPU flash-attention kernel on an AVX-512 build
/// (`ggml_compute_forward_flash_attn_ext_tiled`, which llama.cpp runs for 64 or more query
/// rows with an F16 KV cache). It works on tiles of 64 keys. Each score is one fused
/// multiply-add chain over `head_dim`, and the soft-cap is `cap * tanh(s * (1/cap))`. The
/// running max and sum are rescaled with libm's `expf`, while the weights come from
/// [`ggml_exp::expf`] and their sum is formed 16 lanes at a time into an f64. Each output
/// value is one fused multiply-add chain over the keys, scaled by `1/sum` at the end.
pub(crate) fn attention(
    params: &AttentionParams,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    first_query: usize,
    out: &mut [f32],
) {
    let q_width = params.n_head * params.head_dim;
    let keys = TransposedKeys::new(params, k);
    let use_fma = has_avx2_fma();

    out.par_chunks_mut(q_width)
        .zip(q.par_chunks(q_width))
        .enumerate()
        .for_each_init(
            || Scratch {
                scores: [0.0; KV_TILE],
                acc: vec![0.0; params.head_dim],
            },
            |scratch, (r, (out_row, q_row))| {
                let row = QueryRow {
                    pos: first_query + r,
                    q_row,
                    out_row,
                };
                #[cfg(target_arch = "x86_64")]
                if use_fma {
                    // SAFETY: the CPU supports AVX2 and FMA, checked by `has_avx2_fma`.
                    unsafe { attend_row_fma(params, &keys, v, row, scratch) };
                    return;
                }
                let _ = use_fma;
                attend_row(params, &keys, v, row, scratch);
            },
        );
}

/// Keys laid out as `[kv_head][dim][position]`, positions padded to whole tiles, so that
/// the scores of one tile are contiguous in every dimension, as ggml packs its K tile.
struct TransposedKeys {
    data: Vec<f32>,
    n_kv: usize,
    /// Row length: `n_kv` rounded up to a multiple of [`KV_TILE`].
    stride: usize,
}

impl TransposedKeys {
    fn new(params: &AttentionParams, k: &[f32]) -> TransposedKeys {
        let head_dim = params.head_dim;
        let kv_width = params.n_head_kv * head_dim;
        let n_kv = k.len() / kv_width;
        let stride = n_kv.div_ceil(KV_TILE) * KV_TILE;

        let mut data = vec![0.0; kv_width * stride];
        for (pos, k_row) in k.chunks_exact(kv_width).enumerate() {
            for (i, &value) in k_row.iter().enumerate() {
                data[i * stride + pos] = value;
            }
        }
        TransposedKeys { data, n_kv, stride }
    }

    /// Returns the values of dimension `d` of KV head `kv_head` for every position.
    fn dim(&self, kv_head: usize, head_dim: usize, d: usize) -> &[f32] {
        let start = (kv_head * head_dim + d) * self.stride;
        &self.data[start..start + self.stride]
    }
}

/// Per-thread buffers: the scores of one tile and the output accumulator of one head.
struct Scratch {
    scores: [f32; KV_TILE],
    acc: Vec<f32>,
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

/// Compiles [`attend_row`] with AVX2 and FMA enabled, so that `mul_add` is one instruction
/// and the loops use 256-bit vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_row_fma(
    params: &AttentionParams,
    keys: &TransposedKeys,
    v: &[f32],
    row: QueryRow<'_>,
    scratch: &mut Scratch,
) {
    attend_row(params, keys, v, row, scratch);
}

/// Computes every head of one query row, tile by tile.
#[inline(always)]
fn attend_row(params: &AttentionParams, keys: &TransposedKeys, v: &[f32], row: QueryRow<'_>, scratch: &mut Scratch) {
    let head_dim = params.head_dim;
    let kv_width = params.n_head_kv * head_dim;
    let group = params.n_head / params.n_head_kv;
    let pos = row.pos;
    let first_visible = params.window.map_or(0, |w| (pos + 1).saturating_sub(w));
    let visible_end = (pos + 1).min(keys.n_kv);

    for h in 0..params.n_head {
        let kv_head = h / group;
        let q_head = &row.q_row[h * head_dim..(h + 1) * head_dim];
        let acc = &mut scratch.acc;
        acc.fill(0.0);
        let mut max = f32::NEG_INFINITY;
        let mut sum = 0.0f32;

        for tile_start in (0..visible_end).step_by(KV_TILE) {
            // Keys outside [lo, hi) are masked to -inf. A tile without visible keys changes
            // nothing in ggml either, because it skips the tile or this row of it.
            let lo = first_visible.max(tile_start) - tile_start;
            let hi = visible_end.min(tile_start + KV_TILE) - tile_start;
            if lo >= hi {
                continue;
            }

            let scores = &mut scratch.scores;
            scores.fill(0.0);
            for (d, &q_d) in q_head.iter().enumerate() {
                let k_dim = &keys.dim(kv_head, head_dim, d)[tile_start + lo..tile_start + hi];
                for (score, &k_value) in scores[lo..hi].iter_mut().zip(k_dim) {
                    *score = q_d.mul_add(k_value, *score);
                }
            }
            if let Some(cap) = params.softcap {
                for score in scores[lo..hi].iter_mut() {
                    *score = crate::ops::soft_cap(*score, cap);
                }
            }

            let tile_max = scores[lo..hi].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let new_max = max.max(tile_max);
            if new_max > max {
                let rescale = (max - new_max).exp();
                for value in acc.iter_mut() {
                    *value *= rescale;
                }
                sum *= rescale;
            }
            max = new_max;

            // Weights of masked keys are exactly 0, as ggml's expf(-inf) is.
            let mut weights = [0.0f32; KV_TILE];
            for j in lo..hi {
                weights[j] = ggml_exp::expf(scores[j] - max);
            }
            let mut tile_sum = 0.0f64;
            for group in weights.chunks_exact(ggml_exp::SOFTMAX_LANES) {
                let lanes: &[f32; ggml_exp::SOFTMAX_LANES] = group.try_into().expect("exact chunk");
                tile_sum += f64::from(ggml_exp::reduce_add_16(lanes));
            }
            sum = (f64::from(sum) + tile_sum) as f32;

            for (j, &weight) in weights.iter().enumerate().take(hi).skip(lo) {
                let v_head = &v[(tile_start + j) * kv_width + kv_head * head_dim..][..head_dim];
                for (a, &x) in acc.iter_mut().zip(v_head) {
                    *a = weight.mul_add(x, *a);
                }
            }
        }

        let inv_sum = if sum == 0.0 { 0.0 } else { 1.0 / sum };
        let out_head = &mut row.out_row[h * head_dim..(h + 1) * head_dim];
        for (o, &a) in out_head.iter_mut().zip(acc.iter()) {
            *o = a * inv_sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes little-endian f32 values.
    fn f32_values(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// Runs the golden case of `scripts/ggml-oracle/attention_golden.cpp`: 80 tokens, 2 query
    /// heads sharing 1 KV head of 32 dimensions, F16-rounded K and V.
    fn golden_attention(window: Option<usize>, softcap: Option<f32>, q_factor: f32) -> Vec<f32> {
        let params = AttentionParams {
            n_head: 2,
            n_head_kv: 1,
            head_dim: 32,
            window,
            softcap,
        };
        let q: Vec<f32> = f32_values(include_bytes!("../../tests/data/ggml-golden/attn_q.f32"))
            .iter()
            .map(|x| x * q_factor)
            .collect();
        let k = f32_values(include_bytes!("../../tests/data/ggml-golden/attn_k.f32"));
        let v = f32_values(include_bytes!("../../tests/data/ggml-golden/attn_v.f32"));
        let mut out = vec![0.0; q.len()];
        attention(&params, &q, &k, &v, 0, &mut out);
        out
    }

    /// Returns how many values differ in their bits, for the assert message.
    fn count_different_bits(ours: &[f32], ggml: &[f32]) -> usize {
        ours.iter().zip(ggml).filter(|(a, b)| a.to_bits() != b.to_bits()).count()
    }

    #[test]
    fn causal_matches_ggml_bits() {
        let ours = golden_attention(None, None, 1.0);
        let ggml = f32_values(include_bytes!("../../tests/data/ggml-golden/attn_out_causal.f32"));
        assert_eq!(ours.len(), ggml.len());
        assert_eq!(count_different_bits(&ours, &ggml), 0);
    }

    #[test]
    fn window_matches_ggml_bits() {
        let ours = golden_attention(Some(40), None, 1.0);
        let ggml = f32_values(include_bytes!("../../tests/data/ggml-golden/attn_out_window40.f32"));
        assert_eq!(count_different_bits(&ours, &ggml), 0);
    }

    #[test]
    fn softcap_matches_ggml_bits() {
        let ours = golden_attention(None, Some(50.0), 20.0);
        let ggml = f32_values(include_bytes!("../../tests/data/ggml-golden/attn_out_softcap50_q20x.f32"));
        assert_eq!(count_different_bits(&ours, &ggml), 0);
    }

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
