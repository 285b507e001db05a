//! Perplexity on mock models: known values, chunking, BOS handling and bad inputs.

mod common;

use common::{token_stream, CorruptingModel, FixedRowModel, HashModel, RecordingModel};
use ppl_eval::{perplexity, PerplexityConfig, PplError};

/// Computes mean NLL and llama.cpp's uncertainty directly from a list of NLLs.
fn reference_ppl(nll: &[f64]) -> (f64, f64) {
    let n = nll.len() as f64;
    let mean = nll.iter().sum::<f64>() / n;
    let mean2 = nll.iter().map(|v| v * v).sum::<f64>() / n;
    let sigma = ((mean2 - mean * mean) / (n - 1.0)).sqrt();
    (mean.exp(), sigma * mean.exp())
}

#[test]
fn known_logits_give_known_ppl() {
    // Probabilities 1/2, 1/4, 1/8, 1/8 at every position.
    let probs = [0.5_f64, 0.25, 0.125, 0.125];
    let row: Vec<f32> = probs.iter().map(|p| p.ln() as f32).collect();
    let mut model = FixedRowModel { row, bos: Some(0) };

    let n_ctx = 8;
    let tokens: Vec<u32> = (0..40u32).map(|i| (i * 7 + i / 3) % 4).collect();
    let mut reports = Vec::new();
    let result = perplexity(&mut model, &tokens, &PerplexityConfig::new(n_ctx), |r| {
        reports.push(*r)
    })
    .unwrap();

    // 5 chunks of 8; positions 4..=6 predict tokens 5..=7 of each chunk.
    let mut expected_nll = Vec::new();
    for chunk in 0..5 {
        for target in &tokens[chunk * n_ctx + 5..(chunk + 1) * n_ctx] {
            expected_nll.push(-probs[*target as usize].ln());
        }
    }
    let (expected_ppl, expected_err) = reference_ppl(&expected_nll);

    assert_eq!(result.n_chunk, 5);
    assert_eq!(result.n_scored(), 15);
    assert!(
        (result.ppl - expected_ppl).abs() < 1e-6 * expected_ppl,
        "{} vs {expected_ppl}",
        result.ppl
    );
    let err = result.ppl_err.expect("variance is positive");
    assert!(
        (err - expected_err).abs() < 1e-6 * expected_err,
        "{err} vs {expected_err}"
    );
    for (got, want) in result.nll.iter().zip(&expected_nll) {
        assert!((got - want).abs() < 1e-6);
    }

    assert_eq!(reports.len(), 5);
    for (k, report) in reports.iter().enumerate() {
        let scored = &expected_nll[..3 * (k + 1)];
        let running = (scored.iter().sum::<f64>() / scored.len() as f64).exp();
        assert_eq!(report.chunk, k + 1);
        assert!((report.running_ppl - running).abs() < 1e-6 * running);
        assert_eq!(result.running_ppl[k], report.running_ppl);
    }
}

#[test]
fn output_matches_llama_cpp_layout() {
    let mut model = HashModel::new(64);
    let tokens = token_stream(64 * 4, 64, 7);
    let mut line = String::new();
    let result = perplexity(&mut model, &tokens, &PerplexityConfig::new(64), |r| {
        line.push_str(&r.to_string());
    })
    .unwrap();

    let expected_line: String = result
        .running_ppl
        .iter()
        .enumerate()
        .map(|(k, ppl)| format!("[{}]{:.4},", k + 1, ppl))
        .collect();
    assert_eq!(line, expected_line);

    let final_line = result.to_string();
    assert_eq!(
        final_line,
        format!(
            "Final estimate: PPL = {:.4} +/- {:.5}",
            result.ppl,
            result.ppl_err.unwrap()
        )
    );
}

#[test]
fn targets_are_second_half_of_each_chunk() {
    let mut model = HashModel::new(32);
    let tokens = token_stream(100, 32, 3);
    let result = perplexity(&mut model, &tokens, &PerplexityConfig::new(20), |_| {}).unwrap();

    // n_chunk = 100 / 20 = 5, first = 10, positions 10..=18 predict 11..=19.
    let expected: Vec<u32> = (0..5)
        .flat_map(|c| tokens[c * 20 + 11..c * 20 + 20].to_vec())
        .collect();
    assert_eq!(result.targets, expected);
    assert_eq!(result.scored_per_chunk(), 9);
}

