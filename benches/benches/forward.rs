//! Prompt processing of one 512-token chunk of wiki.test.raw on the real Gemma 3 270M
//! Q4_K_M model, as llama-perplexity evaluates it: the whole chunk as one batch, logits for
//! the second half only. Runs on rayon pools of 1 and 2 threads; criterion reports tokens/s.
//!
//! The model is found at `$GEMMA3_270M_GGUF`, else `models/gemma-3-270m-q4_k_m.gguf`
//! (fetch it with `scripts/fetch-model.sh`).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gemma2_model::Model;

/// Tokens per chunk, llama-perplexity's `-c 512`.
const N_CTX: usize = 512;

/// Bytes of wiki.test.raw to tokenize: more than one chunk needs.
const TEXT_BYTES: usize = 8_000;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model_path() -> PathBuf {
    std::env::var_os("GEMMA3_270M_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models/gemma-3-270m-q4_k_m.gguf"))
}

fn forward_chunk(c: &mut Criterion) {
    let path = model_path();
    assert!(path.is_file(), "model missing at {}; run scripts/fetch-model.sh", path.display());
    let model = Model::from_gguf(&path).expect("load the model");
    let tokenizer = model.tokenizer().expect("the GGUF carries a tokenizer");

    let text = std::fs::read(workspace_root().join("data/wiki.test.raw")).expect("read data/wiki.test.raw");
    let mut tokens = tokenizer
        .encode_bytes(&text[..TEXT_BYTES], true, false)
        .expect("tokenize");
    assert!(tokens.len() >= N_CTX, "only {} tokens", tokens.len());
    tokens.truncate(N_CTX);

    let mut group = c.benchmark_group("forward_gemma3_270m_q4_k_m");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N_CTX as u64));
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("build the rayon pool");
        group.bench_function(format!("chunk_512_threads_{threads}"), |b| {
            b.iter(|| {
                pool.install(|| model.forward(black_box(&tokens), N_CTX / 2, None))
                    .expect("forward")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, forward_chunk);
criterion_main!(benches);
