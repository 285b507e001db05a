//! Chunked perplexity, computed as llama-perplexity computes it.

use std::fmt;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::chunks::{check_token_ids, run_chunks, ChunkPlan};
use crate::error::{PplError, Result};
use crate::kld_file::{encode_record, KldBaseHeader, KldBaseWriter};
use crate::log_softmax::token_nll;
use crate::model::LogitsModel;

/// The llama-perplexity options that decide what is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerplexityConfig {
    /// Tokens per chunk (`-c`, llama.cpp's default is 512).
    pub n_ctx: usize,
    /// Maximum number of chunks (`--chunks`); `None` scores every full chunk.
    pub max_chunks: Option<usize>,
}

impl PerplexityConfig {
    /// Creates a configuration that scores every full chunk of `n_ctx` tokens.
    pub fn new(n_ctx: usize) -> Self {
        Self {
            n_ctx,
            max_chunks: None,
        }
    }

    /// Limits the run to at most `chunks` chunks, like `--chunks`.
    pub fn with_max_chunks(mut self, chunks: usize) -> Self {
        self.max_chunks = Some(chunks);
        self
    }
}

/// The running result after one chunk, as llama-perplexity prints it.
///
/// Its `Display` is llama.cpp's progress item `[k]PPL,`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChunkReport {
    /// 1-based chunk number.
    pub chunk: usize,
    /// Chunks in the run.
    pub n_chunk: usize,
    /// Perplexity over every token scored so far: exp of the running mean NLL.
    pub running_ppl: f64,
    /// Perplexity of this chunk's tokens alone.
    pub chunk_ppl: f64,
    /// Tokens scored so far.
    pub n_scored: usize,
}

impl fmt::Display for ChunkReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]{:.4},", self.chunk, self.running_ppl)
    }
}

/// The outcome of a perplexity run, with every scored token's NLL.
///
/// Its `Display` is llama.cpp's final line, `Final estimate: PPL = X +/- Y`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerplexityResult {
    /// Tokens per chunk.
    pub n_ctx: usize,
    /// Chunks evaluated.
    pub n_chunk: usize,
    /// Perplexity: `exp(mean NLL)`.
    pub ppl: f64,
    /// llama.cpp's uncertainty `σ · ppl` with `σ = sqrt((mean(NLL²) − mean²)/(N − 1))`;
    /// `None` when that variance is not positive (llama.cpp then prints an error line).
    pub ppl_err: Option<f64>,
    /// Mean NLL in nats per token.
    pub mean_nll: f64,
    /// NLL of each scored token in nats, chunk by chunk, in stream order.
    pub nll: Vec<f64>,
    /// Scored (predicted) token ids, aligned with `nll`.
    pub targets: Vec<u32>,
    /// The running perplexity after each chunk, `[1]`, `[2]`, … in llama.cpp's output.
    pub running_ppl: Vec<f64>,
}

impl PerplexityResult {
    /// Returns the number of scored tokens.
    pub fn n_scored(&self) -> usize {
        self.nll.len()
    }

    /// Returns the tokens scored per chunk: `n_ctx − 1 − n_ctx/2`.
    pub fn scored_per_chunk(&self) -> usize {
        self.n_ctx - 1 - self.n_ctx / 2
    }

    fn from_nll(plan: &ChunkPlan, nll: Vec<f64>, targets: Vec<u32>, running_ppl: Vec<f64>) -> Self {
        let count = nll.len() as f64;
        let mean_nll = nll.iter().sum::<f64>() / count;
        let mean_nll2 = nll.iter().map(|v| v * v).sum::<f64>() / count;
        let ppl = mean_nll.exp();

        let variance = mean_nll2 - mean_nll * mean_nll;
        let ppl_err = (variance > 0.0).then(|| (variance / (count - 1.0)).sqrt() * ppl);

        Self {
            n_ctx: plan.n_ctx,
            n_chunk: plan.n_chunk,
            ppl,
            ppl_err,
            mean_nll,
            nll,
            targets,
            running_ppl,
        }
    }
}

