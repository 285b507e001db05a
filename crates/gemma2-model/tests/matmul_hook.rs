//! The matmul hook receives the input of every weight matmul, in graph order.

use std::path::Path;

use gemma2_model::{MatmulHook, Model};

#[derive(Default)]
struct Recorder {
    calls: Vec<(String, usize, usize, f32)>,
}

impl MatmulHook for Recorder {
    fn on_matmul_input(&mut self, weight_name: &str, x: &[f32], n_rows: usize, n_cols: usize) {
        assert_eq!(x.len(), n_rows * n_cols, "{weight_name}");
        let sum_sq = x.iter().map(|v| v * v).sum();
        self.calls.push((weight_name.to_owned(), n_rows, n_cols, sum_sq));
    }
}

#[test]
fn hook_sees_every_weight_in_order() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf-tiny/gemma3-tiny");
    let model = Model::from_hf_dir(&dir).unwrap();
    let config = model.config().clone();
    let tokens = [2u32, 95, 138, 5, 366, 6, 345, 458];

    let mut recorder = Recorder::default();
    let with_hook = model.forward(&tokens, 5, Some(&mut recorder)).unwrap();
    let without_hook = model.forward(&tokens, 5, None).unwrap();
    assert_eq!(with_hook, without_hook);

    let per_layer = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];
    assert_eq!(recorder.calls.len(), config.n_layer * per_layer.len() + 1);
    for il in 0..config.n_layer {
        for (i, suffix) in per_layer.iter().enumerate() {
            let (name, n_rows, n_cols, _) = &recorder.calls[il * per_layer.len() + i];
            assert_eq!(name, &format!("blk.{il}.{suffix}.weight"));
            assert_eq!(*n_rows, tokens.len(), "{name}");
            let expected_cols = match *suffix {
                "attn_output" => config.n_head * config.head_dim,
                "ffn_down" => config.n_ff,
                _ => config.n_embd,
            };
            assert_eq!(*n_cols, expected_cols, "{name}");
        }
        // Q, K and V read the same normalized input.
        let base = il * per_layer.len();
        assert_eq!(recorder.calls[base].3, recorder.calls[base + 1].3);
        assert_eq!(recorder.calls[base].3, recorder.calls[base + 2].3);
    }

    let (name, n_rows, n_cols, _) = recorder.calls.last().unwrap();
    assert_eq!(name, "token_embd.weight", "the tied head is reported under the embedding's name");
    assert_eq!(*n_rows, tokens.len() - 5);
    assert_eq!(*n_cols, config.n_embd);
}
