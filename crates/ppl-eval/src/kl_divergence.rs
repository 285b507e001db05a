//! KL divergence of a model against a base file, with every statistic
//! llama-perplexity's `--kl-divergence` mode prints.

use std::fmt;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::chunks::{eval_one_chunk, ChunkPlan};
use crate::error::{PplError, Result};
use crate::kld_file::{words_to_f32, KldBaseReader};
use crate::log_softmax::{argmax, sum_exp};
use crate::model::LogitsModel;
use crate::stats::{covariance, mean_and_uncertainty, median, percentile, Estimate};

/// Base log-probabilities at or below this value are left out of the KL sum,
/// because the base file stores everything under `max − 16` as the floor.
const LOG_PROB_FLOOR: f32 = -16.0;

/// Fewest scored tokens for which llama.cpp prints the final statistics.
pub const MIN_TOKENS_FOR_STATISTICS: usize = 100;

/// The contribution of one scored position, in llama.cpp's precision.
#[derive(Debug, Clone, Copy)]
struct TokenKld {
    nll: f32,
    nll_base: f32,
    kld: f64,
    p_diff: f32,
    same_top: bool,
}

/// Compares one logits row with one base record, as llama.cpp's
/// KL-divergence log-softmax does, with the same f32/f64 mix.
fn score_token(row: &[f32], record: &[u16], target: u32) -> TokenKld {
    let (max_logit, top) = argmax(row);
    let log_sum_exp = sum_exp(row, max_logit).ln() as f32;

    let scale = words_to_f32(&record[0..2]);
    let min_log_prob = words_to_f32(&record[2..4]);
    let codes = &record[4..4 + row.len()];
    let decode = |code: u16| scale * f32::from(code) + min_log_prob;

    let nll = max_logit + log_sum_exp - row[target as usize];
    let nll_base = -decode(codes[target as usize]);

    // Σ p_base · (log p_base − log p) over entries above the floor, where
    // log p = logit − (max + log_sum_exp).
    let log_norm = max_logit + log_sum_exp;
    let mut kld = 0.0_f64;
    let mut top_base = 0;
    let mut top_base_log_prob = decode(codes[0]);
    for (i, (&code, &logit)) in codes.iter().zip(row).enumerate() {
        let log_prob_base = decode(code);
        if log_prob_base > top_base_log_prob {
            top_base_log_prob = log_prob_base;
            top_base = i;
        }
        if log_prob_base > LOG_PROB_FLOOR {
            let p_base = log_prob_base.exp();
            kld += f64::from(p_base * (log_prob_base - logit + log_norm));
        }
    }

    let p_diff = (-nll).exp() - (-nll_base).exp();
    TokenKld {
        nll,
        nll_base,
        kld,
        p_diff,
        same_top: top == top_base,
    }
}

/// Running sums over scored tokens, in llama.cpp's accumulation order and precision.
#[derive(Debug, Clone, Copy, Default)]
struct KldSums {
    nll: f64,
    nll2: f64,
    nll_base: f64,
    nll_base2: f64,
    nll_nll_base: f64,
    kld: f64,
    kld2: f64,
    p_diff: f64,
    p_diff2: f64,
    p_diff4: f64,
    n_same_top: usize,
    count: usize,
}

impl KldSums {
    fn add(&mut self, t: &TokenKld) {
        self.nll += f64::from(t.nll);
        self.nll2 += f64::from(t.nll * t.nll);
        self.nll_base += f64::from(t.nll_base);
        self.nll_base2 += f64::from(t.nll_base * t.nll_base);
        self.nll_nll_base += f64::from(t.nll * t.nll_base);
        self.kld += t.kld;
        self.kld2 += t.kld * t.kld;
        self.p_diff += f64::from(t.p_diff);
        let p_diff2 = f64::from(t.p_diff * t.p_diff);
        self.p_diff2 += p_diff2;
        self.p_diff4 += p_diff2 * p_diff2;
        self.n_same_top += usize::from(t.same_top);
        self.count += 1;
    }

    fn ppl(&self) -> Estimate {
        exp_estimate(mean_and_uncertainty(self.nll, self.nll2, self.count))
    }

