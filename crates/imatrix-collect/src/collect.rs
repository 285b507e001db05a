//! The collection driver: chunking a tokenized text and running the model over it, as
//! llama-imatrix does.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::collector::{BatchLayout, ImatrixCollector, MatmulObserver, DEFAULT_N_BATCH, DEFAULT_N_UBATCH};
use crate::error::ImatrixError;
use crate::format::ImatrixFormat;
use crate::imatrix::Imatrix;
use crate::ppl::{NllAccumulator, PplEstimate};

/// Default tokens per chunk (llama-imatrix `-c`).
pub const DEFAULT_N_CTX: usize = 512;

/// Default number of chunks between periodic saves (llama-imatrix `--output-frequency`).
pub const DEFAULT_SAVE_EVERY: usize = 10;

/// A model that imatrix collection can run: it evaluates token sequences and reports the
/// inputs of its weight matmuls.
///
/// The crate's core depends only on this trait; `gemma2_model::Model` implements it behind
/// the `gemma2` feature.
pub trait ActivationModel {
    /// The model's evaluation error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Returns the beginning-of-sequence token that starts every chunk.
    fn bos_token(&self) -> u32;

    /// Returns the vocabulary size, the length of one logit row.
    fn n_vocab(&self) -> usize;

    /// Evaluates `sequences` as one batch, each from position 0 in its own empty cache, and
    /// passes the logits of positions `logits_from..len` of sequence `i` to
    /// `on_logits(i, logits)` (row-major, `n_vocab` per row), in sequence order.
    ///
    /// Every weight matmul must be reported to `observer` once for the whole batch: the
    /// inputs of all sequences, concatenated in sequence order, for **all** positions,
    /// including the last layer's, whatever `logits_from` is. The collector then adds the
    /// rows in llama-imatrix's order; reporting fewer rows changes the counts.
    ///
    /// # Errors
    /// The model's error when evaluation fails.
    fn evaluate(
        &self,
        sequences: &[&[u32]],
        logits_from: usize,
        observer: &mut dyn MatmulObserver,
        on_logits: &mut dyn FnMut(usize, Vec<f32>),
    ) -> Result<(), Self::Error>;
}

/// Periodic saving during a long collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveSchedule {
    /// Output file, replaced atomically at each save.
    pub path: PathBuf,
    /// Output format.
    pub format: ImatrixFormat,
    /// Chunks between saves (at least 1); the result is also saved after the last chunk.
    pub every: usize,
}

/// Parameters of a collection run, named after llama-imatrix's options.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectParams {
    /// Tokens per chunk (`-c`, default 512).
    pub n_ctx: usize,
    /// Logical batch size (`-b`, default 2048): `n_batch / n_ctx` chunks are evaluated
    /// together, which sets the order of the sums (see [`BatchLayout`]).
    pub n_batch: usize,
    /// Physical batch size (`-ub`, default 512).
    pub n_ubatch: usize,
    /// Maximum chunks to process (`--chunks`); `None` processes the whole text.
    pub chunks: Option<usize>,
    /// Leading chunks to skip (`--chunk`).
    pub skip_chunks: usize,
    /// Whether to compute the perplexity over the second half of each chunk (`--no-ppl`
    /// turns it off).
    pub compute_ppl: bool,
    /// Whether to collect an untied `output.weight` (`--process-output`).
    pub process_output: bool,
    /// Name recorded in `imatrix.datasets`, normally the text's path.
    pub dataset: String,
    /// Periodic saves, if any.
    pub save: Option<SaveSchedule>,
}

impl Default for CollectParams {
    fn default() -> Self {
        Self {
            n_ctx: DEFAULT_N_CTX,
            n_batch: DEFAULT_N_BATCH,
            n_ubatch: DEFAULT_N_UBATCH,
            chunks: None,
            skip_chunks: 0,
            compute_ppl: true,
            process_output: false,
            dataset: String::new(),
            save: None,
        }
    }
}

/// Progress after one chunk, passed to the progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChunkReport {
    /// Chunks done in this run (1-based).
    pub done: usize,
    /// Chunks this run will process.
    pub total: usize,
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// Running perplexity estimate, when computed.
    pub ppl: Option<PplEstimate>,
}

/// Result of [`collect_imatrix`].
#[derive(Debug, Clone)]
pub struct CollectOutcome {
    /// The collected importance matrix.
    pub imatrix: Imatrix,
    /// Final perplexity over the scored second halves, when computed.
    pub ppl: Option<PplEstimate>,
    /// Chunks processed.
    pub n_chunks: usize,
    /// Tokens evaluated (`n_chunks * n_ctx`).
    pub n_tokens: usize,
    /// Wall-clock seconds of the run.
    pub elapsed_s: f64,
}

