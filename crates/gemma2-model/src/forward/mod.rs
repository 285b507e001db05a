//! The Gemma 2 / Gemma 3 graph, evaluated for a whole batch of tokens at once.

mod attention;
pub(crate) mod gelu;
mod ggml_exp;
mod matmul;
pub(crate) mod norm;
mod rope;

use std::ops::Range;

use crate::error::ModelError;
use crate::hook::MatmulHook;
use crate::{Model, Numerics};

use attention::{attention, AttentionParams};
use matmul::{matmul, matmul_shared_input};
use norm::{rms_norm_rows, rms_norm_rows_into};
use rope::RopeTable;

/// Activation buffers of one forward pass, sized for `n` tokens.
struct Scratch {
    /// The residual stream, `n x n_embd`.
    residual: Vec<f32>,
    /// A normalized copy of the residual, `n x n_embd`.
    normed: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    /// Output of a projection back to `n_embd` (attention output, FFN down).
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
}

impl Model {
    /// Evaluates `tokens` at positions `0..tokens.len()` (a fresh context) and returns the
    /// logits of positions `logits_from..tokens.len()`, row-major with `n_vocab` values per
    /// row.
    ///
    /// The whole sequence is one batch, as llama.cpp evaluates a perplexity chunk. Asking
    /// only for the last rows saves most of the LM head's cost. `hook`, when set, observes
    /// the input of every weight matmul (see [`MatmulHook`]).
    ///
    /// # Errors
    /// [`ModelError::InvalidInput`] for an empty `tokens` or `logits_from > tokens.len()`,
    /// [`ModelError::TokenOutOfRange`] for a token id `>= n_vocab`, and
    /// [`ModelError::InvalidInput`] when a logit comes out non-finite (a corrupt weight).
    pub fn forward(
        &self,
        tokens: &[u32],
        logits_from: usize,
        hook: Option<&mut dyn MatmulHook>,
    ) -> Result<Vec<f32>, ModelError> {
        let mut result = Vec::new();
        self.forward_sequences(&[tokens], logits_from, hook, &mut |_, logits| {
            result = logits;
        })?;
        Ok(result)
    }

