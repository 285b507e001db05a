//! Log-softmax of one logits row, with llama-perplexity's precision choices.
//!
//! llama.cpp keeps logits in f32, computes each `exp` in f32 and sums the
//! exponentials in f64. These helpers do the same in the same order, so that
//! per-token values agree with llama.cpp to the last few bits.

/// Returns the maximum of a non-empty row and the index of its first occurrence.
pub(crate) fn argmax(row: &[f32]) -> (f32, usize) {
    let mut max_logit = row[0];
    let mut index = 0;
    for (i, &logit) in row.iter().enumerate().skip(1) {
        if logit > max_logit {
            max_logit = logit;
            index = i;
        }
    }
    (max_logit, index)
}

/// Returns `Σ exp(logit - max_logit)` with each `exp` in f32 and the sum in f64.
pub(crate) fn sum_exp(row: &[f32], max_logit: f32) -> f64 {
    row.iter()
        .map(|&logit| f64::from((logit - max_logit).exp()))
        .sum()
}

/// Returns the negative log-likelihood of `token` under the softmax of `row`.
///
/// This is the value llama-perplexity accumulates in its plain perplexity run:
/// `-(logit[token] - max - ln Σ exp(logit - max))`, with the difference of
/// logits in f32 and the log-sum-exp in f64.
pub fn token_nll(row: &[f32], token: u32) -> f64 {
    let (max_logit, _) = argmax(row);
    let log_sum_exp = sum_exp(row, max_logit).ln();
    let centered = row[token as usize] - max_logit;
    log_sum_exp - f64::from(centered)
}

/// Returns the exact `KL(p‖q) = Σ p (ln p − ln q)` between the softmax of two
/// logits rows, in f64 over every vocabulary entry.
///
/// The file-based KL divergence of [`crate::kl_divergence`] differs from this
/// value because the base file floors log-probabilities at `max − 16`.
///
/// # Panics
///
/// Panics if the rows differ in length or are empty.
///
/// # Examples
///
/// ```
/// let same = ppl_eval::exact_kl_divergence(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]);
/// assert!(same.abs() < 1e-15);
/// ```
pub fn exact_kl_divergence(base_logits: &[f32], logits: &[f32]) -> f64 {
    assert_eq!(
        base_logits.len(),
        logits.len(),
        "rows of different vocabulary sizes"
    );
    assert!(!logits.is_empty(), "empty logits row");

    let log_softmax = |row: &[f32]| -> Vec<f64> {
        let max = row
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, |m, x| m.max(f64::from(x)));
        let log_sum: f64 = row
            .iter()
            .map(|&x| (f64::from(x) - max).exp())
            .sum::<f64>()
            .ln();
        row.iter().map(|&x| f64::from(x) - max - log_sum).collect()
    };

    let log_p = log_softmax(base_logits);
    let log_q = log_softmax(logits);
    log_p
        .iter()
        .zip(&log_q)
        .map(|(&lp, &lq)| lp.exp() * (lp - lq))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_nll_of_uniform_row() {
        let row = [0.5_f32; 10];
        let nll = token_nll(&row, 3);
        assert!((nll - 10f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn token_nll_matches_direct_formula() {
        let row = [1.0_f32, -2.0, 0.25, 3.5];
        let log_sum: f64 = row.iter().map(|&x| f64::from(x).exp()).sum::<f64>().ln();
        for token in 0..row.len() {
            let expected = log_sum - f64::from(row[token]);
            assert!((token_nll(&row, token as u32) - expected).abs() < 1e-6);
        }
    }

    #[test]
    fn argmax_takes_first_maximum() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), (3.0, 1));
    }
}
