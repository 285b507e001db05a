//! The study's results as they are written to results.json, and the comparisons derived
//! from the per-token NLLs.

use ppl_eval::{KldStats, PairedComparison, PerplexityResult};
use serde::{Deserialize, Serialize};

use crate::spec::{ImatrixMode, Quantization, StudySpec};

/// Perplexity and KL divergence of one model on one text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextEval {
    /// The evaluation text's name.
    pub text: String,
    /// Perplexity over the scored tokens.
    pub ppl: f64,
    /// llama.cpp's uncertainty of `ppl`; `None` when the variance is not positive.
    pub ppl_err: Option<f64>,
    /// Chunks evaluated.
    pub n_chunk: usize,
    /// Scored tokens.
    pub n_tokens: usize,
    /// KL divergence against the base on the first `kld_chunks` chunks, when computed.
    pub kld: Option<KldStats>,
    /// Seconds the evaluation took when it was computed.
    pub seconds: f64,
}

/// One quantized model and its evaluations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    /// The cell label, e.g. `Q4_K_M-L-enja`.
    pub label: String,
    /// The quantization.
    pub quantization: Quantization,
    /// The imatrix mode's name.
    pub mode: String,
    /// Size of the quantized GGUF file in bytes.
    pub model_bytes: u64,
    /// sha256 of the quantized GGUF file.
    pub model_sha256: String,
    /// One evaluation per text, in the specification's order.
    pub evals: Vec<TextEval>,
}

/// A paired comparison of two cells of one quantization on one text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairedRow {
    /// The quantization label, e.g. `Q4_0-pure`.
    pub quantization: String,
    /// The text's name.
    pub text: String,
    /// The reference cell's imatrix mode.
    pub base_mode: String,
    /// The compared cell's imatrix mode.
    pub candidate_mode: String,
    /// The comparison; `ppl_ratio < 1` means the candidate is better.
    pub comparison: PairedComparison,
    /// Whether both 95 % intervals exclude "no difference".
    pub significant: bool,
}

/// The summary of comparing two imatrices tensor by tensor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImatrixComparisonRow {
    /// First imatrix (mode name).
    pub a: String,
    /// Second imatrix (mode name).
    pub b: String,
    /// Tensors compared.
    pub n_tensors: usize,
    /// Smallest cosine similarity of the per-column mean squares over all tensors.
    pub min_cosine: Option<f64>,
    /// Mean Spearman rank correlation over all tensors.
    pub mean_spearman: Option<f64>,
    /// Mean overlap of the top 1 % columns.
    pub mean_top_overlap: Option<f64>,
    /// The three tensors with the lowest Spearman correlation, with that correlation.
    pub least_similar: Vec<(String, f64)>,
}

/// How long a step took and whether it was computed in this run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepTiming {
    /// The step, e.g. `quantize Q4_0-pure-en`.
    pub step: String,
    /// Seconds it took when it was computed.
    pub seconds: f64,
    /// Whether this run computed it (false: reused from the cache).
    pub computed: bool,
}

/// Everything a study produced, as written to results.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudyResults {
    /// The quant-study version that produced the results.
    pub tool_version: String,
    /// The specification that was run.
    pub spec: StudySpec,
    /// Whether the base was made by dequantizing a quantized file (so "base" means that
    /// file's exact F32 dequantization, not the original full-precision weights).
    pub base_from_quantized: bool,
    /// The F32 base on each text.
    pub base: Vec<TextEval>,
    /// Every cell, in table order.
    pub cells: Vec<CellResult>,
    /// Paired comparisons: every imatrix mode against `none`, and every two modes with
    /// an imatrix against each other, per quantization and text.
    pub paired: Vec<PairedRow>,
    /// Comparisons of the imatrices of every two modes with an imatrix.
    pub imatrix_comparisons: Vec<ImatrixComparisonRow>,
    /// Every step with its time.
    pub timings: Vec<StepTiming>,
    /// Steps computed in this run (empty when everything came from the cache).
    pub recomputed: Vec<String>,
    /// Wall-clock seconds of this run.
    pub wall_seconds: f64,
}

impl StudyResults {
    /// Returns the cell of `quantization` under the mode named `mode`.
    pub fn cell(&self, quantization: &Quantization, mode: &str) -> Option<&CellResult> {
        self.cells.iter().find(|c| &c.quantization == quantization && c.mode == mode)
    }
}

/// Lists the pairs of modes to compare: each mode with an imatrix against `none`, then
/// every two modes with an imatrix in specification order.
pub(crate) fn mode_pairs(modes: &[ImatrixMode]) -> Vec<(String, String)> {
    let with_imatrix: Vec<&str> = modes.iter().filter(|m| **m != ImatrixMode::None).map(|m| m.name()).collect();
    let mut pairs = Vec::new();
    if modes.contains(&ImatrixMode::None) {
        pairs.extend(with_imatrix.iter().map(|m| ("none".to_owned(), m.to_string())));
    }
    for (i, a) in with_imatrix.iter().enumerate() {
        for b in &with_imatrix[i + 1..] {
            pairs.push((a.to_string(), b.to_string()));
        }
    }
    pairs
}

/// Compares two evaluations of the same text token by token.
///
/// # Errors
/// The error of [`PairedComparison::from_results`] when the runs scored different tokens.
pub(crate) fn paired(base: &PerplexityResult, candidate: &PerplexityResult) -> ppl_eval::Result<PairedComparison> {
    PairedComparison::from_results(base, candidate)
}