#[test]
fn chunk_limit_caps_chunks() {
    let mut model = HashModel::new(32);
    let tokens = token_stream(200, 32, 5);
    let config = PerplexityConfig::new(20).with_max_chunks(3);
    let result = perplexity(&mut model, &tokens, &config, |_| {}).unwrap();
    assert_eq!(result.n_chunk, 3);
    assert_eq!(result.n_scored(), 27);
}

#[test]
fn result_json_round_trips() {
    let mut model = HashModel::new(32);
    let tokens = token_stream(80, 32, 9);
    let result = perplexity(&mut model, &tokens, &PerplexityConfig::new(16), |_| {}).unwrap();

    let json = serde_json::to_string(&result).unwrap();
    let back: ppl_eval::PerplexityResult = serde_json::from_str(&json).unwrap();
    assert_eq!(back, result);
}

// Short text, zero chunks and degenerate variance.

#[test]
fn text_below_two_contexts_is_rejected() {
    let mut model = RecordingModel {
        n_vocab: 10,
        bos: Some(2),
        calls: Vec::new(),
    };
    let tokens = vec![1u32; 1023];
    let error = perplexity(&mut model, &tokens, &PerplexityConfig::new(512), |_| {}).unwrap_err();

    assert!(matches!(
        error,
        PplError::TooFewTokens {
            n_tokens: 1023,
            n_ctx: 512,
            required: 1024
        }
    ));
    let message = error.to_string();
    assert!(message.contains("need at least 1024 tokens"), "{message}");
    assert!(message.contains("only 1023 tokens"), "{message}");
    assert!(model.calls.is_empty(), "nothing may be evaluated");
}

#[test]
fn exactly_two_contexts_give_two_chunks() {
    for len in [1024, 1535] {
        let mut model = RecordingModel {
            n_vocab: 10,
            bos: Some(2),
            calls: Vec::new(),
        };
        let tokens = vec![1u32; len];
        let result = perplexity(&mut model, &tokens, &PerplexityConfig::new(512), |_| {}).unwrap();
        assert_eq!(result.n_chunk, 2, "{len} tokens");
        assert_eq!(result.n_scored(), 510, "{len} tokens");
        assert_eq!(model.calls.len(), 2);
    }
}

#[test]
fn equal_logits_give_ppl_n_vocab() {
    let mut model = FixedRowModel {
        row: vec![0.0; 1000],
        bos: Some(2),
    };
    let tokens = token_stream(1024, 1000, 11);
    let result = perplexity(&mut model, &tokens, &PerplexityConfig::new(512), |_| {}).unwrap();

    assert!(
        (result.ppl - 1000.0).abs() < 1e-6 * 1000.0,
        "{}",
        result.ppl
    );
    assert_eq!(result.ppl_err, None, "zero variance has no uncertainty");
    assert!(!result.ppl.is_nan());
    assert!(result.to_string().ends_with("+/- n/a"), "{result}");
}

#[test]
fn zero_chunk_limit_is_rejected() {
    let mut model = HashModel::new(16);
    let tokens = token_stream(64, 16, 1);
    let config = PerplexityConfig::new(16).with_max_chunks(0);
    let error = perplexity(&mut model, &tokens, &config, |_| {}).unwrap_err();
    assert!(matches!(error, PplError::ZeroChunks));
}

// BOS in chunked perplexity.

#[test]
fn bos_overwrites_first_token_of_each_chunk() {
    let n_ctx = 16;
    let tokens: Vec<u32> = (0..48).map(|i| 10 + i).collect();
    let mut model = RecordingModel {
        n_vocab: 100,
        bos: Some(2),
        calls: Vec::new(),
    };
    let result = perplexity(&mut model, &tokens, &PerplexityConfig::new(n_ctx), |_| {}).unwrap();

    assert_eq!(model.calls.len(), 3);
    for (k, (input, first_output)) in model.calls.iter().enumerate() {
        let mut expected = vec![2u32];
        expected.extend_from_slice(&tokens[k * n_ctx + 1..(k + 1) * n_ctx]);
        assert_eq!(input, &expected, "chunk {k}");
        assert_eq!(
            input.iter().filter(|&&t| t == 2).count(),
            1,
            "exactly one BOS in chunk {k}"
        );
        assert_eq!(*first_output, n_ctx / 2);
    }

    // Scored targets are the stream's own tokens at positions 9..=15.
    let expected_targets: Vec<u32> = (0..3)
        .flat_map(|k| tokens[k * n_ctx + 9..(k + 1) * n_ctx].to_vec())
        .collect();
    assert_eq!(result.targets, expected_targets);
}