impl fmt::Display for PerplexityResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ppl_err {
            Some(err) => write!(f, "Final estimate: PPL = {:.4} +/- {:.5}", self.ppl, err),
            None => write!(f, "Final estimate: PPL = {:.4} +/- n/a", self.ppl),
        }
    }
}

/// Accumulates per-token NLLs and emits one [`ChunkReport`] per chunk.
struct Accumulator {
    n_chunk: usize,
    nll: Vec<f64>,
    targets: Vec<u32>,
    running_ppl: Vec<f64>,
    nll_sum: f64,
}

impl Accumulator {
    fn new(plan: &ChunkPlan) -> Self {
        Self {
            n_chunk: plan.n_chunk,
            nll: Vec::with_capacity(plan.scored_total()),
            targets: Vec::with_capacity(plan.scored_total()),
            running_ppl: Vec::with_capacity(plan.n_chunk),
            nll_sum: 0.0,
        }
    }

    fn push_chunk(
        &mut self,
        index: usize,
        chunk_nll: &[f64],
        chunk_targets: &[u32],
    ) -> ChunkReport {
        let chunk_sum: f64 = chunk_nll.iter().sum();
        self.nll_sum += chunk_sum;
        self.nll.extend_from_slice(chunk_nll);
        self.targets.extend_from_slice(chunk_targets);

        let running_ppl = (self.nll_sum / self.nll.len() as f64).exp();
        self.running_ppl.push(running_ppl);

        let report = ChunkReport {
            chunk: index + 1,
            n_chunk: self.n_chunk,
            running_ppl,
            chunk_ppl: (chunk_sum / chunk_nll.len() as f64).exp(),
            n_scored: self.nll.len(),
        };
        tracing::debug!(
            chunk = report.chunk,
            n_chunk = report.n_chunk,
            ppl = report.running_ppl,
            "{report}"
        );
        report
    }
}

/// Computes the perplexity of `model` on `tokens` as llama-perplexity does.
///
/// `tokens` is the whole text tokenized once with BOS at index 0 and special
/// tokens not parsed. The stream is cut into `n_chunk = min(max_chunks,
/// tokens.len() / n_ctx)` chunks of `n_ctx` tokens. Each chunk is evaluated from
/// an empty context with its first token replaced by the model's BOS, and the
/// logits at positions `n_ctx/2 ..= n_ctx−2` score the next token, so
/// `n_ctx − 1 − n_ctx/2` tokens per chunk (255 for 512). `on_chunk` receives
/// the running perplexity after each chunk, which is also logged at INFO level.
///
/// # Errors
///
/// Returns [`PplError::TooFewTokens`] for fewer than `2 · n_ctx` tokens,
/// [`PplError::TokenOutOfRange`] for an id outside the vocabulary,
/// [`PplError::NonFiniteLogit`] naming the chunk and position of a NaN or
/// infinite logit, and the model's own failures as [`PplError::Model`].
pub fn perplexity<M, F>(
    model: &mut M,
    tokens: &[u32],
    config: &PerplexityConfig,
    mut on_chunk: F,
) -> Result<PerplexityResult>
where
    M: LogitsModel + ?Sized,
    F: FnMut(&ChunkReport),
{
    let (plan, n_vocab) = prepare(model, tokens, config)?;
    let first = plan.first();
    let scored = plan.scored_per_chunk();
    let mut accumulator = Accumulator::new(&plan);

    run_chunks(model, tokens, &plan, |chunk| {
        let targets = &chunk.tokens[first + 1..];
        let chunk_nll: Vec<f64> = chunk.logits[..scored * n_vocab]
            .par_chunks(n_vocab)
            .zip(targets.par_iter())
            .map(|(row, &target)| token_nll(row, target))
            .collect();

        let report = accumulator.push_chunk(chunk.index, &chunk_nll, targets);
        on_chunk(&report);
        Ok(())
    })?;

    let result = finish(&plan, accumulator);
    tracing::debug!(ppl = result.ppl, ppl_err = ?result.ppl_err, "{result}");
    Ok(result)
}

