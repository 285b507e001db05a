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

/// Output values per register-resident slice of the V accumulation: eight AVX2 or four
/// AVX-512 registers.
const V_SLICE: usize = 64;

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
    attention_with(detect_isa(), params, q, k, v, first_query, out);
}

/// Runs [`attention`] with the loop built for `isa`.
fn attention_with(
    isa: Isa,
    params: &AttentionParams,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    first_query: usize,
    out: &mut [f32],
) {
    let q_width = params.n_head * params.head_dim;
    let keys = TransposedKeys::new(params, k);

    out.par_chunks_mut(q_width)
        .zip(q.par_chunks(q_width))
        .enumerate()
        .for_each_init(
            || Scratch { acc: Vec::new() },
            |scratch, (r, (out_row, q_row))| {
                let row = QueryRow {
                    pos: first_query + r,
                    q_row,
                    out_row,
                };
                attend_row(isa, params, &keys, v, row, scratch);
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

/// Per-thread buffers: the output accumulators of the heads computed together.
struct Scratch {
    acc: Vec<f32>,
}

/// One query row: its position, its Q values (all heads) and its output.
struct QueryRow<'a> {
    pos: usize,
    q_row: &'a [f32],
    out_row: &'a mut [f32],
}

/// The instruction sets the attention loop is compiled for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Isa {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// Returns the widest build of the attention loop this CPU runs.
fn detect_isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        let fma = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        if fma && is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if fma {
            return Isa::Avx2;
        }
    }
    Isa::Scalar
}

/// Computes one query row with the loop built for `isa`.
fn attend_row(isa: Isa, params: &AttentionParams, keys: &TransposedKeys, v: &[f32], row: QueryRow<'_>, scratch: &mut Scratch) {
    match isa {
        // SAFETY: `detect_isa` found AVX-512 F, AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { attend_row_avx512(params, keys, v, row, scratch) },
        // SAFETY: `detect_isa` found AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { attend_row_avx2(params, keys, v, row, scratch) },
        Isa::Scalar => attend_heads_in_groups::<1>(params, keys, v, row, scratch),
    }
}

/// Builds the row loop with AVX-512, where four heads' 64 scores (or 64 output values)
/// fit in 16 of the 32 vector registers, so each K or V load serves four heads.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn attend_row_avx512(params: &AttentionParams, keys: &TransposedKeys, v: &[f32], row: QueryRow<'_>, scratch: &mut Scratch) {
    attend_heads_in_groups::<4>(params, keys, v, row, scratch);
}

/// Builds the row loop with AVX2 and FMA, one head at a time: a head's 64 scores already
/// take 8 of the 16 vector registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_row_avx2(params: &AttentionParams, keys: &TransposedKeys, v: &[f32], row: QueryRow<'_>, scratch: &mut Scratch) {
    attend_heads_in_groups::<1>(params, keys, v, row, scratch);
}

/// Computes every head of one query row, up to `MAX_HEADS` heads of one KV head at a time.
/// Each head's arithmetic is the same whatever the count.
#[inline(always)]
fn attend_heads_in_groups<const MAX_HEADS: usize>(
    params: &AttentionParams,
    keys: &TransposedKeys,
    v: &[f32],
    row: QueryRow<'_>,
    scratch: &mut Scratch,
) {
    let group = params.n_head / params.n_head_kv;
    let together = [4, 2, 1].into_iter().find(|&n| n <= MAX_HEADS && group % n == 0).unwrap_or(1);
    let head_dim = params.head_dim;
    scratch.acc.resize(together * head_dim, 0.0);

    for first in (0..params.n_head).step_by(together) {
        let heads = first * head_dim..(first + together) * head_dim;
        let q = &row.q_row[heads.clone()];
        let out = &mut row.out_row[heads];
        match together {
            4 => attend_heads::<4>(params, keys, v, row.pos, first / group, q, out, &mut scratch.acc),
            2 => attend_heads::<2>(params, keys, v, row.pos, first / group, q, out, &mut scratch.acc),
            _ => attend_heads::<1>(params, keys, v, row.pos, first / group, q, out, &mut scratch.acc),
        }
    }
}

