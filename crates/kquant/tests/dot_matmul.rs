//! `matmul` against the single-row kernels, and its independence of thread count, tile
//! shape and data alignment.

use gguf_format::GgmlType;
use kquant::{
    matmul, matmul_quantized, matmul_quantized_with_isa, quantize_activations, Isa, QuantError,
    VecDot, WeightMatrix,
};

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

/// Computes the product row by row with `VecDot::vec_dot`.
fn per_row<W: VecDot>(isa: Isa, data: &[u8], n_rows: usize, acts: &kquant::QuantizedActivations) -> Vec<f32> {
    let weights: Vec<W> = blocks_of(data);
    let act_blocks: Vec<W::VecDotType> = blocks_of(acts.as_bytes());
    let w_per_row = weights.len() / n_rows;
    let a_per_row = act_blocks.len() / acts.n_batch();

    let mut out = vec![0.0f32; acts.n_batch() * n_rows];
    for b in 0..acts.n_batch() {
        for r in 0..n_rows {
            let w_row = &weights[r * w_per_row..(r + 1) * w_per_row];
            let a_row = &act_blocks[b * a_per_row..(b + 1) * a_per_row];
            out[b * n_rows + r] = W::vec_dot(isa, w_row, a_row);
        }
    }
    out
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn matmul_equals_per_row_kernels() {
    // 67 rows and 70 activation rows leave partial tiles and a partial group of four.
    let (n_rows, n_cols) = (67, 256);
    let x_all = values(70 * n_cols, 7);

    for (ggml_type, n_batch) in [(GgmlType::Q8_0, 70), (GgmlType::Q4_K, 5), (GgmlType::Q6_K, 1), (GgmlType::Q5_0, 9)] {
        let w = values(n_rows * n_cols, 3);
        let data = kquant::quantize(ggml_type, &w, n_cols, None).unwrap();
        let weight = WeightMatrix::new(ggml_type, &data, n_cols, n_rows).unwrap();
        let x = &x_all[..n_batch * n_cols];
        let acts = quantize_activations(kquant::vec_dot_type(ggml_type).unwrap(), x, n_batch, n_cols).unwrap();

        for isa in Isa::supported() {
            let mut out = vec![0.0f32; n_batch * n_rows];
            matmul_quantized_with_isa(isa, &weight, &acts, &mut out).unwrap();

            let expected = match ggml_type {
                GgmlType::Q8_0 => per_row::<kquant::blocks::BlockQ8_0>(isa, &data, n_rows, &acts),
                GgmlType::Q4_K => per_row::<kquant::blocks::BlockQ4K>(isa, &data, n_rows, &acts),
                GgmlType::Q6_K => per_row::<kquant::blocks::BlockQ6K>(isa, &data, n_rows, &acts),
                GgmlType::Q5_0 => per_row::<kquant::blocks::BlockQ5_0>(isa, &data, n_rows, &acts),
                other => unreachable!("no per-row helper for {other}"),
            };
            // On AVX-512 these types go through the register-tiled kernels, which add the same
            // exact integer block sums in another float order.
            let tiled = isa == Isa::Avx512;
            for (i, (&got, &want)) in out.iter().zip(&expected).enumerate() {
                if tiled {
                    let tolerance = 1e-5 * want.abs().max(1.0);
                    assert!((got - want).abs() <= tolerance, "{ggml_type} {isa:?} [{i}]: {got} vs {want}");
                } else {
                    assert_eq!(got.to_bits(), want.to_bits(), "{ggml_type} {isa:?} [{i}]: {got} vs {want}");
                }
            }
        }
    }
}

#[test]
fn matmul_independent_of_thread_count() {
    let (n_rows, n_cols, n_batch) = (300, 640, 37);
    let data = kquant::quantize(GgmlType::Q8_0, &values(n_rows * n_cols, 11), n_cols, None).unwrap();
    let weight = WeightMatrix::new(GgmlType::Q8_0, &data, n_cols, n_rows).unwrap();
    let x = values(n_batch * n_cols, 13);

    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut out = vec![0.0f32; n_batch * n_rows];
        pool.install(|| matmul(&weight, &x, n_batch, &mut out)).unwrap();
        out
    };

    let one = run(1);
    assert_eq!(bits(&one), bits(&run(2)));
    assert_eq!(bits(&one), bits(&run(5)));
}

