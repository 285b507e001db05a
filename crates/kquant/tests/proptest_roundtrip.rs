//! Property tests: the quantize-dequantize error stays within a per-type bound, and the
//! output does not depend on the rayon thread count.

use kquant::{dequantize, is_supported, quantize, GgmlType};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// Elements per row in these tests: a multiple of every block size (32 and 256).
const N_PER_ROW: usize = 512;

/// Largest tolerated `|x - dequantize(quantize(x))|` as a fraction of the largest
/// magnitude in the same ggml block (32 or 256 elements), without and with a uniform
/// imatrix.
///
/// The bounds are about 1.5 times the worst ratio seen over 9,000 random rows of this
/// file's distribution, and never below the format's step. That step is half a code step
/// plus the f16 rounding of the scale for Q8_0, Q5_1 and Q4_1, and a full code step for
/// Q4_0 and Q5_0 because they clip the largest positive value. IQ4_XS and the k-quants
/// add the error of their 6-bit or 4-bit sub-block scales.
const ERROR_BOUNDS: &[(GgmlType, f32, f32)] = &[
    (GgmlType::F32, 0.0, 0.0),
    (GgmlType::F16, 1.0 / 1024.0, 1.0 / 1024.0),
    (GgmlType::BF16, 1.0 / 128.0, 1.0 / 128.0),
    (GgmlType::Q8_0, 1.0 / 127.0, 1.0 / 127.0),
    (GgmlType::Q4_0, 0.13, 0.17),
    (GgmlType::Q4_1, 0.1, 0.15),
    (GgmlType::Q5_0, 0.065, 0.075),
    (GgmlType::Q5_1, 0.05, 0.075),
    (GgmlType::IQ4_NL, 0.18, 0.19),
    (GgmlType::IQ4_XS, 0.17, 0.17),
    (GgmlType::Q2_K, 0.75, 0.7),
    (GgmlType::Q3_K, 0.35, 0.3),
    (GgmlType::Q4_K, 0.13, 0.13),
    (GgmlType::Q5_K, 0.085, 0.075),
    (GgmlType::Q6_K, 0.03, 0.03),
];

/// Seed of the error-bound properties: the bounds are measured, so the cases are fixed
/// to keep the test reproducible.
const ERROR_BOUND_SEED: u64 = 0x6b71_7561_6e74;

/// Returns rows of `N_PER_ROW` values: uniform in `-1..1` times a magnitude from 1e-3 to
/// 100, with 2% outliers 50 times larger, so blocks range from flat to spiky. The largest
/// value (5,000) keeps every f16 scale finite.
fn matrix(max_rows: usize) -> impl Strategy<Value = Vec<f32>> {
    (1..=max_rows).prop_flat_map(|rows| {
        proptest::collection::vec(
            (-1.0f32..1.0, -3i32..=2, proptest::bool::weighted(0.02)).prop_map(
                |(unit, exponent, outlier)| {
                    let magnitude = 10f32.powi(exponent);
                    if outlier {
                        unit * magnitude * 50.0
                    } else {
                        unit * magnitude
                    }
                },
            ),
            rows * N_PER_ROW,
        )
    })
}

/// Returns an importance vector of `N_PER_ROW` positive values spanning four decades.
///
/// With such a vector the weighted fits may sacrifice a low-importance outlier almost
/// entirely, so it serves the thread-count property, not the error bounds.
fn importance() -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(
        (-2i32..=2, 1.0f32..10.0).prop_map(|(e, m)| m * 10f32.powi(e)),
        N_PER_ROW,
    )
}

/// Returns the first block whose worst error exceeds `bound * amax`, as a message.
fn check_error(
    ggml_type: GgmlType,
    src: &[f32],
    restored: &[f32],
    bound: f32,
) -> Result<(), String> {
    let block_size = ggml_type.block_size().max(32);
    for (index, (x, y)) in src
        .chunks(block_size)
        .zip(restored.chunks(block_size))
        .enumerate()
    {
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = x
            .iter()
            .zip(y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        if worst > bound * amax {
            return Err(format!(
                "{ggml_type} block {index}: error {worst} > {bound} * amax {amax}"
            ));
        }
    }
    Ok(())
}

fn round_trip_within_bounds(src: &[f32], imatrix: Option<&[f32]>) -> Result<(), TestCaseError> {
    for &(ggml_type, bound, imatrix_bound) in ERROR_BOUNDS {
        prop_assert!(
            is_supported(ggml_type),
            "{ggml_type} is listed but not supported"
        );

        let bytes = quantize(ggml_type, src, N_PER_ROW, imatrix)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let restored = dequantize(ggml_type, &bytes, N_PER_ROW)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(restored.len(), src.len());

        let bound = if imatrix.is_some() {
            imatrix_bound
        } else {
            bound
        };
        check_error(ggml_type, src, &restored, bound).map_err(TestCaseError::fail)?;
    }
    Ok(())
}

fn quantize_with_threads(
    threads: usize,
    ggml_type: GgmlType,
    src: &[f32],
    imatrix: Option<&[f32]>,
) -> Vec<u8> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool");
    pool.install(|| quantize(ggml_type, src, N_PER_ROW, imatrix))
        .expect("quantize")
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        rng_seed: RngSeed::Fixed(ERROR_BOUND_SEED),
        ..ProptestConfig::default()
    })]

    #[test]
    fn round_trip_error_bounded(src in matrix(3)) {
        round_trip_within_bounds(&src, None)?;
    }

    #[test]
    fn round_trip_error_bounded_imatrix(src in matrix(3)) {
        let uniform = vec![1.0f32; N_PER_ROW];
        round_trip_within_bounds(&src, Some(&uniform))?;
    }
}

proptest! {
    // Enough rows that rayon splits the work across threads (tasks take 16384 elements).
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn output_independent_of_threads(src in matrix(160), imatrix in importance(), use_imatrix in any::<bool>()) {
        let imatrix = use_imatrix.then_some(imatrix.as_slice());
        for &(ggml_type, _, _) in ERROR_BOUNDS {
            let single = quantize_with_threads(1, ggml_type, &src, imatrix);
            let three = quantize_with_threads(3, ggml_type, &src, imatrix);
            prop_assert!(single == three, "{} output differs between 1 and 3 threads", ggml_type);
        }
    }
}