    /// Evaluates several independent sequences as one batch, each at positions
    /// `0..len` in its own fresh context, and passes the logits of positions
    /// `logits_from..len` of sequence `i` to `on_logits(i, logits)`, in sequence order.
    ///
    /// This is how llama-imatrix and llama-perplexity evaluate `n_batch / n_ctx` chunks at
    /// once. Every matmul runs on the rows of all sequences, concatenated in sequence order,
    /// so `hook` receives `sum(len)` rows per call. Each row's values are those that
    /// [`Model::forward`] gives for its sequence alone. The logits are made one sequence at a
    /// time, so at most one sequence's logits are held at once.
    ///
    /// # Errors
    /// As [`Model::forward`], for every sequence; also [`ModelError::InvalidInput`] for an
    /// empty `sequences`. `logits_from` must not exceed the shortest sequence.
    pub fn forward_sequences(
        &self,
        sequences: &[&[u32]],
        logits_from: usize,
        mut hook: Option<&mut dyn MatmulHook>,
        on_logits: &mut dyn FnMut(usize, Vec<f32>),
    ) -> Result<(), ModelError> {
        let config = &self.config;
        if sequences.is_empty() {
            return Err(ModelError::InvalidInput("no sequences to evaluate".into()));
        }
        let mut ranges = Vec::with_capacity(sequences.len());
        let mut n = 0;
        for (index, tokens) in sequences.iter().enumerate() {
            if tokens.is_empty() {
                let location = if sequences.len() == 1 { String::new() } else { format!(" in sequence {index}") };
                return Err(ModelError::InvalidInput(format!("no tokens to evaluate{location}")));
            }
            if logits_from > tokens.len() {
                return Err(ModelError::InvalidInput(format!(
                    "logits_from {logits_from} is past the end of {} tokens",
                    tokens.len()
                )));
            }
            if let Some((offset, &token)) = tokens
                .iter()
                .enumerate()
                .find(|(_, &t)| t as usize >= config.n_vocab)
            {
                return Err(ModelError::TokenOutOfRange {
                    token,
                    position: offset,
                    n_vocab: config.n_vocab,
                });
            }
            ranges.push(n..n + tokens.len());
            n += tokens.len();
        }
        let longest = sequences.iter().map(|t| t.len()).max().unwrap_or(0);

        let n_embd = config.n_embd;
        let q_dim = config.n_head * config.head_dim;
        let kv_dim = config.n_head_kv * config.head_dim;
        let mut s = Scratch {
            residual: vec![0.0; n * n_embd],
            normed: vec![0.0; n * n_embd],
            q: vec![0.0; n * q_dim],
            k: vec![0.0; n * kv_dim],
            v: vec![0.0; n * kv_dim],
            attn: vec![0.0; n * q_dim],
            proj: vec![0.0; n * n_embd],
            gate: vec![0.0; n * config.n_ff],
            up: vec![0.0; n * config.n_ff],
        };

        for (tokens, range) in sequences.iter().zip(&ranges) {
            self.embed(tokens, &mut s.residual[range.start * n_embd..range.end * n_embd])?;
        }

        let (base, factor) = config.rope_params(0);
        let rope_local = RopeTable::new(longest, config.head_dim, base, factor, self.numerics);
        let global_layer = config.swa_pattern - 1;
        let (base, factor) = config.rope_params(global_layer);
        let rope_global = RopeTable::new(longest, config.head_dim, base, factor, self.numerics);

        for il in 0..config.n_layer {
            let rope = if config.is_sliding(il) { &rope_local } else { &rope_global };
            self.layer(il, n, &ranges, rope, &mut s, &mut hook)?;
        }

        for (index, range) in ranges.iter().enumerate() {
            let rows = &s.residual[(range.start + logits_from) * n_embd..range.end * n_embd];
            let logits = self.output_logits(rows, range.len() - logits_from, &mut hook)?;
            on_logits(index, logits);
        }
        Ok(())
    }

    /// Writes `token_embd` rows scaled by `sqrt(n_embd)` into `out`.
    fn embed(&self, tokens: &[u32], out: &mut [f32]) -> Result<(), ModelError> {
        let n_embd = self.config.n_embd;
        let scale = crate::ops::embedding_scale(n_embd);
        for (&token, row) in tokens.iter().zip(out.chunks_exact_mut(n_embd)) {
            self.weights.token_embd.dequantize_row(token as usize, row)?;
            for value in row.iter_mut() {
                *value *= scale;
            }
        }
        Ok(())
    }