#[test]
fn matmul_reads_unaligned_weights() {
    let (n_rows, n_cols, n_batch) = (40, 256, 6);
    let data = kquant::quantize(GgmlType::Q4_K, &values(n_rows * n_cols, 17), n_cols, None).unwrap();
    let x = values(n_batch * n_cols, 19);

    // The same bytes one past an aligned address.
    let mut shifted = vec![0u8; data.len() + 1];
    shifted[1..].copy_from_slice(&data);
    let unaligned = &shifted[1..];
    assert_ne!(unaligned.as_ptr() as usize % 2, 0, "test setup: slice is aligned");

    let mut aligned_out = vec![0.0f32; n_batch * n_rows];
    let mut unaligned_out = vec![0.0f32; n_batch * n_rows];
    matmul(&WeightMatrix::new(GgmlType::Q4_K, &data, n_cols, n_rows).unwrap(), &x, n_batch, &mut aligned_out).unwrap();
    matmul(&WeightMatrix::new(GgmlType::Q4_K, unaligned, n_cols, n_rows).unwrap(), &x, n_batch, &mut unaligned_out).unwrap();

    assert_eq!(bits(&aligned_out), bits(&unaligned_out));
}

#[test]
fn matmul_equals_quantize_then_matmul_quantized() {
    let (n_rows, n_cols, n_batch) = (16, 64, 3);
    let data = kquant::quantize(GgmlType::Q4_1, &values(n_rows * n_cols, 23), n_cols, None).unwrap();
    let weight = WeightMatrix::new(GgmlType::Q4_1, &data, n_cols, n_rows).unwrap();
    let x = values(n_batch * n_cols, 29);

    let mut direct = vec![0.0f32; n_batch * n_rows];
    matmul(&weight, &x, n_batch, &mut direct).unwrap();
    let acts = quantize_activations(GgmlType::Q8_1, &x, n_batch, n_cols).unwrap();
    let mut split = vec![0.0f32; n_batch * n_rows];
    matmul_quantized(&weight, &acts, &mut split).unwrap();

    assert_eq!(bits(&direct), bits(&split));
}

#[test]
fn matmul_rejects_bad_shapes() {
    let data = vec![0u8; 2 * 34];
    let weight = WeightMatrix::new(GgmlType::Q8_0, &data, 32, 2).unwrap();

    let short_x = matmul(&weight, &[0.0; 63], 2, &mut [0.0; 4]).unwrap_err();
    assert!(matches!(short_x, QuantError::ActivationLength { expected: 64, found: 63, .. }), "{short_x}");

    let nan_x = matmul(&weight, &[f32::INFINITY; 32], 1, &mut [0.0; 2]).unwrap_err();
    assert!(matches!(nan_x, QuantError::NonFinite { row: 0, column: 0, .. }), "{nan_x}");

    let unsupported = WeightMatrix::new(GgmlType::IQ2_XXS, &data, 256, 1).unwrap_err();
    assert!(matches!(unsupported, QuantError::UnsupportedType(GgmlType::IQ2_XXS)), "{unsupported}");

    let wrong_cols = quantize_activations(GgmlType::Q8_0, &[0.0; 64], 1, 64).unwrap();
    let mismatch = matmul_quantized(&weight, &wrong_cols, &mut [0.0; 2]).unwrap_err();
    assert!(matches!(mismatch, QuantError::ActivationMismatch { found_cols: 64, .. }), "{mismatch}");
}

#[test]
fn empty_batch_writes_nothing() {
    let data = vec![0u8; 34];
    let weight = WeightMatrix::new(GgmlType::Q8_0, &data, 32, 1).unwrap();
    let mut out: [f32; 0] = [];

    matmul(&weight, &[], 0, &mut out).unwrap();
}
