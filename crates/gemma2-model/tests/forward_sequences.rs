//! Several sequences evaluated as one batch give, row for row, the values each gives alone.

use std::path::Path;

use gemma2_model::{MatmulHook, Model};

/// Records every matmul input, in call order.
#[derive(Default)]
struct Recorder {
    inputs: Vec<(String, Vec<f32>, usize)>,
}

impl MatmulHook for Recorder {
    fn on_matmul_input(&mut self, weight_name: &str, x: &[f32], _n_rows: usize, n_cols: usize) {
        self.inputs.push((weight_name.to_owned(), x.to_vec(), n_cols));
    }
}

/// Token ids below the tiny models' vocabulary, longer than their sliding window.
fn sequences() -> Vec<Vec<u32>> {
    let make = |seed: usize, len: usize| -> Vec<u32> {
        (0..len).map(|i| if i == 0 { 2 } else { ((i * 37 + seed * 101) % 250 + 3) as u32 }).collect()
    };
    vec![make(1, 40), make(2, 40), make(3, 40)]
}

fn check_model(dir: &Path) {
    let model = Model::from_hf_dir(dir).unwrap();
    let sequences = sequences();
    let slices: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
    let logits_from = 10;

    let mut batched = Recorder::default();
    let mut batched_logits = Vec::new();
    model
        .forward_sequences(&slices, logits_from, Some(&mut batched), &mut |index, logits| {
            batched_logits.push((index, logits));
        })
        .unwrap();

    let mut alone = Vec::new();
    for tokens in &sequences {
        let mut recorder = Recorder::default();
        let logits = model.forward(tokens, logits_from, Some(&mut recorder)).unwrap();
        alone.push((recorder, logits));
    }

    // Logits: one call per sequence, in order, bit-identical to the lone evaluation.
    assert_eq!(batched_logits.len(), sequences.len());
    for (seq, (index, logits)) in batched_logits.iter().enumerate() {
        assert_eq!(*index, seq);
        assert!(logits.iter().zip(&alone[seq].1).all(|(a, b)| a.to_bits() == b.to_bits()), "sequence {seq}: logits differ");
        assert_eq!(logits.len(), alone[seq].1.len());
    }

    // Layer matmul inputs: one call for the batch, the rows of all sequences concatenated
    // in sequence order.
    let is_head = |name: &str| name == "token_embd.weight" || name == "output.weight";
    let (batched_head, batched_layers): (Vec<_>, Vec<_>) = batched.inputs.iter().partition(|(name, _, _)| is_head(name));
    let lone_layers: Vec<Vec<_>> = alone.iter().map(|(r, _)| r.inputs.iter().filter(|(n, _, _)| !is_head(n)).collect()).collect();
    assert_eq!(batched_layers.len(), lone_layers[0].len());
    for (call, (name, x, n_cols)) in batched_layers.iter().enumerate() {
        let mut expected = Vec::new();
        for lone in &lone_layers {
            let (lone_name, lone_x, lone_cols) = lone[call];
            assert_eq!((lone_name, lone_cols), (name, n_cols));
            expected.extend_from_slice(lone_x);
        }
        assert_eq!(x.len(), expected.len(), "{name}");
        assert!(x.iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}: inputs differ");
    }

    // The LM head runs once per sequence, on that sequence's rows from logits_from.
    assert_eq!(batched_head.len(), sequences.len());
    for (seq, (name, x, _)) in batched_head.iter().enumerate() {
        let (_, lone_x, _) = alone[seq].0.inputs.iter().find(|(n, _, _)| n == name).unwrap();
        assert_eq!(x.len(), lone_x.len(), "head input of sequence {seq}");
        assert!(x.iter().zip(lone_x).all(|(a, b)| a.to_bits() == b.to_bits()), "head input of sequence {seq}");
    }
}

#[test]
fn gemma2_tiny_batch_equals_each_sequence_alone() {
    check_model(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf-tiny/gemma2-tiny"));
}

#[test]
fn gemma3_tiny_batch_equals_each_sequence_alone() {
    check_model(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf-tiny/gemma3-tiny"));
}

#[test]
fn empty_batch_and_short_sequence_are_errors() {
    let model = Model::from_hf_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf-tiny/gemma3-tiny")).unwrap();
    let error = model.forward_sequences(&[], 0, None, &mut |_, _| {}).unwrap_err();
    assert!(error.to_string().contains("no sequences"), "{error}");

    let long = [2u32, 5, 6, 7];
    let short = [2u32, 5];
    let error = model.forward_sequences(&[&long, &short], 3, None, &mut |_, _| {}).unwrap_err();
    assert!(error.to_string().contains("logits_from 3 is past the end of 2 tokens"), "{error}");
}
