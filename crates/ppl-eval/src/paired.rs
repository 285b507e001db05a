//! Paired comparison of two models on identical scored tokens.
//!
//! Two perplexities such as 17.0877 and 17.0946 each carry an uncertainty near
//! 0.8, yet most of that noise is shared: both models find the same tokens
//! hard. Differencing the log-probabilities token by token removes the shared
//! part, so the standard error of the mean difference shows whether the gap is
//! larger than noise.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{PplError, Result};
use crate::kl_divergence::KldResult;
use crate::perplexity::PerplexityResult;

/// The two-sided 95 % quantile of the standard normal distribution.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// A 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl Interval {
    fn around(center: f64, std_error: f64) -> Self {
        Self {
            low: center - Z_95 * std_error,
            high: center + Z_95 * std_error,
        }
    }

    /// Returns whether `value` lies inside the interval, bounds included.
    pub fn contains(&self, value: f64) -> bool {
        self.low <= value && value <= self.high
    }

    /// Maps a log-scale interval of `ln(PPL(candidate)/PPL(base)) = −Δ` to a ratio interval.
    fn ppl_ratio_of_log_prob_diff(&self) -> Self {
        Self {
            low: (-self.high).exp(),
            high: (-self.low).exp(),
        }
    }
}

/// The difference between a candidate and a base model on the same tokens.
///
/// The difference per token is `Δ = ln p_candidate(token) − ln p_base(token)`
/// in nats, so a negative mean means the candidate predicts worse. Its `Display`
/// prints a short report; serde gives the same figures as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// Scored tokens in both runs.
    pub n_tokens: usize,
    /// Chunks in both runs.
    pub n_chunk: usize,
    /// Perplexity of the base.
    pub ppl_base: f64,
    /// Perplexity of the candidate.
    pub ppl_candidate: f64,
    /// Mean of Δ, in nats per token.
    pub mean_log_prob_diff: f64,
    /// Standard error of the mean of Δ with tokens taken as independent, as
    /// llama.cpp's uncertainties assume.
    pub std_error: f64,
    /// 95 % interval of the mean of Δ from `std_error`.
    pub ci95: Interval,
    /// Standard error from the spread of per-chunk means of Δ, which allows for
    /// correlation between tokens of one chunk; `None` for a single chunk.
    pub chunk_std_error: Option<f64>,
    /// 95 % interval of the mean of Δ from `chunk_std_error`.
    pub chunk_ci95: Option<Interval>,
    /// `PPL(candidate) / PPL(base) = exp(−mean Δ)`.
    pub ppl_ratio: f64,
    /// 95 % interval of the ratio: exp of the token-level interval of the mean NLL difference.
    pub ppl_ratio_ci95: Interval,
}

impl PairedComparison {
    /// Compares two per-token NLL vectors of the same scored tokens, in nats.
    ///
    /// `scored_per_chunk` groups the tokens into chunks for the per-chunk
    /// standard error.
    ///
    /// # Errors
    ///
    /// Returns [`PplError::Unpaired`] when the vectors differ in length, are
    /// shorter than 2, do not split into whole chunks, or hold a non-finite value.
    pub fn from_nll(
        base_nll: &[f64],
        candidate_nll: &[f64],
        scored_per_chunk: usize,
    ) -> Result<Self> {
        let n = base_nll.len();
        if candidate_nll.len() != n {
            return Err(PplError::Unpaired {
                reason: format!(
                    "the base scored {n} tokens but the candidate {}",
                    candidate_nll.len()
                ),
            });
        }
        if n < 2 {
            return Err(PplError::Unpaired {
                reason: format!("{n} scored tokens leave no variance to estimate; need at least 2"),
            });
        }
        if scored_per_chunk == 0 || n % scored_per_chunk != 0 {
            return Err(PplError::Unpaired {
                reason: format!("{n} scored tokens do not split into chunks of {scored_per_chunk}"),
            });
        }
        if let Some(i) =
            (0..n).find(|&i| !(base_nll[i].is_finite() && candidate_nll[i].is_finite()))
        {
            return Err(PplError::Unpaired {
                reason: format!(
                    "token {i} has non-finite NLL (base {}, candidate {})",
                    base_nll[i], candidate_nll[i]
                ),
            });
        }

        let diffs: Vec<f64> = base_nll
            .iter()
            .zip(candidate_nll)
            .map(|(base, candidate)| base - candidate)
            .collect();
        let (mean, std_error) = mean_and_std_error(&diffs);

        let n_chunk = n / scored_per_chunk;
        let chunk_means: Vec<f64> = diffs
            .chunks_exact(scored_per_chunk)
            .map(|chunk| chunk.iter().sum::<f64>() / scored_per_chunk as f64)
            .collect();
        let chunk_std_error = (n_chunk >= 2).then(|| mean_and_std_error(&chunk_means).1);

        let mean_nll = |values: &[f64]| values.iter().sum::<f64>() / n as f64;
        let ci95 = Interval::around(mean, std_error);

        Ok(Self {
            n_tokens: n,
            n_chunk,
            ppl_base: mean_nll(base_nll).exp(),
            ppl_candidate: mean_nll(candidate_nll).exp(),
            mean_log_prob_diff: mean,
            std_error,
            ci95,
            chunk_std_error,
            chunk_ci95: chunk_std_error.map(|se| Interval::around(mean, se)),
            ppl_ratio: (-mean).exp(),
            ppl_ratio_ci95: ci95.ppl_ratio_of_log_prob_diff(),
        })
    }

