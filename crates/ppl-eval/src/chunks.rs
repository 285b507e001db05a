//! Chunk arithmetic and the chunk loop shared by perplexity and KL divergence.

use serde::{Deserialize, Serialize};

use crate::error::{PplError, Result};
use crate::model::LogitsModel;

/// The smallest context size that scores at least one token per chunk:
/// with `n_ctx = 3`, position 1 predicts position 2.
pub const MIN_N_CTX: usize = 3;

/// The chunk layout of a token stream, as llama-perplexity cuts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPlan {
    /// Tokens per chunk (`-c`).
    pub n_ctx: usize,
    /// Chunks evaluated: `min(--chunks, n_tokens / n_ctx)`.
    pub n_chunk: usize,
}

impl ChunkPlan {
    /// Plans the chunks for `n_tokens` input tokens (BOS included).
    ///
    /// `max_chunks = None` uses every full chunk, like `--chunks -1`.
    ///
    /// # Errors
    ///
    /// Returns [`PplError::InvalidContextSize`] when `n_ctx < 3`,
    /// [`PplError::ZeroChunks`] for `Some(0)`, and [`PplError::TooFewTokens`]
    /// when `n_tokens < 2 * n_ctx` (llama.cpp logs this case and scores nothing).
    pub fn new(n_tokens: usize, n_ctx: usize, max_chunks: Option<usize>) -> Result<Self> {
        if n_ctx < MIN_N_CTX {
            return Err(PplError::InvalidContextSize {
                n_ctx,
                min: MIN_N_CTX,
            });
        }
        if max_chunks == Some(0) {
            return Err(PplError::ZeroChunks);
        }

        let required = n_ctx.saturating_mul(2);
        if n_tokens < required {
            return Err(PplError::TooFewTokens {
                n_tokens,
                n_ctx,
                required,
            });
        }

        let n_chunk_max = n_tokens / n_ctx;
        let n_chunk = max_chunks.map_or(n_chunk_max, |limit| limit.min(n_chunk_max));
        Ok(Self { n_ctx, n_chunk })
    }

    /// Returns the first position whose logits are scored: `n_ctx / 2`.
    pub fn first(&self) -> usize {
        self.n_ctx / 2
    }

    /// Returns the number of scored tokens per chunk: `n_ctx - 1 - n_ctx / 2`.
    pub fn scored_per_chunk(&self) -> usize {
        self.n_ctx - 1 - self.first()
    }

    /// Returns the number of scored tokens over all chunks.
    pub fn scored_total(&self) -> usize {
        self.scored_per_chunk() * self.n_chunk
    }
}

/// One evaluated chunk, handed to the per-chunk consumer of [`run_chunks`].
pub(crate) struct EvaluatedChunk<'a> {
    /// 0-based chunk index.
    pub index: usize,
    /// The chunk's tokens as stored in the stream, before the BOS overwrite.
    pub tokens: &'a [u32],
    /// Logits of positions `first..n_ctx`, `n_vocab` per row, all finite.
    pub logits: &'a [f32],
}

/// Checks that every token id is inside the vocabulary.
pub(crate) fn check_token_ids(tokens: &[u32], n_vocab: usize) -> Result<()> {
    let out_of_range = tokens.iter().position(|&token| token as usize >= n_vocab);

    match out_of_range {
        Some(position) => Err(PplError::TokenOutOfRange {
            token: tokens[position],
            position,
            n_vocab,
        }),
        None => Ok(()),
    }
}

/// Evaluates one chunk with the BOS overwrite and checks the returned logits.
///
/// The first token is replaced by BOS (when the model has one) only in the copy
/// passed to the model, so the scored targets stay the stream's own tokens.
pub(crate) fn eval_one_chunk<M: LogitsModel + ?Sized>(
    model: &mut M,
    plan: &ChunkPlan,
    index: usize,
    chunk_tokens: &[u32],
) -> Result<Vec<f32>> {
    let n_vocab = model.n_vocab();
    let first = plan.first();
    let chunk_number = index + 1;

    let mut input = chunk_tokens.to_vec();
    if let Some(bos) = model.bos_token() {
        input[0] = bos;
    }

    let logits = model
        .eval_chunk(&input, first)
        .map_err(|source| PplError::Model {
            chunk: chunk_number,
            source,
        })?;

    let rows = plan.n_ctx - first;
    let expected = rows * n_vocab;
    if logits.len() != expected {
        return Err(PplError::LogitsLength {
            chunk: chunk_number,
            actual: logits.len(),
            expected,
            rows,
            n_vocab,
        });
    }

    // Only the rows that are scored must be finite: the last row predicts a
    // token outside the chunk and is never read.
    let scored = &logits[..plan.scored_per_chunk() * n_vocab];
    if let Some(flat) = scored.iter().position(|value| !value.is_finite()) {
        return Err(PplError::NonFiniteLogit {
            chunk: chunk_number,
            position: first + flat / n_vocab,
            vocab_index: flat % n_vocab,
            value: scored[flat],
        });
    }

    Ok(logits)
}

/// Runs `model` over every planned chunk of `tokens` and hands each one to `consume`.
pub(crate) fn run_chunks<M, F>(
    model: &mut M,
    tokens: &[u32],
    plan: &ChunkPlan,
    mut consume: F,
) -> Result<()>
where
    M: LogitsModel + ?Sized,
    F: FnMut(EvaluatedChunk<'_>) -> Result<()>,
{
    for index in 0..plan.n_chunk {
        let start = index * plan.n_ctx;
        let chunk_tokens = &tokens[start..start + plan.n_ctx];

        let logits = eval_one_chunk(model, plan, index, chunk_tokens)?;

        consume(EvaluatedChunk {
            index,
            tokens: chunk_tokens,
            logits: &logits,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_counts_full_chunks() {
        let plan = ChunkPlan::new(1535, 512, None).unwrap();
        assert_eq!(plan.n_chunk, 2);
        assert_eq!(plan.scored_per_chunk(), 255);
        assert_eq!(plan.scored_total(), 510);
    }

    #[test]
    fn plan_applies_chunk_limit() {
        let plan = ChunkPlan::new(10_000, 512, Some(3)).unwrap();
        assert_eq!(plan.n_chunk, 3);
    }

    #[test]
    fn plan_rejects_tiny_context() {
        let error = ChunkPlan::new(100, 2, None).unwrap_err();
        assert!(matches!(
            error,
            PplError::InvalidContextSize { n_ctx: 2, .. }
        ));
    }
}