impl CollectOutcome {
    /// Returns the evaluation speed in tokens per second.
    pub fn tokens_per_second(&self) -> f64 {
        self.n_tokens as f64 / self.elapsed_s.max(f64::MIN_POSITIVE)
    }
}

/// Chunk plan: which token ranges a run evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChunkPlan {
    first_chunk: usize,
    n_chunks: usize,
}

fn plan_chunks(n_tokens: usize, params: &CollectParams) -> Result<ChunkPlan, ImatrixError> {
    let n_ctx = params.n_ctx;

    // The PPL half and the matmul row filter both need a context of some size.
    if n_ctx < 2 * crate::collector::MIN_ROWS {
        return Err(ImatrixError::InvalidParameter {
            name: "n_ctx",
            value: n_ctx.to_string(),
            reason: "must be at least 32 tokens so that every matmul has the 16 rows llama-imatrix collects",
        });
    }
    if params.n_batch == 0 || params.n_ubatch == 0 {
        let (name, value) = if params.n_batch == 0 { ("n_batch", params.n_batch) } else { ("n_ubatch", params.n_ubatch) };
        return Err(ImatrixError::InvalidParameter {
            name,
            value: value.to_string(),
            reason: "must be at least 1 token",
        });
    }
    if params.chunks == Some(0) {
        return Err(ImatrixError::InvalidParameter {
            name: "chunks",
            value: "0".to_owned(),
            reason: "must be at least 1, or unset for the whole text",
        });
    }
    if let Some(save) = &params.save {
        if save.every == 0 {
            return Err(ImatrixError::InvalidParameter {
                name: "save.every",
                value: "0".to_owned(),
                reason: "must be at least 1 chunk",
            });
        }
    }

    // Skipped chunks are dropped before the length check, as llama-imatrix `--chunk` does.
    let skipped = params.skip_chunks.saturating_mul(n_ctx);
    let remaining = n_tokens.saturating_sub(skipped);
    let required = 2 * n_ctx;
    if remaining < required {
        return Err(ImatrixError::TooFewTokens {
            n_tokens: remaining,
            n_ctx,
            required,
        });
    }

    let available = remaining / n_ctx;
    let n_chunks = params
        .chunks
        .map_or(available, |chunks| chunks.min(available));
    Ok(ChunkPlan {
        first_chunk: params.skip_chunks,
        n_chunks,
    })
}

/// Collects an imatrix over `tokens` (the whole text tokenized once, BOS first), as
/// llama-imatrix does; see [`collect_imatrix_with_progress`].
///
/// # Errors
/// As [`collect_imatrix_with_progress`].
pub fn collect_imatrix<M: ActivationModel + ?Sized>(
    model: &M,
    tokens: &[u32],
    params: &CollectParams,
) -> Result<CollectOutcome, ImatrixError> {
    collect_imatrix_with_progress(model, tokens, params, |_| {})
}

