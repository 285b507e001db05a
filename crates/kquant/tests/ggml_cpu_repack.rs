//! Products of repacked Q4_K, Q4_0 and IQ4_NL weights against ggml's own `CPU_REPACK`
//! matrix products (`ggml_gemm_*_8x8` / `ggml_gemv_*_8x8` of llama.cpp b11312), compared
//! bit for bit.
//!
//! The golden files in `tests/data/ggml-cpu/repack` come from
//! `scripts/ggml-oracle/repack.c`; their README describes how. Each case runs with every
//! instruction set this CPU supports.

mod common;

use common::{check_matmul_cases, compare_bits, GoldenDir};
use gguf_format::GgmlType;
use kquant::{matmul_quantized_with_isa, quantize_activations, vec_dot_type, Isa, WeightMatrix};

fn check_type(ggml_type: GgmlType) {
    check_matmul_cases(&GoldenDir::new("repack"), ggml_type, true);
}

#[test]
fn q4_k_matches_ggml_repack() {
    check_type(GgmlType::Q4_K);
}

#[test]
fn q4_0_matches_ggml_repack() {
    check_type(GgmlType::Q4_0);
}

#[test]
fn iq4_nl_matches_ggml_repack() {
    check_type(GgmlType::IQ4_NL);
}

/// Builds a `n_rows` x `n_cols` matrix of `ggml_type` from a fixed pseudo-random spread.
fn random_weight(ggml_type: GgmlType, n_rows: usize, n_cols: usize, seed: u32) -> Vec<u8> {
    let values = pseudo_random(n_rows * n_cols, seed, 0.03);
    kquant::quantize(ggml_type, &values, n_cols, None).expect("type quantizes without imatrix")
}

/// Returns `len` values of a fixed linear congruential sequence scaled to +-`scale`, with
/// every 97th value 40 times larger (activation outliers).
fn pseudo_random(len: usize, seed: u32, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    (0..len)
        .map(|i| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let unit = (state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
            if i % 97 == 5 {
                unit * scale * 40.0
            } else {
                unit * scale
            }
        })
        .collect()
}

#[test]
fn simd_matches_scalar_on_large_shapes() {
    // 2048 columns is the FFN width of Gemma 3 270M; 72 rows leave an 8-row panel after
    // the 32-row tiles; 13 rows mix both kernels.
    let shapes = [
        (GgmlType::Q4_K, 2048, 72),
        (GgmlType::Q4_0, 640, 40),
        (GgmlType::IQ4_NL, 640, 24),
    ];
    for (ggml_type, n_cols, n_rows) in shapes {
        let data = random_weight(ggml_type, n_rows, n_cols, 11);
        let weight = WeightMatrix::new(ggml_type, &data, n_cols, n_rows)
            .unwrap()
            .with_repack(true);

        for n_batch in [1, 6, 13, 70] {
            let x = pseudo_random(n_batch * n_cols, 5 + n_batch as u32, 1.0);
            let act_type = vec_dot_type(ggml_type).unwrap();
            let acts = quantize_activations(act_type, &x, n_batch, n_cols).unwrap();

            let mut scalar = vec![0.0f32; n_batch * n_rows];
            let mut simd = vec![0.0f32; n_batch * n_rows];
            matmul_quantized_with_isa(Isa::Scalar, &weight, &acts, &mut scalar).unwrap();
            matmul_quantized_with_isa(Isa::detect(), &weight, &acts, &mut simd).unwrap();

            let label = format!("{ggml_type} {n_cols}x{n_rows} batch {n_batch}, SIMD against scalar");
            if let Err(message) = compare_bits(&label, &scalar, &simd) {
                panic!("{message}");
            }
        }
    }
}

#[test]
fn repacked_q4_k_stays_near_plain_kernel() {
    // The repacked order changes only the f32 rounding, so the result must stay within a
    // few ulps of the sum of 2048 products that the plain vec-dot kernel returns.
    let (n_cols, n_rows, n_batch) = (2048, 16, 5);
    let data = random_weight(GgmlType::Q4_K, n_rows, n_cols, 3);
    let plain = WeightMatrix::new(GgmlType::Q4_K, &data, n_cols, n_rows).unwrap();
    let repacked = plain.with_repack(true);
    let x = pseudo_random(n_batch * n_cols, 9, 1.0);
    let acts = quantize_activations(GgmlType::Q8_K, &x, n_batch, n_cols).unwrap();

    let mut expected = vec![0.0f32; n_batch * n_rows];
    let mut found = vec![0.0f32; n_batch * n_rows];
    kquant::matmul_quantized(&plain, &acts, &mut expected).unwrap();
    kquant::matmul_quantized(&repacked, &acts, &mut found).unwrap();

    let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (i, (e, f)) in expected.iter().zip(&found).enumerate() {
        assert!(
            (e - f).abs() <= 1e-5 * scale,
            "output {i}: plain {e} vs repacked {f}"
        );
    }
}