    /// Runs transformer block `il` on the residual stream in `s.residual`.
    fn layer(
        &self,
        il: usize,
        n: usize,
        sequences: &[Range<usize>],
        rope: &RopeTable,
        s: &mut Scratch,
        hook: &mut Option<&mut dyn MatmulHook>,
    ) -> Result<(), ModelError> {
        let config = &self.config;
        let layer = &self.weights.layers[il];
        let eps = config.rms_eps;
        let head_dim = config.head_dim;

        // Attention block: pre-norm, projections, per-head norm (Gemma 3), RoPE, scale.
        rms_norm_rows_into(&s.residual, &layer.attn_norm, eps, &mut s.normed);
        matmul_shared_input(
            &mut [(&layer.attn_q, &mut s.q), (&layer.attn_k, &mut s.k), (&layer.attn_v, &mut s.v)],
            &s.normed,
            n,
            hook,
        )?;

        if let (Some(q_norm), Some(k_norm)) = (&layer.attn_q_norm, &layer.attn_k_norm) {
            rms_norm_rows(&mut s.q, q_norm, eps);
            rms_norm_rows(&mut s.k, k_norm, eps);
        }

        let q_dim = config.n_head * head_dim;
        let kv_dim = config.n_head_kv * head_dim;
        for range in sequences {
            let q_rows = s.q[range.start * q_dim..range.end * q_dim].chunks_exact_mut(q_dim);
            for (pos, row) in q_rows.enumerate() {
                rope.apply(row, pos);
                for value in row.iter_mut() {
                    *value *= config.query_scale;
                }
            }
            for (pos, row) in s.k[range.start * kv_dim..range.end * kv_dim].chunks_exact_mut(kv_dim).enumerate() {
                rope.apply(row, pos);
            }
        }

        // llama.cpp stores K and V in its KV cache, whose default type is F16.
        if self.numerics == Numerics::LlamaCpp {
            round_to_f16(&mut s.k);
            round_to_f16(&mut s.v);
        }

        let params = AttentionParams {
            n_head: config.n_head,
            n_head_kv: config.n_head_kv,
            head_dim,
            window: config.is_sliding(il).then_some(config.sliding_window),
            softcap: config.attn_softcap,
        };
        for range in sequences {
            let (q_rows, kv_rows) = (range.start * q_dim..range.end * q_dim, range.start * kv_dim..range.end * kv_dim);
            attention(&params, &s.q[q_rows.clone()], &s.k[kv_rows.clone()], &s.v[kv_rows], 0, &mut s.attn[q_rows]);
        }

        matmul(&layer.attn_output, &s.attn, n, &mut s.proj, hook)?;
        rms_norm_rows(&mut s.proj, &layer.post_attention_norm, eps);
        add_in_place(&mut s.residual, &s.proj);

        // Feed-forward block: pre-norm, gated GELU, down projection, post-norm.
        rms_norm_rows_into(&s.residual, &layer.ffn_norm, eps, &mut s.normed);
        matmul_shared_input(
            &mut [(&layer.ffn_gate, &mut s.gate), (&layer.ffn_up, &mut s.up)],
            &s.normed,
            n,
            hook,
        )?;
        gelu::geglu_in_place(&mut s.gate, &s.up, self.numerics);
        matmul(&layer.ffn_down, &s.gate, n, &mut s.proj, hook)?;
        rms_norm_rows(&mut s.proj, &layer.post_ffw_norm, eps);
        add_in_place(&mut s.residual, &s.proj);

        Ok(())
    }

    /// Applies the final norm, the LM head and the final soft-cap to `n_out` residual rows.
    fn output_logits(
        &self,
        residual: &[f32],
        n_out: usize,
        hook: &mut Option<&mut dyn MatmulHook>,
    ) -> Result<Vec<f32>, ModelError> {
        let config = &self.config;
        let mut normed = vec![0.0; residual.len()];
        rms_norm_rows_into(residual, &self.weights.output_norm, config.rms_eps, &mut normed);

        let mut logits = vec![0.0; n_out * config.n_vocab];
        if n_out == 0 {
            return Ok(logits);
        }
        matmul(self.weights.lm_head(), &normed, n_out, &mut logits, hook)?;

        if let Some(cap) = config.final_softcap {
            for value in logits.iter_mut() {
                *value = crate::ops::soft_cap(*value, cap);
            }
        }

        if let Some(bad) = logits.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::InvalidInput(format!(
                "logit {} of output row {} is {}; the weights contain NaN or infinity",
                bad % config.n_vocab,
                bad / config.n_vocab,
                logits[bad]
            )));
        }
        Ok(logits)
    }
}

/// Adds `delta` to `acc` element by element.
fn add_in_place(acc: &mut [f32], delta: &[f32]) {
    for (a, &d) in acc.iter_mut().zip(delta) {
        *a += d;
    }
}

/// Rounds every value to the nearest f16, keeping it as f32.
fn round_to_f16(values: &mut [f32]) {
    for value in values.iter_mut() {
        *value = half::f16::from_f32(*value).to_f32();
    }
}
