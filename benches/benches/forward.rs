//! Prompt processing of one 512-token chunk of wiki.test.raw on the real Gemma 3 270M model,
//! the whole chunk as one batch, in two forms: `pp512` requests the last position's logits
//! only, as `llama-bench -p 512` does; `chunk_512` requests the second half's, as
//! llama-perplexity scores a chunk. Two models: the original Q4_K_M file and its F32 copy
//! (every tensor dequantized, as `llama-quantize --allow-requantize MODEL base.gguf F32`
//! makes it). Runs on rayon pools of 1 and 2 threads; criterion reports tokens/s.
//!
//! The Q4_K_M model is found at `$GEMMA3_270M_GGUF`, else `models/gemma-3-270m-q4_k_m.gguf`
//! (fetch it with `scripts/fetch-model.sh`). The F32 copy (1.1 GB) is written once to
//! `target/bench-data/gemma-3-270m-f32.gguf` and reused by later runs.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use gemma2_model::Model;
use gguf_format::GgufFile;
use kquant::pipeline::{quantize_model, QuantizeOptions};
use kquant::plan::FileType;

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

/// Writes the F32 copy of `source` next to the build outputs unless it is already there.
fn f32_copy(source: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let path = target.join("bench-data/gemma-3-270m-f32.gguf");
    if path.is_file() {
        return path;
    }

    std::fs::create_dir_all(path.parent().expect("a parent folder")).expect("create target/bench-data");
    let gguf = GgufFile::open(source).expect("open the Q4_K_M model");
    let mut options = QuantizeOptions::new(FileType::F32);
    options.allow_requantize = true;
    quantize_model(&gguf, &path, &options, &mut |_| {}).expect("write the F32 copy");
    path
}

fn bench_model(c: &mut Criterion, group_name: &str, path: &Path, tokens: &[u32]) {
    let model = Model::from_gguf(path).expect("load the model");

    let mut group = c.benchmark_group(group_name);
    // One forward pass per sample: 10 passes per case, not criterion's linear 55.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(N_CTX as u64));
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("build the rayon pool");
        for (name, logits_from) in [("pp512", N_CTX - 1), ("chunk_512", N_CTX / 2)] {
            group.bench_function(format!("{name}_threads_{threads}"), |b| {
                b.iter(|| {
                    pool.install(|| model.forward(black_box(tokens), logits_from, None))
                        .expect("forward")
                })
            });
        }
    }
    group.finish();
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
    drop(model);

    bench_model(c, "forward_gemma3_270m_q4_k_m", &path, &tokens);
    bench_model(c, "forward_gemma3_270m_f32", &f32_copy(&path), &tokens);
}

criterion_group!(benches, forward_chunk);
criterion_main!(benches);
