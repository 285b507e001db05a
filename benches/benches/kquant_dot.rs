//! Throughput of one vec-dot kernel per weight type: a 4,096-element row against one
//! activation row, scalar and best SIMD path.
//!
//! Run with `cargo bench -p gemma-quant-benches --bench kquant_dot`. Criterion reports
//! elements (multiply-adds) per second.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kquant::blocks::*;
use kquant::{quantize_activations, Isa, VecDot};

/// Elements per benchmarked row: 16 Q8_K super-blocks, 128 Q8_0 blocks.
const N: usize = 4096;

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

fn blocks_of<T: bytemuck::Pod>(bytes: &[u8]) -> Vec<T> {
    let mut out = vec![T::zeroed(); bytes.len() / std::mem::size_of::<T>()];
    bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(bytes);
    out
}

fn bench_type<W: VecDot>(c: &mut Criterion) {
    let ggml_type = W::TYPE;
    let weight_bytes = kquant::quantize(ggml_type, &values(N, 1), N, None).expect("quantize");
    let weights: Vec<W> = blocks_of(&weight_bytes);
    let acts = quantize_activations(<W::VecDotType as kquant::activation::ActivationBlock>::TYPE, &values(N, 2), 1, N)
        .expect("quantize activations");
    let act_blocks: Vec<W::VecDotType> = blocks_of(acts.as_bytes());

    let mut group = c.benchmark_group(format!("vec_dot/{ggml_type}"));
    group.throughput(Throughput::Elements(N as u64));
    let mut isas = vec![Isa::Scalar];
    if Isa::detect() != Isa::Scalar {
        isas.push(Isa::detect());
    }
    for isa in isas {
        group.bench_with_input(BenchmarkId::from_parameter(format!("{isa:?}")), &isa, |b, &isa| {
            b.iter(|| W::vec_dot(isa, black_box(&weights), black_box(&act_blocks)))
        });
    }
    group.finish();
}

fn vec_dot(c: &mut Criterion) {
    bench_type::<BlockQ4_0>(c);
    bench_type::<BlockQ4_1>(c);
    bench_type::<BlockQ5_0>(c);
    bench_type::<BlockQ5_1>(c);
    bench_type::<BlockQ8_0>(c);
    bench_type::<BlockIQ4NL>(c);
    bench_type::<BlockQ2K>(c);
    bench_type::<BlockQ3K>(c);
    bench_type::<BlockQ4K>(c);
    bench_type::<BlockQ5K>(c);
    bench_type::<BlockQ6K>(c);
    bench_type::<BlockIQ4XS>(c);
    bench_type::<f32>(c);
    bench_type::<half::f16>(c);
    bench_type::<half::bf16>(c);
}

criterion_group!(benches, vec_dot);
criterion_main!(benches);
