//! Throughput of `kquant::matmul` on the matrix shapes of Gemma 3 270M (n_embd 640,
//! n_ff 2048, 1024-wide attention) with 255 activation rows, the batch a perplexity chunk
//! multiplies by the output matrix.
//!
//! Run with `cargo bench -p gemma-quant-benches --bench kquant_matmul`. Criterion reports
//! elements per second, one element being one multiply-add (n_rows * n_cols * n_batch per
//! call). The 262,144-row tied output matrix is benchmarked on a 16,384-row slice to keep
//! iterations short; its rows are independent, so the rate carries over.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gguf_format::GgmlType;
use kquant::{matmul, WeightMatrix};

/// Activation rows per call.
const N_BATCH: usize = 255;

/// (name, weight type, n_cols, n_rows) as in Gemma 3 270M's Q4_K_M file.
/// The last entry is ffn_down's shape in Q5_K, the type Q5_K_M files give some of them.
const SHAPES: [(&str, GgmlType, usize, usize); 11] = [
    ("output_slice", GgmlType::Q8_0, 640, 16_384),
    ("ffn_up", GgmlType::Q5_0, 640, 2048),
    ("ffn_down", GgmlType::Q6_K, 2048, 640),
    ("attn_output", GgmlType::Q4_K, 1024, 640),
    ("attn_q", GgmlType::Q5_0, 640, 1024),
    ("ffn_down_q5_k", GgmlType::Q5_K, 2048, 640),
    // Other types of the imatrix study's mixes. The K-quants and IQ4_XS need n_cols to be
    // a multiple of 256, so they take ffn_down's shape.
    ("ffn_up_q4_1", GgmlType::Q4_1, 640, 2048),
    ("ffn_up_q5_1", GgmlType::Q5_1, 640, 2048),
    ("ffn_down_q2_k", GgmlType::Q2_K, 2048, 640),
    ("ffn_down_q3_k", GgmlType::Q3_K, 2048, 640),
    ("ffn_down_iq4_xs", GgmlType::IQ4_XS, 2048, 640),
];

/// Shapes multiplied from ggml's `CPU_REPACK` buffer ([`WeightMatrix::with_repack`]): the
/// real model's two Q4_K shapes, and ffn_up's shape in Q4_0 and IQ4_NL.
const REPACKED_SHAPES: [(&str, GgmlType, usize, usize); 4] = [
    ("attn_output_repack", GgmlType::Q4_K, 1024, 640),
    ("ffn_down_repack", GgmlType::Q4_K, 2048, 640),
    ("ffn_up_repack", GgmlType::Q4_0, 640, 2048),
    ("ffn_up_repack", GgmlType::IQ4_NL, 640, 2048),
];

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn matmul_shapes(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);

    let plain = SHAPES.map(|(name, ggml_type, n_cols, n_rows)| (name, ggml_type, n_cols, n_rows, false));
    let repacked = REPACKED_SHAPES.map(|(name, ggml_type, n_cols, n_rows)| (name, ggml_type, n_cols, n_rows, true));
    for (name, ggml_type, n_cols, n_rows, repack) in plain.into_iter().chain(repacked) {
        let data = kquant::quantize(ggml_type, &values(n_rows * n_cols, 1), n_cols, None)
            .expect("quantize weights");
        let weight = WeightMatrix::new(ggml_type, &data, n_cols, n_rows)
            .expect("weight matrix")
            .with_repack(repack);
        let x = values(N_BATCH * n_cols, 2);
        let mut out = vec![0.0f32; N_BATCH * n_rows];

        group.throughput(Throughput::Elements((n_rows * n_cols * N_BATCH) as u64));
        group.bench_function(BenchmarkId::new(name, format!("{ggml_type} {n_cols}x{n_rows}")), |b| {
            b.iter(|| matmul(black_box(&weight), black_box(&x), N_BATCH, &mut out).expect("matmul"))
        });
    }
    group.finish();
}

criterion_group!(benches, matmul_shapes);
criterion_main!(benches);
