//! Paired comparisons on mock models.

mod common;

use common::{token_stream, HashModel};
use ppl_eval::{perplexity, PairedComparison, PerplexityConfig, PplError};

const N_VOCAB: usize = 61;

fn run(model: &mut HashModel, tokens: &[u32]) -> ppl_eval::PerplexityResult {
    perplexity(model, tokens, &PerplexityConfig::new(64), |_| {}).unwrap()
}

#[test]
fn model_against_itself_covers_zero() {
    let tokens = token_stream(64 * 8, N_VOCAB, 50);
    let a = run(&mut HashModel::new(N_VOCAB), &tokens);
    let b = run(&mut HashModel::new(N_VOCAB), &tokens);
    let comparison = PairedComparison::from_results(&a, &b).unwrap();

    assert_eq!(comparison.n_tokens, 8 * 31);
    assert_eq!(comparison.mean_log_prob_diff, 0.0);
    assert!(comparison.ci95.contains(0.0));
    assert!(comparison.chunk_ci95.unwrap().contains(0.0));
    assert!(comparison.ppl_ratio_ci95.contains(1.0));
    assert!(!comparison.is_significant());
}

#[test]
fn noisy_model_is_worse_beyond_noise() {
    let tokens = token_stream(64 * 8, N_VOCAB, 51);
    let base = run(&mut HashModel::new(N_VOCAB), &tokens);
    let mut noisy = HashModel::new(N_VOCAB);
    noisy.noise = 4.0;
    let candidate = run(&mut noisy, &tokens);
    let comparison = PairedComparison::from_results(&base, &candidate).unwrap();

    assert!(
        comparison.mean_log_prob_diff < 0.0,
        "{}",
        comparison.mean_log_prob_diff
    );
    assert!(comparison.ci95.high < 0.0, "{:?}", comparison.ci95);
    assert!(comparison.ppl_ratio > 1.0);
    assert!(
        comparison.ppl_ratio_ci95.low > 1.0,
        "{:?}",
        comparison.ppl_ratio_ci95
    );
    assert!(comparison.is_significant());

    // The ratio is the ratio of the two perplexities.
    let ratio = candidate.ppl / base.ppl;
    assert!((comparison.ppl_ratio - ratio).abs() < 1e-9 * ratio);
    assert!((comparison.ppl_base - base.ppl).abs() < 1e-9 * base.ppl);
}

#[test]
fn known_differences_give_known_interval() {
    // Differences alternate +1 and −1 around a mean of 0.5 over 4 chunks of 2.
    let base = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
    let candidate = [-0.5, 1.5, -0.5, 1.5, -0.5, 1.5, -0.5, 1.5];
    let comparison = PairedComparison::from_nll(&base, &candidate, 2).unwrap();

    // Δ = base − candidate: 1.5, −0.5, …; mean 0.5, sample sd sqrt(8 / 7).
    let se = (8.0_f64 / 7.0).sqrt() / 8.0_f64.sqrt();
    assert!((comparison.mean_log_prob_diff - 0.5).abs() < 1e-12);
    assert!((comparison.std_error - se).abs() < 1e-12);
    assert!((comparison.ci95.low - (0.5 - 1.959963984540054 * se)).abs() < 1e-12);
    // Every chunk has the same mean, so the per-chunk error is 0.
    assert_eq!(comparison.chunk_std_error, Some(0.0));
    assert!((comparison.ppl_ratio - (-0.5_f64).exp()).abs() < 1e-12);
    assert!(
        (comparison.ppl_ratio_ci95.high - (-(0.5 - 1.959963984540054 * se)).exp()).abs() < 1e-12
    );
}

#[test]
fn different_tokens_cannot_be_paired() {
    let a = run(
        &mut HashModel::new(N_VOCAB),
        &token_stream(64 * 4, N_VOCAB, 52),
    );
    let b = run(
        &mut HashModel::new(N_VOCAB),
        &token_stream(64 * 4, N_VOCAB, 53),
    );
    let error = PairedComparison::from_results(&a, &b).unwrap_err();
    assert!(matches!(error, PplError::Unpaired { .. }));
    assert!(error.to_string().contains("scored token 0"), "{error}");
}

#[test]
fn unequal_lengths_cannot_be_paired() {
    let error = PairedComparison::from_nll(&[1.0, 2.0, 3.0], &[1.0, 2.0], 1).unwrap_err();
    assert!(
        error.to_string().contains("3 tokens but the candidate 2"),
        "{error}"
    );
    let error = PairedComparison::from_nll(&[1.0, f64::NAN], &[1.0, 2.0], 1).unwrap_err();
    assert!(
        error.to_string().contains("token 1 has non-finite NLL"),
        "{error}"
    );
}

#[test]
fn comparison_prints_and_serializes() {
    let tokens = token_stream(64 * 4, N_VOCAB, 54);
    let base = run(&mut HashModel::new(N_VOCAB), &tokens);
    let mut noisy = HashModel::new(N_VOCAB);
    noisy.noise = 1.0;
    let comparison = PairedComparison::from_results(&base, &run(&mut noisy, &tokens)).unwrap();

    let text = comparison.to_string();
    assert!(text.contains("PPL(candidate)/PPL(base)"), "{text}");
    assert!(text.contains("95% CI"), "{text}");
    let json = serde_json::to_string(&comparison).unwrap();
    let back: PairedComparison = serde_json::from_str(&json).unwrap();
    assert_eq!(back, comparison);
}
