//! The perplexity estimate that llama-imatrix prints while it collects.

use serde::Serialize;

/// Running negative log-likelihood sums over scored tokens, in `f64`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NllAccumulator {
    sum: f64,
    sum_sq: f64,
    count: usize,
}

/// Perplexity with its uncertainty, as llama-perplexity reports it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PplEstimate {
    /// exp(mean NLL).
    pub ppl: f64,
    /// One standard error of `ppl`: σ·exp(μ) with σ = sqrt((mean(NLL²) − μ²) / (N − 1));
    /// `None` for fewer than 2 tokens.
    pub uncertainty: Option<f64>,
    /// Tokens scored (N).
    pub n_tokens: usize,
}

impl NllAccumulator {
    /// Scores consecutive logit rows: row `i` (`n_vocab` logits) predicts `targets[i]`.
    ///
    /// NLL = log Σ exp(logit − max) − (logit_target − max), with the exponential sum in `f64`
    /// as llama-perplexity computes it. Rows beyond `targets.len()` are ignored.
    ///
    /// # Panics
    /// Panics if a target is not below `n_vocab`; callers pass token ids of the same model.
    pub fn add_rows(&mut self, logits: &[f32], n_vocab: usize, targets: &[u32]) {
        for (row, &target) in logits.chunks_exact(n_vocab).zip(targets) {
            let nll = row_nll(row, target as usize);
            self.sum += nll;
            self.sum_sq += nll * nll;
            self.count += 1;
        }
    }

    /// Returns the estimate so far, or `None` before any token was scored.
    pub fn estimate(&self) -> Option<PplEstimate> {
        if self.count == 0 {
            return None;
        }

        let n = self.count as f64;
        let mean = self.sum / n;
        let ppl = mean.exp();
        let uncertainty = (self.count > 1).then(|| {
            let variance = (self.sum_sq / n - mean * mean).max(0.0);
            (variance / (n - 1.0)).sqrt() * ppl
        });
        Some(PplEstimate {
            ppl,
            uncertainty,
            n_tokens: self.count,
        })
    }
}

fn row_nll(row: &[f32], target: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum_exp: f64 = row.iter().map(|&logit| f64::from(logit - max).exp()).sum();
    sum_exp.ln() - f64::from(row[target] - max)
}
