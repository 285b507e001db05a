//! Throughput of perplexity scoring and, with the `gemma2` feature and the
//! model present, of a whole perplexity chunk on Gemma 3 270M.
//!
//! `RAYON_NUM_THREADS=2 cargo bench -p ppl-eval --features gemma2` reproduces
//! the 2-thread figures in docs/benchmarks.md.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ppl_eval::{perplexity, BoxError, LogitsModel, PerplexityConfig};

/// Gemma's vocabulary size, which sets the cost of each log-softmax.
const GEMMA_N_VOCAB: usize = 262_144;

/// Context size of the llama.cpp reference runs.
const N_CTX: usize = 512;

/// Returns precomputed logits, so that only the scoring is measured.
struct Replay {
    logits: Vec<f32>,
}

impl LogitsModel for Replay {
    fn n_vocab(&self) -> usize {
        GEMMA_N_VOCAB
    }

    fn bos_token(&self) -> Option<u32> {
        Some(2)
    }

    fn eval_chunk(&mut self, _tokens: &[u32], _first_output: usize) -> Result<Vec<f32>, BoxError> {
        Ok(self.logits.clone())
    }
}

fn scoring(c: &mut Criterion) {
    let rows = N_CTX - N_CTX / 2;
    let logits: Vec<f32> = (0..rows * GEMMA_N_VOCAB)
        .map(|i| ((i.wrapping_mul(2_654_435_761) >> 8) % 4096) as f32 / 256.0 - 8.0)
        .collect();
    let tokens: Vec<u32> = (0..2 * N_CTX as u32).map(|i| i * 37 % GEMMA_N_VOCAB as u32).collect();
    let config = PerplexityConfig::new(N_CTX);
    let mut model = Replay { logits };

    let mut group = c.benchmark_group("scoring");
    group.sample_size(10);
    group.throughput(Throughput::Elements(2 * N_CTX as u64));
    group.bench_function("two_chunks_of_512_vocab_262144", |b| {
        b.iter(|| perplexity(&mut model, &tokens, &config, |_| {}).unwrap())
    });
    group.finish();
}

#[cfg(feature = "gemma2")]
fn gemma3_chunk(c: &mut Criterion) {
    use std::path::PathBuf;

    let path = std::env::var_os("GEMMA3_270M_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/gemma-3-270m-q4_k_m.gguf"));
    if !path.is_file() {
        eprintln!("skipped: model missing at {}", path.display());
        return;
    }

    let mut model = gemma2_model::Model::from_gguf(&path).expect("load model");
    let text = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/wiki.test.raw"))
        .expect("read data/wiki.test.raw");
    let tokens = ppl_eval::gemma2::tokenize_for_perplexity(&model, &text[..20_000]).expect("tokenize");
    let config = PerplexityConfig::new(N_CTX).with_max_chunks(2);

    let mut group = c.benchmark_group("gemma3_270m_q4_k_m");
    group.sample_size(10);
    group.throughput(Throughput::Elements(2 * N_CTX as u64));
    group.bench_function("perplexity_two_chunks_of_512", |b| {
        b.iter(|| perplexity(&mut model, &tokens, &config, |_| {}).unwrap())
    });
    group.finish();
}

#[cfg(not(feature = "gemma2"))]
fn gemma3_chunk(_c: &mut Criterion) {
    eprintln!("skipped: gemma3_270m_q4_k_m needs --features gemma2");
}

criterion_group!(benches, scoring, gemma3_chunk);
criterion_main!(benches);