/// Collects an imatrix over `tokens` (the whole text tokenized once, BOS first), calling
/// `progress` after every chunk.
///
/// The text is cut into chunks of `n_ctx` tokens after skipping `skip_chunks`; each chunk is
/// evaluated from an empty cache with its first token replaced by BOS, as llama-imatrix and
/// llama-perplexity do. With `compute_ppl`, the logits of positions `n_ctx/2 .. n_ctx-2`
/// score the next tokens (`n_ctx - 1 - n_ctx/2` per chunk), the estimate llama-imatrix
/// prints. With a [`SaveSchedule`], the imatrix is saved every `every` chunks and at the end.
///
/// # Errors
/// [`ImatrixError::TooFewTokens`] when fewer than `2 * n_ctx` tokens remain after skipping,
/// [`ImatrixError::InvalidParameter`] for unusable parameters, [`ImatrixError::Model`] when
/// the model fails, the collector's errors (see [`ImatrixCollector::take_error`]), and the
/// save errors of [`Imatrix::save`].
pub fn collect_imatrix_with_progress<M: ActivationModel + ?Sized>(
    model: &M,
    tokens: &[u32],
    params: &CollectParams,
    mut progress: impl FnMut(&ChunkReport),
) -> Result<CollectOutcome, ImatrixError> {
    let plan = plan_chunks(tokens.len(), params)?;
    let n_ctx = params.n_ctx;
    let chunk_size = u32::try_from(n_ctx).map_err(|_| ImatrixError::InvalidParameter {
        name: "n_ctx",
        value: n_ctx.to_string(),
        reason: "must fit in 32 bits, the width of imatrix.chunk_size",
    })?;

    let mut collector = ImatrixCollector::new(chunk_size, params.process_output);
    if !params.dataset.is_empty() {
        collector.push_dataset(params.dataset.clone());
    }

    let first_scored = n_ctx / 2;
    let logits_from = if params.compute_ppl {
        first_scored
    } else {
        n_ctx - 1
    };
    let n_vocab = model.n_vocab();
    let mut nll = NllAccumulator::default();
    let start = Instant::now();
    tracing::info!(
        chunks = plan.n_chunks,
        n_ctx,
        skip = plan.first_chunk,
        "collecting imatrix"
    );

    // llama-imatrix evaluates n_batch / n_ctx chunks as one batch of that many sequences.
    let group_size = (params.n_batch / n_ctx).max(1);
    let mut done = 0;
    while done < plan.n_chunks {
        let first = plan.first_chunk + done;
        let n_seqs = group_size.min(plan.n_chunks - done);
        let group: Vec<Vec<u32>> = (first..first + n_seqs)
            .map(|chunk| {
                let mut chunk_tokens = tokens[chunk * n_ctx..(chunk + 1) * n_ctx].to_vec();
                chunk_tokens[0] = model.bos_token();
                chunk_tokens
            })
            .collect();
        let sequences: Vec<&[u32]> = group.iter().map(Vec::as_slice).collect();

        collector.set_batch_layout(BatchLayout {
            n_seqs,
            n_batch: params.n_batch,
            n_ubatch: params.n_ubatch,
        });
        let mut scored = Ok(());
        let mut estimates = Vec::with_capacity(n_seqs);
        let mut on_logits = |seq: usize, logits: Vec<f32>| {
            if !params.compute_ppl || scored.is_err() {
                return;
            }
            // Row r contains position first_scored + r and predicts the token after it; the
            // last position has nothing to predict.
            let chunk = first + seq;
            let targets = &tokens[chunk * n_ctx + first_scored + 1..(chunk + 1) * n_ctx];
            scored = check_logits_len(logits.len(), (n_ctx - first_scored) * n_vocab, chunk);
            if scored.is_ok() {
                nll.add_rows(&logits, n_vocab, targets);
                estimates.push(nll.estimate());
            }
        };
        model
            .evaluate(&sequences, logits_from, &mut collector, &mut on_logits)
            .map_err(|e| ImatrixError::Model {
                chunk: first,
                n_chunks: n_seqs,
                source: Box::new(e),
            })?;
        scored?;
        collector.take_error()?;

        for seq in 0..n_seqs {
            collector.finish_chunk();
            done += 1;

            let report = ChunkReport {
                done,
                total: plan.n_chunks,
                elapsed_s: start.elapsed().as_secs_f64(),
                ppl: estimates.get(seq).copied().flatten(),
            };
            tracing::debug!(chunk = done, ppl = report.ppl.map(|p| p.ppl), "chunk done");
            progress(&report);

            if let Some(save) = &params.save {
                if done % save.every == 0 || done == plan.n_chunks {
                    collector.imatrix().save(&save.path, save.format)?;
                    tracing::info!(path = %save.path.display(), chunks = done, "saved imatrix");
                }
            }
        }
    }

    let elapsed_s = start.elapsed().as_secs_f64();
    Ok(CollectOutcome {
        imatrix: collector.into_imatrix(),
        ppl: nll.estimate(),
        n_chunks: plan.n_chunks,
        n_tokens: plan.n_chunks * n_ctx,
        elapsed_s,
    })
}

fn check_logits_len(found: usize, expected: usize, chunk: usize) -> Result<(), ImatrixError> {
    if found != expected {
        return Err(ImatrixError::Model {
            chunk,
            n_chunks: 1,
            source: format!("model returned {found} logits, expected {expected}").into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_counts_chunks_after_skip() {
        let params = CollectParams {
            n_ctx: 64,
            skip_chunks: 1,
            chunks: Some(10),
            ..CollectParams::default()
        };
        let plan = plan_chunks(64 * 5 + 3, &params).unwrap();
        assert_eq!(plan.first_chunk, 1);
        assert_eq!(plan.n_chunks, 4);
    }

    #[test]
    fn plan_rejects_short_text() {
        let params = CollectParams {
            n_ctx: 64,
            ..CollectParams::default()
        };
        let error = plan_chunks(127, &params).unwrap_err();
        assert!(matches!(
            error,
            ImatrixError::TooFewTokens {
                n_tokens: 127,
                n_ctx: 64,
                required: 128
            }
        ));
        assert_eq!(plan_chunks(128, &params).unwrap().n_chunks, 2);
    }
}