/// Computes `HEADS` consecutive heads that share KV head `kv_head`, tile by tile. `q` and
/// `out` contain those heads (`HEADS * head_dim` values) and `acc` is their scratch.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // one call site per head count, all in this file
fn attend_heads<const HEADS: usize>(
    params: &AttentionParams,
    keys: &TransposedKeys,
    v: &[f32],
    pos: usize,
    kv_head: usize,
    q: &[f32],
    out: &mut [f32],
    acc: &mut [f32],
) {
    let head_dim = params.head_dim;
    let kv_width = params.n_head_kv * head_dim;
    let first_visible = params.window.map_or(0, |w| (pos + 1).saturating_sub(w));
    let visible_end = (pos + 1).min(keys.n_kv);
    let q_heads: [&[f32]; HEADS] = std::array::from_fn(|g| &q[g * head_dim..(g + 1) * head_dim]);

    acc.fill(0.0);
    let mut max = [f32::NEG_INFINITY; HEADS];
    let mut sum = [0.0f32; HEADS];

    for tile_start in (0..visible_end).step_by(KV_TILE) {
        // Keys outside [lo, hi) are masked to -inf. A tile without visible keys changes
        // nothing in ggml either, because it skips the tile or this row of it.
        let lo = first_visible.max(tile_start) - tile_start;
        let hi = visible_end.min(tile_start + KV_TILE) - tile_start;
        if lo >= hi {
            continue;
        }

        // Every key of the tile is scored, so that the running sums stay in registers (a
        // local array, which a panic need not leave in memory). The scores of masked keys
        // are never read.
        let mut scores = [[0.0f32; KV_TILE]; HEADS];
        for d in 0..head_dim {
            let k_tile: &[f32; KV_TILE] = keys.dim(kv_head, head_dim, d)[tile_start..tile_start + KV_TILE]
                .try_into()
                .expect("keys are padded to whole tiles");
            for (head_scores, q_head) in scores.iter_mut().zip(&q_heads) {
                let q_d = q_head[d];
                for (score, &k_value) in head_scores.iter_mut().zip(k_tile) {
                    *score = q_d.mul_add(k_value, *score);
                }
            }
        }

        let mut weights = [[0.0f32; KV_TILE]; HEADS];
        for g in 0..HEADS {
            let head_scores = &mut scores[g];
            if let Some(cap) = params.softcap {
                for score in head_scores[lo..hi].iter_mut() {
                    *score = crate::ops::soft_cap(*score, cap);
                }
            }

            let tile_max = head_scores[lo..hi].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let new_max = max[g].max(tile_max);
            if new_max > max[g] {
                let rescale = (max[g] - new_max).exp();
                for value in acc[g * head_dim..(g + 1) * head_dim].iter_mut() {
                    *value *= rescale;
                }
                sum[g] *= rescale;
            }
            max[g] = new_max;

            // Weights of masked keys are exactly 0, as ggml's expf(-inf) is.
            for j in lo..hi {
                weights[g][j] = ggml_exp::expf(head_scores[j] - new_max);
            }
            let mut tile_sum = 0.0f64;
            for lanes in weights[g].chunks_exact(ggml_exp::SOFTMAX_LANES) {
                let lanes: &[f32; ggml_exp::SOFTMAX_LANES] = lanes.try_into().expect("exact chunk");
                tile_sum += f64::from(ggml_exp::reduce_add_16(lanes));
            }
            sum[g] = (f64::from(sum[g]) + tile_sum) as f32;
        }

        // Each output value is one chain over the keys, so the head is split into
        // register-sized slices, each running through every key of the tile.
        let v_base = kv_head * head_dim;
        let n_slices = head_dim / V_SLICE;
        for index in 0..n_slices {
            let offset = index * V_SLICE;
            let mut sums: [[f32; V_SLICE]; HEADS] = std::array::from_fn(|g| {
                acc[g * head_dim + offset..][..V_SLICE].try_into().expect("inside the head")
            });
            for j in lo..hi {
                let v_slice: &[f32; V_SLICE] =
                    v[(tile_start + j) * kv_width + v_base + offset..][..V_SLICE].try_into().expect("inside the row");
                for (head_sums, head_weights) in sums.iter_mut().zip(&weights) {
                    let weight = head_weights[j];
                    for (a, &x) in head_sums.iter_mut().zip(v_slice) {
                        *a = weight.mul_add(x, *a);
                    }
                }
            }
            for (g, head_sums) in sums.iter().enumerate() {
                acc[g * head_dim + offset..][..V_SLICE].copy_from_slice(head_sums);
            }
        }
        let tail = n_slices * V_SLICE..head_dim;
        if !tail.is_empty() {
            for (g, head_weights) in weights.iter().enumerate() {
                let head_acc = &mut acc[g * head_dim..(g + 1) * head_dim];
                for j in lo..hi {
                    let v_tail = &v[(tile_start + j) * kv_width + v_base + tail.start..][..tail.len()];
                    for (a, &x) in head_acc[tail.clone()].iter_mut().zip(v_tail) {
                        *a = head_weights[j].mul_add(x, *a);
                    }
                }
            }
        }
    }

    for g in 0..HEADS {
        let inv_sum = if sum[g] == 0.0 { 0.0 } else { 1.0 / sum[g] };
        let head_out = &mut out[g * head_dim..(g + 1) * head_dim];
        for (o, &a) in head_out.iter_mut().zip(&acc[g * head_dim..(g + 1) * head_dim]) {
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

        // Every build of the loop this CPU runs gives the same bits.
        for isa in available_isas() {
            let mut other = vec![0.0; q.len()];
            attention_with(isa, &params, &q, &k, &v, 0, &mut other);
            assert_eq!(count_different_bits(&other, &out), 0);
        }
        out
    }

    /// Returns the builds of the attention loop that this CPU runs.
    fn available_isas() -> Vec<Isa> {
        let mut isas = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                isas.push(Isa::Avx2);
            }
            if detect_isa() == Isa::Avx512 {
                isas.push(Isa::Avx512);
            }
        }
        isas
    }

    /// Returns `n` pseudo-random values in [-scale, scale).
    fn noise(n: usize, seed: u32, scale: f32) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    /// Computes attention one head and one key at a time, in the float order that
    /// [`attention`] documents, without tiles in registers or heads computed together.
    fn plain_attention(params: &AttentionParams, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f32> {
        let head_dim = params.head_dim;
        let kv_width = params.n_head_kv * head_dim;
        let group = params.n_head / params.n_head_kv;
        let n_tokens = k.len() / kv_width;
        let mut out = vec![0.0; q.len()];

        for pos in 0..n_tokens {
            let first_visible = params.window.map_or(0, |w| (pos + 1).saturating_sub(w));
            for h in 0..params.n_head {
                let q_head = &q[(pos * params.n_head + h) * head_dim..][..head_dim];
                let kv = (h / group) * head_dim;
                let mut acc = vec![0.0f32; head_dim];
                let mut max = f32::NEG_INFINITY;
                let mut sum = 0.0f32;

                for tile_start in (0..=pos).step_by(KV_TILE) {
                    let keys: Vec<usize> = (tile_start..(tile_start + KV_TILE).min(pos + 1)).filter(|&j| j >= first_visible).collect();
                    if keys.is_empty() {
                        continue;
                    }
                    let scores: Vec<f32> = keys
                        .iter()
                        .map(|&j| {
                            let k_row = &k[j * kv_width + kv..][..head_dim];
                            let score = q_head.iter().zip(k_row).fold(0.0f32, |s, (&a, &b)| a.mul_add(b, s));
                            params.softcap.map_or(score, |cap| crate::ops::soft_cap(score, cap))
                        })
                        .collect();

                    let new_max = scores.iter().copied().fold(max, f32::max);
                    if new_max > max {
                        let rescale = (max - new_max).exp();
                        acc.iter_mut().for_each(|a| *a *= rescale);
                        sum *= rescale;
                    }
                    max = new_max;

                    let mut weights = [0.0f32; KV_TILE];
                    for (&j, &score) in keys.iter().zip(&scores) {
                        weights[j - tile_start] = ggml_exp::expf(score - max);
                    }
                    let tile_sum: f64 = weights
                        .chunks_exact(ggml_exp::SOFTMAX_LANES)
                        .map(|lanes| f64::from(ggml_exp::reduce_add_16(lanes.try_into().unwrap())))
                        .fold(0.0, |total, lanes| total + lanes);
                    sum = (f64::from(sum) + tile_sum) as f32;

                    for &j in &keys {
                        let v_row = &v[j * kv_width + kv..][..head_dim];
                        for (a, &x) in acc.iter_mut().zip(v_row) {
                            *a = weights[j - tile_start].mul_add(x, *a);
                        }
                    }
                }

                let inv_sum = if sum == 0.0 { 0.0 } else { 1.0 / sum };
                for (o, a) in out[(pos * params.n_head + h) * head_dim..][..head_dim].iter_mut().zip(&acc) {
                    *o = a * inv_sum;
                }
            }
        }
        out
    }

    #[test]
    fn head_groups_match_plain_loop_bits() {
        // 8 query heads on 2 KV heads (groups of 4), 80 dimensions (one 64-value slice and
        // a tail), 150 positions (a partial last tile), window and soft-cap.
        let params = AttentionParams {
            n_head: 8,
            n_head_kv: 2,
            head_dim: 80,
            window: Some(100),
            softcap: Some(30.0),
        };
        let n_tokens = 150;
        let q = noise(n_tokens * 8 * 80, 1, 2.0);
        let k = noise(n_tokens * 2 * 80, 2, 2.0);
        let v = noise(n_tokens * 2 * 80, 3, 1.0);

        let plain = plain_attention(&params, &q, &k, &v);
        assert!(plain.iter().all(|x| x.is_finite()));
        for isa in available_isas() {
            let mut out = vec![0.0; q.len()];
            attention_with(isa, &params, &q, &k, &v, 0, &mut out);
            assert_eq!(count_different_bits(&out, &plain), 0);
        }
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
