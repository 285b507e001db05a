//! Activation quantizers against a second, independent reading of ggml's x86-64 CPU code.
//!
//! The reference functions below restate ggml's steps literally, instruction by
//! instruction, where the crate's versions are written for readability:
//!
//! - Q8_0 / Q8_1 (`quantize_row_q8_0` / `quantize_row_q8_1` under `__AVX2__`): amax is the
//!   `max_ps` of |x|, `d = amax / 127` is stored as f16 and `id = 127 / amax` (0 for amax 0).
//!   Codes are `_mm256_round_ps(x * id, nearest)` converted by `_mm256_cvtps_epi32` (which
//!   gives `i32::MIN` for NaN and out-of-range values) and saturated to i8 by the packs.
//!   Q8_1 adds `s = f16(d * sum(codes))`.
//! - Q8_K (`quantize_row_q8_K_ref`): the first element of largest |x| sets `max`;
//!   `iscale = -127 / max`; codes `min(127, nearest_int(iscale * x))` stored as int8_t (low
//!   byte) with `nearest_int` the 1.5 * 2^23 mantissa trick; `d = 1 / iscale`; `bsums` sums of
//!   16 codes; an all-zero block gets `d = 0` and zero codes.
//!
//! The inputs include exact rounding ties, zero blocks, outliers and blocks so small that
//! `127 / amax` overflows.

use gguf_format::GgmlType;
use half::f16;
use kquant::blocks::{BlockQ8K, BlockQ8_0, BlockQ8_1};

/// `_mm256_cvtps_epi32` on an already rounded value.
fn cvtps_epi32(x: f32) -> i32 {
    if x.is_nan() || x >= 2_147_483_648.0 || x < -2_147_483_648.0 {
        i32::MIN
    } else {
        x as i32
    }
}

/// `_mm256_round_ps(x, _MM_ROUND_NEAREST)`: to nearest, ties to even, computed here from
/// the floor so it does not share code with the crate.
fn round_nearest_even(x: f32) -> f32 {
    if !x.is_finite() {
        return x;
    }
    let floor = x.floor();
    let fraction = x - floor;
    if fraction > 0.5 {
        floor + 1.0
    } else if fraction < 0.5 {
        floor
    } else if floor % 2.0 == 0.0 {
        floor
    } else {
        floor + 1.0
    }
}

/// Returns `(d bits, codes)` of one Q8_0 block as the x86 AVX2 path computes them.
fn reference_q8_block(x: &[f32]) -> (f32, [i8; 32]) {
    let amax = x.iter().fold(0.0f32, |m, v| if v.abs() > m { v.abs() } else { m });
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };

    let mut codes = [0i8; 32];
    for (q, &v) in codes.iter_mut().zip(x) {
        let wide = cvtps_epi32(round_nearest_even(v * id));
        *q = wide.clamp(-128, 127) as i8;
    }
    (d, codes)
}

/// ggml's `nearest_int`.
fn ggml_nearest_int(f: f32) -> i32 {
    let val = f + 12_582_912.0;
    (val.to_bits() as i32 & 0x007F_FFFF) - 0x0040_0000
}

fn reference_q8_k_block(x: &[f32]) -> BlockQ8K {
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }

    let mut block = BlockQ8K { d: 0.0, qs: [0; 256], bsums: [0; 16] };
    if amax == 0.0 {
        return block;
    }

    let iscale = -127.0 / max;
    for (q, &v) in block.qs.iter_mut().zip(x) {
        *q = ggml_nearest_int(iscale * v).min(127) as i8;
    }
    for (j, sum) in block.bsums.iter_mut().enumerate() {
        *sum = block.qs[16 * j..16 * j + 16].iter().map(|&q| i16::from(q)).sum();
    }
    block.d = 1.0 / iscale;
    block
}

/// Test rows: random, exact ties, zeros, outliers and values too small for `127 / amax`.
fn test_rows(n_cols: usize) -> Vec<Vec<f32>> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };

    let random: Vec<f32> = (0..n_cols).map(|_| next()).collect();

    // amax 127 makes id exactly 1, so every x.5 is a tie.
    let ties: Vec<f32> = (0..n_cols)
        .map(|i| if i % 32 == 0 { 127.0 } else { (i % 64) as f32 * 0.5 - 16.0 })
        .collect();

    let mut zeros_and_outliers: Vec<f32> = (0..n_cols).map(|_| next() * 0.01).collect();
    zeros_and_outliers[..32].fill(0.0);
    zeros_and_outliers[40] = 600.0;
    zeros_and_outliers[n_cols - 1] = -900.0;

    let tiny: Vec<f32> = (0..n_cols).map(|_| next() * 1e-38).collect();
    let negative_max: Vec<f32> = (0..n_cols).map(|i| if i == 3 { -5.0 } else { next() }).collect();

    vec![random, ties, zeros_and_outliers, tiny, negative_max]
}

