//! Speed of the collector's accumulation, the two file readers and the comparison.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use imatrix_collect::{
    compare, read_dat, read_gguf, ImatrixCollector, MatmulObserver, DEFAULT_CHUNK_SIZE,
};

/// Rows and columns of one matmul input: a 512-token chunk entering Gemma 3 270M's
/// `ffn_down` (n_ff = 2048).
const N_ROWS: usize = 512;
const N_COLS: usize = 2048;

fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn bench_accumulate(c: &mut Criterion) {
    let x: Vec<f32> = (0..N_ROWS * N_COLS)
        .map(|i| (i % 97) as f32 * 0.01 - 0.5)
        .collect();
    let mut collector = ImatrixCollector::new(DEFAULT_CHUNK_SIZE, false);

    let mut group = c.benchmark_group("collector");
    group.throughput(Throughput::Elements((N_ROWS * N_COLS) as u64));
    group.bench_function("accumulate_512x2048", |b| {
        b.iter(|| collector.on_matmul_input("blk.0.ffn_down.weight", black_box(&x), N_ROWS, N_COLS))
    });
    group.finish();
    collector.take_error().unwrap();
}

fn bench_readers(c: &mut Criterion) {
    let gguf = data("imatrix-en.gguf");
    let dat = data("imatrix-en.dat");
    let ja = read_gguf(&data("imatrix-ja.gguf")).unwrap();
    let en = read_gguf(&gguf).unwrap();

    let mut group = c.benchmark_group("files");
    group.bench_function("read_gguf_en", |b| {
        b.iter(|| read_gguf(black_box(&gguf)).unwrap())
    });
    group.bench_function("read_dat_en", |b| {
        b.iter(|| read_dat(black_box(&dat), DEFAULT_CHUNK_SIZE).unwrap())
    });
    group.bench_function("compare_en_ja", |b| {
        b.iter(|| compare(black_box(&en), black_box(&ja)))
    });
    group.finish();
}

criterion_group!(benches, bench_accumulate, bench_readers);
criterion_main!(benches);
