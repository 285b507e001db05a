//! The collector adds rows in llama-imatrix's ubatch order and leaves out small ubatches.

use imatrix_collect::{BatchLayout, ImatrixCollector, MatmulObserver};

const N_COLS: usize = 8;

/// Values of widely different magnitudes, so that the order of f32 additions shows.
fn activations(n_rows: usize) -> Vec<f32> {
    (0..n_rows * N_COLS)
        .map(|i| {
            let wave = ((i * 2_654_435_761usize) % 1000) as f32 / 1000.0;
            wave * 10f32.powi((i % 7) as i32 - 3)
        })
        .collect()
}

/// Adds `x²` of the given rows to `sums`, in the given order.
fn add_rows(sums: &mut [f32], x: &[f32], rows: impl Iterator<Item = usize>) {
    for row in rows {
        for (sum, &value) in sums.iter_mut().zip(&x[row * N_COLS..(row + 1) * N_COLS]) {
            *sum += value * value;
        }
    }
}

#[test]
fn four_sequences_follow_the_equal_split() {
    let (n_seqs, seq_len) = (4, 512);
    let x = activations(n_seqs * seq_len);

    let mut collector = ImatrixCollector::new(512, false);
    collector.set_batch_layout(BatchLayout { n_seqs, ..BatchLayout::default() });
    collector.on_matmul_input("blk.0.attn_q.weight", &x, n_seqs * seq_len, N_COLS);
    collector.take_error().unwrap();
    let imatrix = collector.into_imatrix();
    let entry = imatrix.entry("blk.0.attn_q.weight").unwrap();

    // llama.cpp: 4 ubatches, each 128 rows of sequence 0, then of 1, 2 and 3.
    let mut expected = [0.0f32; N_COLS];
    for ubatch in 0..4 {
        for seq in 0..n_seqs {
            let first = seq * seq_len + ubatch * 128;
            add_rows(&mut expected, &x, first..first + 128);
        }
    }
    assert_eq!(entry.in_sum2(), &expected);
    assert_eq!(entry.counts(), &[2048]);

    // Row order matters here, so the test would notice a collector that ignores the layout.
    let mut sequential = [0.0f32; N_COLS];
    add_rows(&mut sequential, &x, 0..n_seqs * seq_len);
    assert_ne!(entry.in_sum2(), &sequential);
}

#[test]
fn three_sequences_drop_the_short_last_ubatch() {
    let (n_seqs, seq_len) = (3, 512);
    let x = activations(n_seqs * seq_len);

    let mut collector = ImatrixCollector::new(512, false);
    collector.set_batch_layout(BatchLayout { n_seqs, ..BatchLayout::default() });
    collector.on_matmul_input("blk.0.ffn_down.weight", &x, n_seqs * seq_len, N_COLS);
    collector.take_error().unwrap();
    let imatrix = collector.into_imatrix();
    let entry = imatrix.entry("blk.0.ffn_down.weight").unwrap();

    // Three ubatches of 170 rows per sequence, then one of 2 per sequence (6 rows, fewer
    // than the 16 llama-imatrix collects).
    let mut expected = [0.0f32; N_COLS];
    for ubatch in 0..3 {
        for seq in 0..n_seqs {
            let first = seq * seq_len + ubatch * 170;
            add_rows(&mut expected, &x, first..first + 170);
        }
    }
    assert_eq!(entry.in_sum2(), &expected);
    assert_eq!(entry.counts(), &[3 * 510]);
}

#[test]
fn long_sequence_ubatches() {
    let layout = BatchLayout { n_seqs: 1, n_batch: 1000, n_ubatch: 400 };
    assert_eq!(layout.ubatches(2010), vec![(0, 400), (400, 400), (800, 200), (1000, 400), (1400, 400), (1800, 200), (2000, 10)]);

    // The last ubatch has 10 rows, fewer than 16, so it is left out.
    let x = activations(2010);
    let mut collector = ImatrixCollector::new(2010, false);
    collector.set_batch_layout(layout);
    collector.on_matmul_input("blk.1.attn_v.weight", &x, 2010, N_COLS);
    collector.take_error().unwrap();
    assert_eq!(collector.imatrix().entry("blk.1.attn_v.weight").unwrap().counts(), &[2000]);
}

#[test]
fn decode_sized_inputs_are_not_collected() {
    let x = activations(8);
    let mut collector = ImatrixCollector::new(512, false);
    collector.on_matmul_input("blk.0.attn_k.weight", &x, 8, N_COLS);
    collector.take_error().unwrap();
    assert!(collector.imatrix().entry("blk.0.attn_k.weight").is_none());
}

#[test]
fn uneven_rows_error() {
    let x = activations(100);
    let mut collector = ImatrixCollector::new(512, false);
    collector.set_batch_layout(BatchLayout { n_seqs: 3, ..BatchLayout::default() });
    collector.on_matmul_input("blk.0.attn_q.weight", &x, 100, N_COLS);
    let error = collector.take_error().unwrap_err().to_string();
    assert!(error.contains("100 rows"), "{error}");
    assert!(error.contains("3 sequences"), "{error}");
}