    fn ln_ppl_ratio(&self) -> Estimate {
        let log_ppl = mean_and_uncertainty(self.nll, self.nll2, self.count);
        let log_ppl_base = mean_and_uncertainty(self.nll_base, self.nll_base2, self.count);
        let cov = covariance(self.nll, self.nll_base, self.nll_nll_base, self.count);
        let variance = log_ppl.uncertainty.powi(2) + log_ppl_base.uncertainty.powi(2) - 2.0 * cov;
        Estimate {
            value: log_ppl.value - log_ppl_base.value,
            uncertainty: variance.max(0.0).sqrt(),
        }
    }

    fn rms_p_diff(&self) -> Estimate {
        let mse = mean_and_uncertainty(self.p_diff2, self.p_diff4, self.count);
        let rms = mse.value.sqrt();
        let uncertainty = if rms > 0.0 {
            0.5 / rms * mse.uncertainty
        } else {
            0.0
        };
        Estimate {
            value: rms,
            uncertainty,
        }
    }

    fn same_top_p(&self) -> Estimate {
        let p = self.n_same_top as f64 / self.count as f64;
        let uncertainty = if self.count > 1 {
            (p * (1.0 - p) / (self.count - 1) as f64).sqrt()
        } else {
            0.0
        };
        Estimate {
            value: p,
            uncertainty,
        }
    }
}

/// Maps a mean log value to `exp(mean) ± exp(mean) · error`.
fn exp_estimate(log: Estimate) -> Estimate {
    let value = log.value.exp();
    Estimate {
        value,
        uncertainty: value * log.uncertainty,
    }
}

/// The running statistics after one chunk, as llama.cpp prints per chunk.
///
/// Its `Display` is one row under llama.cpp's header
/// `chunk PPL ln(PPL(Q)/PPL(base)) KL Divergence Δp RMS Same top p`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KldChunkReport {
    /// 1-based chunk number.
    pub chunk: usize,
    /// Chunks in the file.
    pub n_chunk: usize,
    /// Running PPL of the model under test.
    pub ppl: Estimate,
    /// Running `ln(PPL(Q)/PPL(base))`.
    pub ln_ppl_ratio: Estimate,
    /// Running mean KL divergence, in nats.
    pub kld: Estimate,
    /// Running RMS of Δp, as a fraction.
    pub rms_p_diff: Estimate,
    /// Running share of positions whose top token matches the base, as a fraction.
    pub same_top_p: Estimate,
}

impl fmt::Display for KldChunkReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:4}", self.chunk)?;
        write!(
            f,
            "    {:9.4} ± {:9.4}",
            self.ppl.value, self.ppl.uncertainty
        )?;
        write!(
            f,
            "    {:10.5} ± {:10.5}",
            self.ln_ppl_ratio.value, self.ln_ppl_ratio.uncertainty
        )?;
        write!(
            f,
            "    {:10.5} ± {:10.5}",
            self.kld.value, self.kld.uncertainty
        )?;
        write!(
            f,
            "    {:6.3} ± {:6.3} %",
            100.0 * self.rms_p_diff.value,
            100.0 * self.rms_p_diff.uncertainty
        )?;
        write!(
            f,
            "    {:6.3} ± {:6.3} %",
            100.0 * self.same_top_p.value,
            100.0 * self.same_top_p.uncertainty
        )
    }
}

/// Order statistics of a per-token quantity, as llama.cpp lists them.
///
/// The KL-divergence section prints every field except `p75` and `p25`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Largest value.
    pub max: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 75th percentile.
    pub p75: f64,
    /// Median: the mean of the two middle values for an even count.
    pub median: f64,
    /// 25th percentile.
    pub p25: f64,
    /// 10th percentile.
    pub p10: f64,
    /// 5th percentile.
    pub p5: f64,
    /// 1st percentile.
    pub p1: f64,
    /// 0.1th percentile.
    pub p0_1: f64,
    /// Smallest value.
    pub min: f64,
}

