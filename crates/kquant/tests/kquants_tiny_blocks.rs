//! All-zero and near-`f32::MIN_POSITIVE` super-blocks through every k-quant and Q8_K.
//!
//! Values this small make the inverse scales overflow to infinity inside ggml's solvers.
//! ggml still writes finite (zero) scales for them, and so must this crate: no NaN or
//! infinite f16 scale, no NaN output, zeros decode to zeros, and every decoded value lies
//! within max |x| of its input.

use bytemuck::Zeroable;
use half::f16;
use kquant::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, QK_K};
use kquant::QuantBlock;

/// Returns the hostile super-blocks with their names.
fn tiny_blocks() -> Vec<(&'static str, Vec<f32>)> {
    let mut one_denormal = vec![0.0f32; QK_K];
    one_denormal[17] = 1e-39;
    vec![
        ("all zero", vec![0.0; QK_K]),
        ("all 1e-38", vec![1e-38; QK_K]),
        ("255 zeros and one 1e-39", one_denormal),
        (
            "alternating +-3e-38",
            (0..QK_K)
                .map(|e| if e % 2 == 0 { 3e-38 } else { -3e-38 })
                .collect(),
        ),
    ]
}

/// Returns the importance vectors to run with: none (the `_ref` path), uniform, and uneven with zeros.
fn imatrices() -> Vec<(&'static str, Option<Vec<f32>>)> {
    let uneven = (0..QK_K)
        .map(|e| {
            if e % 8 == 0 {
                0.0
            } else {
                1.0 + (e % 13) as f32
            }
        })
        .collect();
    vec![
        ("no imatrix", None),
        ("uniform imatrix", Some(vec![1.0; QK_K])),
        ("uneven imatrix", Some(uneven)),
    ]
}

/// Quantizes each hostile block with each imatrix and checks the scales and the decoded values.
fn check_type<B: QuantBlock>(super_scales: fn(&B) -> Vec<f32>) {
    for (input_name, x) in tiny_blocks() {
        for (imatrix_name, imatrix) in imatrices() {
            let case = format!("{:?} {input_name}, {imatrix_name}", B::TYPE);
            let mut block = [B::zeroed()];
            B::quantize_row(&x, imatrix.as_deref(), &mut block);

            for scale in super_scales(&block[0]) {
                assert!(scale.is_finite(), "{case}: super-block scale {scale}");
            }

            let mut y = vec![f32::NAN; QK_K];
            B::dequantize_row(&block, &mut y);
            let max_abs = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (e, (&back, &v)) in y.iter().zip(&x).enumerate() {
                assert!(back.is_finite(), "{case}: element {e} decodes to {back}");
                assert!(
                    (back - v).abs() <= max_abs,
                    "{case}: element {e} decodes to {back}, input {v}"
                );
                if v == 0.0 && max_abs == 0.0 {
                    assert_eq!(back, 0.0, "{case}: zero element {e}");
                }
            }
        }
    }
}

fn f16_values(bits: &[u16]) -> Vec<f32> {
    bits.iter().map(|&b| f16::from_bits(b).to_f32()).collect()
}

#[test]
fn q2_k_tiny_blocks() {
    check_type::<BlockQ2K>(|b| f16_values(&[b.d, b.dmin]));
}

#[test]
fn q3_k_tiny_blocks() {
    check_type::<BlockQ3K>(|b| f16_values(&[b.d]));
}

#[test]
fn q4_k_tiny_blocks() {
    check_type::<BlockQ4K>(|b| f16_values(&[b.d, b.dmin]));
}

#[test]
fn q5_k_tiny_blocks() {
    check_type::<BlockQ5K>(|b| f16_values(&[b.d, b.dmin]));
}

#[test]
fn q6_k_tiny_blocks() {
    check_type::<BlockQ6K>(|b| f16_values(&[b.d]));
}

#[test]
fn q8_k_tiny_blocks() {
    check_type::<BlockQ8K>(|b| vec![b.d]);
}

#[test]
fn q6_k_zeroes_blocks_below_eps() {
    // Every group scale of these blocks is below ggml's GROUP_MAX_EPS (1e-15), so ggml
    // writes 210 zero bytes.
    for (input_name, x) in tiny_blocks() {
        for (imatrix_name, imatrix) in imatrices() {
            let mut block = [BlockQ6K::zeroed()];
            block[0].d = 0x3C00;
            BlockQ6K::quantize_row(&x, imatrix.as_deref(), &mut block);
            let bytes = bytemuck::bytes_of(&block[0]);
            assert!(
                bytes.iter().all(|&b| b == 0),
                "Q6_K {input_name}, {imatrix_name}: {bytes:?}"
            );
        }
    }
}
