//! Opens and indexes the real Gemma 3 270M Q4_K_M model: memory-map, parse and validate the
//! header, then look up every tensor by name and touch its data slice.
//!
//! The model is found at `$GEMMA3_270M_GGUF`, else `models/gemma-3-270m-q4_k_m.gguf`
//! (fetch it with `scripts/fetch-model.sh`).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use gguf_format::{GgufFile, GgufView};

fn model_path() -> PathBuf {
    std::env::var_os("GEMMA3_270M_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/gemma-3-270m-q4_k_m.gguf")
        })
}

/// Looks up every tensor by name and returns the sum of their first bytes, so that the
/// look-ups and slices cannot be optimized away.
fn index_all(file: &GgufFile) -> u64 {
    file.tensors()
        .iter()
        .map(|t| {
            let data = file
                .tensor_bytes(&t.name)
                .expect("tensor listed by the file");
            u64::from(data[0])
        })
        .sum()
}

fn gguf_open(c: &mut Criterion) {
    let path = model_path();
    assert!(
        path.is_file(),
        "model missing at {}; run scripts/fetch-model.sh",
        path.display()
    );

    c.bench_function("gguf_open_index_gemma3_270m", |b| {
        b.iter(|| {
            let file = GgufFile::open(black_box(&path)).unwrap();
            black_box(index_all(&file))
        })
    });

    // The same parse over bytes already in memory, without the mmap system calls.
    let bytes = std::fs::read(&path).unwrap();
    c.bench_function("gguf_parse_in_memory_gemma3_270m", |b| {
        b.iter(|| black_box(GgufView::parse(black_box(&bytes)).unwrap().tensors().len()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = gguf_open
}
criterion_main!(benches);
