//! Collection through `ActivationModel` with a small deterministic model.

use std::cell::RefCell;

use imatrix_collect::{
    collect_imatrix, collect_imatrix_with_progress, ActivationModel, CollectParams, Imatrix,
    ImatrixError, ImatrixFormat, MatmulObserver, SaveSchedule,
};

const N_VOCAB: usize = 8;
const BOS: u32 = 2;
const N_EMBD: usize = 4;
const N_FF: usize = 6;

/// Fake model: activations are fixed functions of token and position; logits are uniform
/// (so perplexity is exactly n_vocab) unless `peaked` makes the next token certain.
#[derive(Default)]
struct FakeModel {
    /// Chunks seen, as passed to `evaluate`.
    seen: RefCell<Vec<Vec<u32>>>,
    /// Chunk index at which `evaluate` fails.
    fail_at: Option<usize>,
    /// Emit a NaN activation.
    nan: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("fake failure")]
struct FakeError;

fn embedding(token: u32, position: usize, column: usize) -> f32 {
    ((token as usize * 7 + position * 3 + column) % 11) as f32 * 0.5 - 2.0
}

fn hidden(token: u32, position: usize, column: usize) -> f32 {
    ((token as usize + position + 2 * column) % 5) as f32
}

impl ActivationModel for FakeModel {
    type Error = FakeError;

    fn bos_token(&self) -> u32 {
        BOS
    }

    fn n_vocab(&self) -> usize {
        N_VOCAB
    }

    fn evaluate(
        &self,
        sequences: &[&[u32]],
        logits_from: usize,
        observer: &mut dyn MatmulObserver,
        on_logits: &mut dyn FnMut(usize, Vec<f32>),
    ) -> Result<(), FakeError> {
        let mut x = Vec::new();
        let mut h = Vec::new();
        let mut n = 0;
        for tokens in sequences {
            let index = self.seen.borrow().len();
            self.seen.borrow_mut().push(tokens.to_vec());
            if self.fail_at == Some(index) {
                return Err(FakeError);
            }
            for (position, &token) in tokens.iter().enumerate() {
                x.extend((0..N_EMBD).map(|c| embedding(token, position, c)));
                h.extend((0..N_FF).map(|c| hidden(token, position, c)));
            }
            n += tokens.len();
        }
        if self.nan {
            x[3] = f32::NAN;
        }

        observer.on_matmul_input("blk.0.attn_q.weight", &x, n, N_EMBD);
        observer.on_matmul_input("blk.0.ffn_down.weight", &h, n, N_FF);
        observer.on_matmul_input("token_embd.weight", &x, n, N_EMBD);
        observer.on_matmul_input("output.weight", &x, n, N_EMBD);

        for (index, tokens) in sequences.iter().enumerate() {
            on_logits(index, vec![0.25; (tokens.len() - logits_from) * N_VOCAB]);
        }
        Ok(())
    }
}

fn text(n_tokens: usize) -> Vec<u32> {
    let mut tokens = vec![BOS];
    tokens.extend((1..n_tokens).map(|i| (i * 5 % N_VOCAB) as u32));
    tokens
}

fn params(n_ctx: usize) -> CollectParams {
    CollectParams {
        n_ctx,
        dataset: "fake.txt".to_owned(),
        ..CollectParams::default()
    }
}