impl Quantiles {
    /// Computes the quantiles of sorted, non-empty `values` in llama.cpp's f32 arithmetic.
    fn from_sorted(values: &[f32]) -> Self {
        let at = |fraction: f32| f64::from(percentile(values, fraction));
        Self {
            max: f64::from(values[values.len() - 1]),
            p99_9: at(0.999),
            p99: at(0.990),
            p95: at(0.950),
            p90: at(0.900),
            p75: at(0.750),
            median: f64::from(median(values)),
            p25: at(0.250),
            p10: at(0.100),
            p5: at(0.050),
            p1: at(0.010),
            p0_1: at(0.001),
            min: f64::from(values[0]),
        }
    }
}

/// Every final statistic of llama-perplexity's `--kl-divergence` mode.
///
/// Its `Display` reproduces llama.cpp's three sections line for line. Ratios
/// and probabilities are stored as fractions and printed as percentages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KldStats {
    /// Scored tokens.
    pub n_tokens: usize,
    /// `Mean PPL(Q)`: perplexity of the model under test.
    pub ppl: Estimate,
    /// `Mean PPL(base)`: perplexity of the base, from the floored stored log-probabilities.
    pub ppl_base: Estimate,
    /// `Cor(ln(PPL(Q)), ln(PPL(base)))`, as a fraction.
    pub cor_ln_ppl: f64,
    /// `Mean ln(PPL(Q)/PPL(base))`.
    pub ln_ppl_ratio: Estimate,
    /// `Mean PPL(Q)/PPL(base)`.
    pub ppl_ratio: Estimate,
    /// `Mean PPL(Q)-PPL(base)`.
    pub ppl_diff: Estimate,
    /// `Mean KLD`, in nats per token.
    pub kld: Estimate,
    /// Quantiles of per-token KLD, in nats.
    pub kld_quantiles: Quantiles,
    /// `Mean Δp`, where Δp = p(token) − p_base(token), as a fraction.
    pub p_diff: Estimate,
    /// Quantiles of Δp, as fractions.
    pub p_diff_quantiles: Quantiles,
    /// `RMS Δp`, as a fraction.
    pub rms_p_diff: Estimate,
    /// `Same top p`: share of positions where both models rank the same token first.
    pub same_top_p: Estimate,
}

impl KldStats {
    fn from_sums(sums: &KldSums, kld_values: &[f32], p_diff_values: &[f32]) -> Self {
        let log_ppl = mean_and_uncertainty(sums.nll, sums.nll2, sums.count);
        let log_ppl_base = mean_and_uncertainty(sums.nll_base, sums.nll_base2, sums.count);
        let ppl = exp_estimate(log_ppl);
        let ppl_base = exp_estimate(log_ppl_base);
        let log_ppl_cov = covariance(sums.nll, sums.nll_base, sums.nll_nll_base, sums.count);

        let error_product = log_ppl.uncertainty * log_ppl_base.uncertainty;
        let cor_ln_ppl = if error_product > 0.0 {
            log_ppl_cov / error_product
        } else {
            0.0
        };

        let ln_ppl_ratio = sums.ln_ppl_ratio();
        let ppl_ratio = exp_estimate(ln_ppl_ratio);

        let ppl_cov = ppl.value * ppl_base.value * log_ppl_cov;
        let diff_variance = ppl.uncertainty.powi(2) + ppl_base.uncertainty.powi(2) - 2.0 * ppl_cov;
        let ppl_diff = Estimate {
            value: ppl.value - ppl_base.value,
            uncertainty: diff_variance.max(0.0).sqrt(),
        };

        let mut kld_sorted = kld_values.to_vec();
        kld_sorted.sort_by(f32::total_cmp);
        let mut p_diff_sorted = p_diff_values.to_vec();
        p_diff_sorted.sort_by(f32::total_cmp);

        Self {
            n_tokens: sums.count,
            ppl,
            ppl_base,
            cor_ln_ppl,
            ln_ppl_ratio,
            ppl_ratio,
            ppl_diff,
            kld: mean_and_uncertainty(sums.kld, sums.kld2, sums.count),
            kld_quantiles: Quantiles::from_sorted(&kld_sorted),
            p_diff: mean_and_uncertainty(sums.p_diff, sums.p_diff2, sums.count),
            p_diff_quantiles: Quantiles::from_sorted(&p_diff_sorted),
            rms_p_diff: sums.rms_p_diff(),
            same_top_p: sums.same_top_p(),
        }
    }
}