fn blocks_of<T: bytemuck::Pod>(bytes: &[u8]) -> Vec<T> {
    let mut out = vec![T::zeroed(); bytes.len() / std::mem::size_of::<T>()];
    bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(bytes);
    out
}

#[test]
fn q8_0_matches_x86_reference() {
    let n_cols = 512;
    for (row_index, row) in test_rows(n_cols).iter().enumerate() {
        let acts = kquant::quantize_activations(GgmlType::Q8_0, row, 1, n_cols).unwrap();
        let blocks: Vec<BlockQ8_0> = blocks_of(acts.as_bytes());

        for (i, block) in blocks.iter().enumerate() {
            let (d, codes) = reference_q8_block(&row[32 * i..32 * i + 32]);
            assert_eq!(block.d, f16::from_f32(d).to_bits(), "row {row_index} block {i} d");
            assert_eq!(block.qs, codes, "row {row_index} block {i} codes");
        }
    }
}

#[test]
fn q8_1_matches_x86_reference() {
    let n_cols = 512;
    for (row_index, row) in test_rows(n_cols).iter().enumerate() {
        let acts = kquant::quantize_activations(GgmlType::Q8_1, row, 1, n_cols).unwrap();
        let blocks: Vec<BlockQ8_1> = blocks_of(acts.as_bytes());

        for (i, block) in blocks.iter().enumerate() {
            let (d, codes) = reference_q8_block(&row[32 * i..32 * i + 32]);
            let sum: i32 = codes.iter().map(|&q| i32::from(q)).sum();
            assert_eq!(block.d, f16::from_f32(d).to_bits(), "row {row_index} block {i} d");
            assert_eq!(block.qs, codes, "row {row_index} block {i} codes");
            assert_eq!(block.s, f16::from_f32(d * sum as f32).to_bits(), "row {row_index} block {i} s");
        }
    }
}

#[test]
fn q8_k_matches_ggml_reference() {
    let n_cols = 512;
    for (row_index, row) in test_rows(n_cols).iter().enumerate() {
        let acts = kquant::quantize_activations(GgmlType::Q8_K, row, 1, n_cols).unwrap();
        let blocks: Vec<BlockQ8K> = blocks_of(acts.as_bytes());

        for (i, block) in blocks.iter().enumerate() {
            let expected = reference_q8_k_block(&row[256 * i..256 * i + 256]);
            assert_eq!(block.d.to_bits(), expected.d.to_bits(), "row {row_index} block {i} d");
            assert_eq!(block.qs, expected.qs, "row {row_index} block {i} codes");
            assert_eq!(block.bsums, expected.bsums, "row {row_index} block {i} bsums");
        }
    }
}

#[test]
fn q8_0_differs_from_reference_quantizer_on_ties() {
    // The weight quantizer (`quantize_row_q8_0_ref`) rounds half away from zero; the x86
    // activation path rounds half to even. With amax 127 the value 2.5 is an exact tie.
    let mut row = vec![0.0f32; 32];
    row[0] = 127.0;
    row[1] = 2.5;

    let acts = kquant::quantize_activations(GgmlType::Q8_0, &row, 1, 32).unwrap();
    let weights = kquant::quantize(GgmlType::Q8_0, &row, 32, None).unwrap();

    let act_block: Vec<BlockQ8_0> = blocks_of(acts.as_bytes());
    let weight_block: Vec<BlockQ8_0> = blocks_of(&weights);
    assert_eq!(act_block[0].qs[1], 2);
    assert_eq!(weight_block[0].qs[1], 3);
}

#[test]
fn f16_and_bf16_round_to_nearest_even() {
    // 1 + 2^-11 is halfway between two f16 values; 1 + 2^-8 between two bf16 values.
    let row = [1.0 + f32::powi(2.0, -11), 1.0 + f32::powi(2.0, -8)];

    let f16_acts = kquant::quantize_activations(GgmlType::F16, &row, 1, 2).unwrap();
    let bf16_acts = kquant::quantize_activations(GgmlType::BF16, &row, 1, 2).unwrap();

    let f16_values: Vec<u16> = blocks_of(f16_acts.as_bytes());
    let bf16_values: Vec<u16> = blocks_of(bf16_acts.as_bytes());
    assert_eq!(f16_values[0], 0x3C00, "f16 tie rounds down to even 1.0");
    assert_eq!(bf16_values[1], 0x3F80, "bf16 tie rounds down to even 1.0");
}