#[test]
fn model_without_bos_keeps_first_token() {
    let tokens: Vec<u32> = (0..48).map(|i| 10 + i).collect();
    let mut model = RecordingModel {
        n_vocab: 100,
        bos: None,
        calls: Vec::new(),
    };
    perplexity(&mut model, &tokens, &PerplexityConfig::new(16), |_| {}).unwrap();
    for (k, (input, _)) in model.calls.iter().enumerate() {
        assert_eq!(input.as_slice(), &tokens[k * 16..(k + 1) * 16]);
    }
}

// Model output checks.

#[test]
fn nan_logit_names_chunk_and_position() {
    let mut model = CorruptingModel {
        inner: HashModel::new(32),
        chunk: 1,
        row: 3,
        vocab_index: 7,
        value: f32::NAN,
        calls: 0,
    };
    let tokens = token_stream(64, 32, 2);
    let error = perplexity(&mut model, &tokens, &PerplexityConfig::new(16), |_| {}).unwrap_err();

    match error {
        PplError::NonFiniteLogit {
            chunk,
            position,
            vocab_index,
            value,
        } => {
            assert_eq!(chunk, 2);
            assert_eq!(position, 8 + 3);
            assert_eq!(vocab_index, 7);
            assert!(value.is_nan());
        }
        other => panic!("expected NonFiniteLogit, got {other}"),
    }
}

#[test]
fn infinite_logit_in_unscored_last_row_is_ignored() {
    // The last output row predicts a token beyond the chunk and is never read.
    let mut model = CorruptingModel {
        inner: HashModel::new(32),
        chunk: 0,
        row: 7,
        vocab_index: 0,
        value: f32::INFINITY,
        calls: 0,
    };
    let tokens = token_stream(64, 32, 2);
    let result = perplexity(&mut model, &tokens, &PerplexityConfig::new(16), |_| {}).unwrap();
    assert!(result.ppl.is_finite());
}

#[test]
fn token_outside_vocab_is_rejected() {
    let mut model = HashModel::new(32);
    let mut tokens = token_stream(64, 32, 2);
    tokens[40] = 32;
    let error = perplexity(&mut model, &tokens, &PerplexityConfig::new(16), |_| {}).unwrap_err();
    assert!(matches!(
        error,
        PplError::TokenOutOfRange {
            token: 32,
            position: 40,
            n_vocab: 32
        }
    ));
}

#[test]
fn wrong_logits_length_is_rejected() {
    struct Short;
    impl ppl_eval::LogitsModel for Short {
        fn n_vocab(&self) -> usize {
            8
        }
        fn bos_token(&self) -> Option<u32> {
            None
        }
        fn eval_chunk(
            &mut self,
            tokens: &[u32],
            _first: usize,
        ) -> Result<Vec<f32>, ppl_eval::BoxError> {
            Ok(vec![0.0; tokens.len()])
        }
    }
    let tokens = vec![1u32; 32];
    let error = perplexity(&mut Short, &tokens, &PerplexityConfig::new(16), |_| {}).unwrap_err();
    assert!(matches!(
        error,
        PplError::LogitsLength {
            chunk: 1,
            actual: 16,
            expected: 64,
            ..
        }
    ));
}

#[test]
fn model_error_names_chunk() {
    struct Failing;
    impl ppl_eval::LogitsModel for Failing {
        fn n_vocab(&self) -> usize {
            8
        }
        fn bos_token(&self) -> Option<u32> {
            None
        }
        fn eval_chunk(
            &mut self,
            _tokens: &[u32],
            _first: usize,
        ) -> Result<Vec<f32>, ppl_eval::BoxError> {
            Err("out of memory".into())
        }
    }
    let tokens = vec![1u32; 32];
    let error = perplexity(&mut Failing, &tokens, &PerplexityConfig::new(16), |_| {}).unwrap_err();
    assert_eq!(
        error.to_string(),
        "model evaluation failed on chunk 1: out of memory"
    );
}