impl fmt::Display for KldStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pm = |e: &Estimate| format!("{:10.6} ± {:10.6}", e.value, e.uncertainty);

        writeln!(f, "====== Perplexity statistics ======")?;
        writeln!(f, "Mean PPL(Q)                   : {}", pm(&self.ppl))?;
        writeln!(f, "Mean PPL(base)                : {}", pm(&self.ppl_base))?;
        writeln!(
            f,
            "Cor(ln(PPL(Q)), ln(PPL(base))): {:6.2}%",
            100.0 * self.cor_ln_ppl
        )?;
        writeln!(
            f,
            "Mean ln(PPL(Q)/PPL(base))     : {}",
            pm(&self.ln_ppl_ratio)
        )?;
        writeln!(f, "Mean PPL(Q)/PPL(base)         : {}", pm(&self.ppl_ratio))?;
        writeln!(f, "Mean PPL(Q)-PPL(base)         : {}", pm(&self.ppl_diff))?;
        writeln!(f)?;

        let k = &self.kld_quantiles;
        writeln!(f, "====== KL divergence statistics ======")?;
        writeln!(f, "Mean    KLD: {}", pm(&self.kld))?;
        for (label, value) in [
            ("Maximum", k.max),
            ("99.9%  ", k.p99_9),
            ("99.0%  ", k.p99),
            ("95.0%  ", k.p95),
            ("90.0%  ", k.p90),
            ("Median ", k.median),
            ("10.0%  ", k.p10),
            (" 5.0%  ", k.p5),
            (" 1.0%  ", k.p1),
            (" 0.1%  ", k.p0_1),
            ("Minimum", k.min),
        ] {
            writeln!(f, "{label} KLD: {value:10.6}")?;
        }
        writeln!(f)?;

        let d = &self.p_diff_quantiles;
        writeln!(f, "====== Token probability statistics ======")?;
        writeln!(
            f,
            "Mean    Δp: {:6.3} ± {:5.3} %",
            100.0 * self.p_diff.value,
            100.0 * self.p_diff.uncertainty
        )?;
        for (label, value) in [
            ("Maximum", d.max),
            ("99.9%  ", d.p99_9),
            ("99.0%  ", d.p99),
            ("95.0%  ", d.p95),
            ("90.0%  ", d.p90),
            ("75.0%  ", d.p75),
            ("Median ", d.median),
            ("25.0%  ", d.p25),
            ("10.0%  ", d.p10),
            (" 5.0%  ", d.p5),
            (" 1.0%  ", d.p1),
            (" 0.1%  ", d.p0_1),
            ("Minimum", d.min),
        ] {
            writeln!(f, "{label} Δp: {:6.3}%", 100.0 * value)?;
        }
        writeln!(
            f,
            "RMS Δp    : {:6.3} ± {:5.3} %",
            100.0 * self.rms_p_diff.value,
            100.0 * self.rms_p_diff.uncertainty
        )?;
        write!(
            f,
            "Same top p: {:6.3} ± {:5.3} %",
            100.0 * self.same_top_p.value,
            100.0 * self.same_top_p.uncertainty
        )
    }
}

/// The outcome of a KL-divergence run, with per-token values for further study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KldResult {
    /// Tokens per chunk, from the base file.
    pub n_ctx: usize,
    /// Chunks evaluated.
    pub n_chunk: usize,
    /// The final statistics. llama.cpp prints them only for at least
    /// [`MIN_TOKENS_FOR_STATISTICS`] tokens; they are computed here for any count.
    pub stats: KldStats,
    /// NLL of each scored token under the model under test, in nats.
    pub nll: Vec<f64>,
    /// NLL of each scored token under the base, decoded from the file, in nats.
    pub nll_base: Vec<f64>,
    /// Per-token KL(base‖model), in nats, in stream order.
    pub kld: Vec<f32>,
    /// Per-token Δp = p(token) − p_base(token), in stream order.
    pub p_diff: Vec<f32>,
    /// Scored token ids, aligned with the per-token vectors.
    pub targets: Vec<u32>,
}