/// Computes perplexity like [`perplexity`] and writes llama.cpp's
/// `--kl-divergence-base` file of the run to `path`.
///
/// The file is written to a temporary file in the same folder, synced and
/// renamed into place, so `path` either contains a complete file or is untouched.
/// Each chunk's records are streamed out as soon as the chunk is scored, so
/// memory stays at one chunk's logits.
///
/// Per-token NLLs follow llama.cpp's base-writing path, which rounds the
/// log-sum-exp to f32, so they may differ from [`perplexity`] in the last bits.
///
/// # Errors
///
/// Returns the errors of [`perplexity`] and [`PplError::Io`] when the file
/// cannot be created, written, synced or renamed.
pub fn perplexity_with_kld_base<M, F>(
    model: &mut M,
    tokens: &[u32],
    config: &PerplexityConfig,
    path: &Path,
    mut on_chunk: F,
) -> Result<PerplexityResult>
where
    M: LogitsModel + ?Sized,
    F: FnMut(&ChunkReport),
{
    let (plan, n_vocab) = prepare(model, tokens, config)?;
    let first = plan.first();
    let scored = plan.scored_per_chunk();

    let header = KldBaseHeader::new(plan.n_ctx, n_vocab, plan.n_chunk)?;
    let stored_tokens = &tokens[..plan.n_chunk * plan.n_ctx];
    let mut writer = KldBaseWriter::create(path, &header, stored_tokens)?;
    let record_len = header.record_len();
    let mut accumulator = Accumulator::new(&plan);
    let mut records = vec![0u16; scored * record_len];

    run_chunks(model, tokens, &plan, |chunk| {
        let targets = &chunk.tokens[first + 1..];
        let chunk_nll: Vec<f64> = chunk.logits[..scored * n_vocab]
            .par_chunks(n_vocab)
            .zip(records.par_chunks_mut(record_len))
            .zip(targets.par_iter())
            .map(|((row, record), &target)| encode_record(row, target, record))
            .collect();

        writer.write_records(&records)?;

        let report = accumulator.push_chunk(chunk.index, &chunk_nll, targets);
        on_chunk(&report);
        Ok(())
    })?;

    writer.finish()?;

    let result = finish(&plan, accumulator);
    tracing::debug!(ppl = result.ppl, ppl_err = ?result.ppl_err, path = %path.display(), "{result}");
    Ok(result)
}

/// Validates the inputs and plans the chunks.
fn prepare<M: LogitsModel + ?Sized>(
    model: &M,
    tokens: &[u32],
    config: &PerplexityConfig,
) -> Result<(ChunkPlan, usize)> {
    let n_vocab = model.n_vocab();
    if n_vocab == 0 {
        return Err(PplError::EmptyVocabulary);
    }

    let plan = ChunkPlan::new(tokens.len(), config.n_ctx, config.max_chunks)?;
    check_token_ids(&tokens[..plan.n_chunk * plan.n_ctx], n_vocab)?;
    if let Some(bos) = model.bos_token() {
        check_token_ids(&[bos], n_vocab)?;
    }

    tracing::debug!(
        n_tokens = tokens.len(),
        n_ctx = plan.n_ctx,
        n_chunk = plan.n_chunk,
        "calculating perplexity over {} chunks, n_ctx={}",
        plan.n_chunk,
        plan.n_ctx
    );
    Ok((plan, n_vocab))
}

fn finish(plan: &ChunkPlan, accumulator: Accumulator) -> PerplexityResult {
    PerplexityResult::from_nll(
        plan,
        accumulator.nll,
        accumulator.targets,
        accumulator.running_ppl,
    )
}
