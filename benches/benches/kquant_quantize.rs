//! Quantization throughput per ggml type, with and without an importance matrix, on 1 and 2
//! threads: MB/s of f32 input (criterion's bytes/s over the input size).
//!
//! Run with `cargo bench -p gemma-quant-benches --bench kquant_quantize`. The matrix is
//! 64 rows of 2,048 columns (512 KiB of f32), the shape of a small model's FFN weight slice.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gguf_format::GgmlType;

const ROWS: usize = 64;
const COLS: usize = 2048;

const TYPES: [GgmlType; 15] = [
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::Q8_K,
];

/// Returns reproducible values in [-1, 1) from a xorshift generator.
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

fn quantize_throughput(c: &mut Criterion) {
    let weights = values(ROWS * COLS, 1);
    // Importance values spread over two decades, like mean squared activations.
    let imatrix: Vec<f32> = values(COLS, 2).iter().map(|v| 10f32.powf(2.0 * v.abs())).collect();

    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        for ggml_type in TYPES {
            if !kquant::is_supported(ggml_type) {
                continue;
            }
            let mut group = c.benchmark_group(format!("quantize/{ggml_type}"));
            group.throughput(Throughput::Bytes((ROWS * COLS * 4) as u64));
            for (label, weights_for_type) in [("none", None), ("imatrix", Some(imatrix.as_slice()))] {
                let id = BenchmarkId::new(label, format!("{threads}t"));
                group.bench_with_input(id, &weights_for_type, |b, importance| {
                    b.iter(|| pool.install(|| kquant::quantize(ggml_type, black_box(&weights), COLS, *importance).expect("quantize")))
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, quantize_throughput);
criterion_main!(benches);