/// Evaluates `model` on the tokens stored in a base file and compares its
/// distributions with the stored base log-probabilities, as
/// `llama-perplexity --kl-divergence-base FILE --kl-divergence` does.
///
/// Chunks are read one at a time, so memory stays at one chunk of records and
/// logits. `on_chunk` receives the running per-chunk statistics, which are also
/// logged at INFO level.
///
/// # Errors
///
/// Returns [`PplError::VocabularyMismatch`] when the model's n_vocab differs
/// from the file's (llama.cpp only logs this), [`PplError::InvalidBaseFile`]
/// for a malformed record, [`PplError::NonFiniteLogit`] and
/// [`PplError::Model`] for model failures, and [`PplError::Io`] for read errors.
pub fn kl_divergence<M, F>(
    model: &mut M,
    base: &mut KldBaseReader,
    mut on_chunk: F,
) -> Result<KldResult>
where
    M: LogitsModel + ?Sized,
    F: FnMut(&KldChunkReport),
{
    let header = *base.header();
    let n_vocab = model.n_vocab();
    if n_vocab != header.n_vocab {
        return Err(PplError::VocabularyMismatch {
            file: header.n_vocab,
            model: n_vocab,
        });
    }
    if let Some(bos) = model.bos_token() {
        crate::chunks::check_token_ids(&[bos], n_vocab)?;
    }

    let plan = ChunkPlan {
        n_ctx: header.n_ctx,
        n_chunk: header.n_chunk,
    };
    let first = plan.first();
    let scored = plan.scored_per_chunk();
    let record_len = header.record_len();
    let tokens = base.tokens().to_vec();

    tracing::debug!(
        path = %base.path().display(),
        n_ctx = plan.n_ctx,
        n_chunk = plan.n_chunk,
        "computing KL divergence over {} chunks",
        plan.n_chunk
    );

    let total = plan.scored_total();
    let mut sums = KldSums::default();
    let mut nll = Vec::with_capacity(total);
    let mut nll_base = Vec::with_capacity(total);
    let mut kld = Vec::with_capacity(total);
    let mut p_diff = Vec::with_capacity(total);
    let mut scored_targets = Vec::with_capacity(total);
    let mut records = Vec::new();

    for index in 0..plan.n_chunk {
        if !base.read_chunk(&mut records)? {
            return Err(PplError::InvalidBaseFile {
                path: base.path().to_path_buf(),
                reason: format!("records for chunk {} are missing", index + 1),
            });
        }

        let start = index * plan.n_ctx;
        let chunk_tokens = &tokens[start..start + plan.n_ctx];
        let logits = eval_one_chunk(model, &plan, index, chunk_tokens)?;

        let targets = &chunk_tokens[first + 1..];
        let per_token: Vec<TokenKld> = logits[..scored * n_vocab]
            .par_chunks(n_vocab)
            .zip(records.par_chunks(record_len))
            .zip(targets.par_iter())
            .map(|((row, record), &target)| score_token(row, record, target))
            .collect();

        for token in &per_token {
            sums.add(token);
            nll.push(f64::from(token.nll));
            nll_base.push(f64::from(token.nll_base));
            kld.push(token.kld as f32);
            p_diff.push(token.p_diff);
        }
        scored_targets.extend_from_slice(targets);

        let report = KldChunkReport {
            chunk: index + 1,
            n_chunk: plan.n_chunk,
            ppl: sums.ppl(),
            ln_ppl_ratio: sums.ln_ppl_ratio(),
            kld: mean_and_uncertainty(sums.kld, sums.kld2, sums.count),
            rms_p_diff: sums.rms_p_diff(),
            same_top_p: sums.same_top_p(),
        };
        tracing::debug!(chunk = report.chunk, n_chunk = report.n_chunk, "{report}");
        on_chunk(&report);
    }

    if sums.count < MIN_TOKENS_FOR_STATISTICS {
        tracing::warn!(
            n_tokens = sums.count,
            "only {} scored tokens; llama.cpp prints no final statistics below {MIN_TOKENS_FOR_STATISTICS}",
            sums.count
        );
    }

    Ok(KldResult {
        n_ctx: plan.n_ctx,
        n_chunk: plan.n_chunk,
        stats: KldStats::from_sums(&sums, &kld, &p_diff),
        nll,
        nll_base,
        kld,
        p_diff,
        targets: scored_targets,
    })
}