#[test]
fn sums_and_counts_match_direct_computation() {
    let model = FakeModel::default();
    let tokens = text(64 * 3 + 10);
    let outcome = collect_imatrix(&model, &tokens, &params(64)).unwrap();
    let imatrix = &outcome.imatrix;

    assert_eq!(outcome.n_chunks, 3);
    assert_eq!(outcome.n_tokens, 192);
    assert_eq!(imatrix.chunk_count(), 3);
    assert_eq!(imatrix.chunk_size(), 64);
    assert_eq!(imatrix.datasets(), &["fake.txt".to_owned()]);

    let mut expected_q = [0.0f64; N_EMBD];
    let mut expected_down = [0.0f64; N_FF];
    for chunk in 0..3 {
        for position in 0..64 {
            let token = if position == 0 {
                BOS
            } else {
                tokens[chunk * 64 + position]
            };
            for (c, sum) in expected_q.iter_mut().enumerate() {
                *sum += f64::from(embedding(token, position, c)).powi(2);
            }
            for (c, sum) in expected_down.iter_mut().enumerate() {
                *sum += f64::from(hidden(token, position, c)).powi(2);
            }
        }
    }

    let q = imatrix.entry("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.counts(), &[192]);
    for (c, (&found, &want)) in q.in_sum2().iter().zip(&expected_q).enumerate() {
        assert!(
            (f64::from(found) - want).abs() <= 1e-5 * want,
            "attn_q[{c}]: {found} vs {want}"
        );
    }
    let down = imatrix.entry("blk.0.ffn_down.weight").unwrap();
    assert_eq!(down.counts(), &[192]);
    for (c, (&found, &want)) in down.in_sum2().iter().zip(&expected_down).enumerate() {
        assert!(
            (f64::from(found) - want).abs() <= 1e-5 * want,
            "ffn_down[{c}]: {found} vs {want}"
        );
    }
}

#[test]
fn skips_embeddings_and_output() {
    let model = FakeModel::default();
    let imatrix = collect_imatrix(&model, &text(128), &params(64))
        .unwrap()
        .imatrix;
    assert!(imatrix.entry("token_embd.weight").is_none());
    assert!(imatrix.entry("output.weight").is_none());
    assert_eq!(imatrix.entries().len(), 2);

    let with_output = CollectParams {
        process_output: true,
        ..params(64)
    };
    let imatrix = collect_imatrix(&FakeModel::default(), &text(128), &with_output)
        .unwrap()
        .imatrix;
    assert_eq!(imatrix.entry("output.weight").unwrap().counts(), &[128]);
    assert!(imatrix.entry("token_embd.weight").is_none());
}

#[test]
fn chunks_start_with_bos_after_skip() {
    let model = FakeModel::default();
    let tokens = text(64 * 6);
    let skip = CollectParams {
        skip_chunks: 2,
        chunks: Some(3),
        ..params(64)
    };
    let outcome = collect_imatrix(&model, &tokens, &skip).unwrap();
    assert_eq!(outcome.n_chunks, 3);

    let seen = model.seen.borrow();
    assert_eq!(seen.len(), 3);
    for (index, chunk) in seen.iter().enumerate() {
        let start = (index + 2) * 64;
        assert_eq!(chunk[0], BOS, "chunk {index}");
        assert_eq!(&chunk[1..], &tokens[start + 1..start + 64], "chunk {index}");
    }
}

#[test]
fn uniform_logits_give_ppl_of_n_vocab() {
    let outcome = collect_imatrix(&FakeModel::default(), &text(64 * 2), &params(64)).unwrap();
    let ppl = outcome.ppl.unwrap();

    // Positions 32..=62 are scored in each chunk: n_ctx - 1 - n_ctx / 2 = 31.
    assert_eq!(ppl.n_tokens, 62);
    assert!((ppl.ppl - N_VOCAB as f64).abs() < 1e-9, "{}", ppl.ppl);
    assert!(ppl.uncertainty.unwrap() < 1e-9);

    let no_ppl = CollectParams {
        compute_ppl: false,
        ..params(64)
    };
    assert!(collect_imatrix(&FakeModel::default(), &text(128), &no_ppl)
        .unwrap()
        .ppl
        .is_none());
}

#[test]
fn short_text_reports_counts() {
    let error = collect_imatrix(&FakeModel::default(), &text(127), &params(64)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "text has 127 tokens, but n_ctx = 64 needs at least 128; use a longer text or a smaller n_ctx"
    );

    let skip = CollectParams {
        skip_chunks: 3,
        ..params(64)
    };
    let error = collect_imatrix(&FakeModel::default(), &text(64 * 4), &skip).unwrap_err();
    assert!(
        matches!(error, ImatrixError::TooFewTokens { n_tokens: 64, .. }),
        "{error}"
    );
}

#[test]
fn model_and_activation_errors_propagate() {
    let failing = FakeModel {
        fail_at: Some(1),
        ..FakeModel::default()
    };
    let error = collect_imatrix(&failing, &text(64 * 3), &params(64)).unwrap_err();
    assert!(
        matches!(error, ImatrixError::Model { chunk: 0, n_chunks: 3, .. }),
        "{error}"
    );
    assert!(error.to_string().starts_with("model evaluation failed on chunks 0 to 2: "), "{error}");

    // One chunk per batch names the chunk itself.
    let one_per_batch = CollectParams { n_batch: 64, ..params(64) };
    let failing = FakeModel {
        fail_at: Some(1),
        ..FakeModel::default()
    };
    let error = collect_imatrix(&failing, &text(64 * 3), &one_per_batch).unwrap_err();
    assert!(
        matches!(error, ImatrixError::Model { chunk: 1, n_chunks: 1, .. }),
        "{error}"
    );

    let nan = FakeModel {
        nan: true,
        ..FakeModel::default()
    };
    let error = collect_imatrix(&nan, &text(64 * 3), &params(64)).unwrap_err();
    assert!(
        matches!(error, ImatrixError::InvalidValue { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("blk.0.attn_q.weight"), "{error}");
}

#[test]
fn periodic_saves_are_complete_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("periodic.gguf");
    let saving = CollectParams {
        save: Some(SaveSchedule {
            path: path.clone(),
            format: ImatrixFormat::Gguf,
            every: 2,
        }),
        ..params(64)
    };

    let mut saved_chunk_counts = Vec::new();
    let outcome =
        collect_imatrix_with_progress(&FakeModel::default(), &text(64 * 5), &saving, |report| {
            if path.exists() {
                saved_chunk_counts.push((report.done, Imatrix::load(&path).unwrap().chunk_count()));
            }
        })
        .unwrap();

    // The file appears after chunk 2, is replaced after chunk 4, and again at the end.
    assert_eq!(saved_chunk_counts, vec![(3, 2), (4, 2), (5, 4)]);
    assert_eq!(Imatrix::load(&path).unwrap(), outcome.imatrix);

    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");
}

#[test]
fn zero_parameters_are_rejected() {
    let zero_chunks = CollectParams {
        chunks: Some(0),
        ..params(64)
    };
    assert!(matches!(
        collect_imatrix(&FakeModel::default(), &text(128), &zero_chunks),
        Err(ImatrixError::InvalidParameter { name: "chunks", .. })
    ));
    assert!(matches!(
        collect_imatrix(&FakeModel::default(), &text(128), &params(8)),
        Err(ImatrixError::InvalidParameter { name: "n_ctx", .. })
    ));

    let zero_batch = CollectParams {
        n_batch: 0,
        ..params(64)
    };
    let error = collect_imatrix(&FakeModel::default(), &text(128), &zero_batch).unwrap_err();
    assert!(matches!(error, ImatrixError::InvalidParameter { name: "n_batch", .. }), "{error:?}");
    assert!(error.to_string().contains("n_batch"), "{error}");

    let zero_ubatch = CollectParams {
        n_ubatch: 0,
        ..params(64)
    };
    assert!(matches!(
        collect_imatrix(&FakeModel::default(), &text(128), &zero_ubatch),
        Err(ImatrixError::InvalidParameter { name: "n_ubatch", .. })
    ));
}