    /// Compares two perplexity runs after checking that they scored the same tokens.
    ///
    /// # Errors
    ///
    /// Returns [`PplError::Unpaired`] when n_ctx, the chunk count or any
    /// scored token id differs, and the errors of [`Self::from_nll`].
    pub fn from_results(base: &PerplexityResult, candidate: &PerplexityResult) -> Result<Self> {
        if base.n_ctx != candidate.n_ctx || base.n_chunk != candidate.n_chunk {
            return Err(PplError::Unpaired {
                reason: format!(
                    "the base ran {} chunks of n_ctx = {}, the candidate {} chunks of n_ctx = {}",
                    base.n_chunk, base.n_ctx, candidate.n_chunk, candidate.n_ctx
                ),
            });
        }
        if let Some(i) = (0..base.targets.len().min(candidate.targets.len()))
            .find(|&i| base.targets[i] != candidate.targets[i])
        {
            return Err(PplError::Unpaired {
                reason: format!(
                    "scored token {i} is {} in the base run but {} in the candidate run",
                    base.targets[i], candidate.targets[i]
                ),
            });
        }
        Self::from_nll(&base.nll, &candidate.nll, base.scored_per_chunk())
    }

    /// Compares the candidate of a KL-divergence run with the base log-probabilities
    /// stored in its base file.
    ///
    /// The stored log-probabilities are floored at `max − 16`, so `ppl_base`
    /// matches llama.cpp's `Mean PPL(base)`, not the base model's plain perplexity.
    ///
    /// # Errors
    ///
    /// Returns the errors of [`Self::from_nll`].
    pub fn from_kld(result: &KldResult) -> Result<Self> {
        let scored_per_chunk = result.n_ctx - 1 - result.n_ctx / 2;
        Self::from_nll(&result.nll_base, &result.nll, scored_per_chunk)
    }

    /// Returns whether every computed 95 % interval of the mean Δ excludes 0,
    /// meaning the two models differ by more than noise.
    pub fn is_significant(&self) -> bool {
        let token_level = !self.ci95.contains(0.0);
        let chunk_level = self.chunk_ci95.map_or(true, |ci| !ci.contains(0.0));
        token_level && chunk_level
    }
}

/// Returns the mean and its standard error `s / sqrt(n)` with the sample standard deviation `s`.
fn mean_and_std_error(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sum_squares: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    let std_error = (sum_squares / (n - 1.0) / n).sqrt();
    (mean, std_error)
}

impl fmt::Display for PairedComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "====== Paired comparison ({} tokens, {} chunks) ======",
            self.n_tokens, self.n_chunk
        )?;
        writeln!(f, "PPL(base)                : {:10.4}", self.ppl_base)?;
        writeln!(f, "PPL(candidate)           : {:10.4}", self.ppl_candidate)?;
        writeln!(
            f,
            "Mean Δ ln p (cand - base): {:10.6} ± {:9.6} nats/token, 95% CI [{:.6}, {:.6}]",
            self.mean_log_prob_diff, self.std_error, self.ci95.low, self.ci95.high
        )?;
        if let (Some(se), Some(ci)) = (self.chunk_std_error, self.chunk_ci95) {
            writeln!(
                f,
                "  per-chunk error        :            ± {se:9.6} nats/token, 95% CI [{:.6}, {:.6}]",
                ci.low, ci.high
            )?;
        }
        writeln!(
            f,
            "PPL(candidate)/PPL(base) : {:10.6}, 95% CI [{:.6}, {:.6}]",
            self.ppl_ratio, self.ppl_ratio_ci95.low, self.ppl_ratio_ci95.high
        )?;
        let verdict = if self.is_significant() {
            "the difference is larger than noise at 95%"
        } else {
            "the difference is within noise at 95%"
        };
        write!(f, "Verdict                  : {verdict}")
    }
}
