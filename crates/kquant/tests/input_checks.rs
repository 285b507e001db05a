//! Hostile and malformed inputs through the public API: each gets a typed error or a
//! finite, documented result, never a panic or a NaN.

use kquant::{
    dequantize, dequantize_into, is_supported, quantize, quantize_into, validate_row_data,
    GgmlType, QuantError,
};

/// Every type that `quantize` supports.
const WEIGHT_TYPES: [GgmlType; 15] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
];

/// Deterministic values uniform in `-1..1` (a 32-bit LCG, so no test depends on a seed file).
fn uniform(n: usize, seed: u32) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

#[test]
fn weight_types_all_supported() {
    for ggml_type in WEIGHT_TYPES {
        assert!(is_supported(ggml_type), "{ggml_type}");
    }
    assert!(!is_supported(GgmlType::IQ2_XXS));
    assert!(
        !is_supported(GgmlType::Q8_K),
        "Q8_K is an activation format: dequantize only"
    );
}

#[test]
fn zero_and_denormal_blocks_stay_finite() {
    let n = 256;
    let mut one_denormal = vec![0.0f32; n];
    one_denormal[n - 1] = 1e-39;
    let rows: [(&str, Vec<f32>); 4] = [
        ("all zero", vec![0.0; n]),
        ("all 1e-38", vec![1e-38; n]),
        ("255 zeros and one 1e-39", one_denormal),
        (
            "alternating 3e-38",
            (0..n)
                .map(|i| if i % 2 == 0 { 3e-38 } else { -3e-38 })
                .collect(),
        ),
    ];

    for ggml_type in WEIGHT_TYPES {
        for (name, row) in &rows {
            let bytes = quantize(ggml_type, row, n, None)
                .unwrap_or_else(|e| panic!("{ggml_type} {name}: {e}"));
            assert_eq!(
                validate_row_data(ggml_type, &bytes),
                Ok(()),
                "{ggml_type} {name}"
            );

            let restored = dequantize(ggml_type, &bytes, n)
                .unwrap_or_else(|e| panic!("{ggml_type} {name}: {e}"));
            let amax = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (x, y) in row.iter().zip(&restored) {
                assert!(y.is_finite(), "{ggml_type} {name}: {y}");
                assert!(
                    (x - y).abs() <= amax,
                    "{ggml_type} {name}: {x} restored as {y}"
                );
            }
        }
    }
}

#[test]
fn q6_k_zero_block_is_zero_bytes() {
    let bytes = quantize(GgmlType::Q6_K, &[0.0; 256], 256, None).expect("zero row");
    assert_eq!(bytes, vec![0u8; 210]);
    assert_eq!(
        dequantize(GgmlType::Q6_K, &bytes, 256).expect("zero block"),
        vec![0.0; 256]
    );
}

#[test]
fn q4_0_scale_overflow_rejected() {
    // d = 1e6 / -8 = -125000, beyond f16's 65504.
    let mut block = uniform(32, 11);
    block[0] = 1.0e6;

    let result = quantize(GgmlType::Q4_0, &block, 32, None);
    assert_eq!(
        result,
        Err(QuantError::ScaleOverflow {
            ggml_type: GgmlType::Q4_0,
            row: 0,
            block: 0,
            amax: 1.0e6
        })
    );

    let mut dst = vec![0xAAu8; 18];
    let result = quantize_into(GgmlType::Q4_0, &block, 32, None, &mut dst);
    assert!(matches!(result, Err(QuantError::ScaleOverflow { .. })));
    assert_eq!(dst, vec![0u8; 18], "dst is zeroed after an overflow");
}

#[test]
fn overflow_names_row_and_block() {
    let mut src = uniform(3 * 64, 5);
    src[64 + 40] = -2.0e6;
    let result = quantize(GgmlType::Q5_0, &src, 64, None);
    assert_eq!(
        result,
        Err(QuantError::ScaleOverflow {
            ggml_type: GgmlType::Q5_0,
            row: 1,
            block: 1,
            amax: 2.0e6
        })
    );
}

#[test]
fn weights_beyond_f16_range_keep_finite_scales() {
    let mut row = uniform(256, 7);
    row[0] = 7.0e4;

    for ggml_type in [
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::BF16,
    ] {
        let bytes =
            quantize(ggml_type, &row, 256, None).unwrap_or_else(|e| panic!("{ggml_type}: {e}"));
        assert_eq!(validate_row_data(ggml_type, &bytes), Ok(()), "{ggml_type}");

        let restored = dequantize(ggml_type, &bytes, 256).expect("valid data");
        assert!(restored.iter().all(|v| v.is_finite()), "{ggml_type}");
        assert!(
            (restored[0] - 7.0e4).abs() < 7.0e4 * 0.05,
            "{ggml_type}: 7e4 restored as {}",
            restored[0]
        );
    }
}

#[test]
fn f16_value_overflow_rejected() {
    let mut row = uniform(64, 3);
    row[10] = 7.0e4;
    let result = quantize(GgmlType::F16, &row, 64, None);
    assert_eq!(
        result,
        Err(QuantError::ScaleOverflow {
            ggml_type: GgmlType::F16,
            row: 0,
            block: 10,
            amax: 7.0e4
        })
    );

    // 65520 is halfway between f16's largest finite value 65504 and 65536, and ties to even round up.
    assert!(quantize(GgmlType::F16, &[65519.0; 32], 32, None).is_ok());
    assert!(matches!(
        quantize(GgmlType::F16, &[-65520.0; 32], 32, None),
        Err(QuantError::ScaleOverflow { block: 0, .. })
    ));
}

#[test]
fn q4_0_reference_rounding_bytes() {
    let mut block = [0.0f32; 32];
    block[0] = 1.0;
    block[1] = 0.5;
    let mut expected = vec![0x00, 0xb0, 0x80, 0x84];
    expected.extend([0x88; 14]);
    assert_eq!(quantize(GgmlType::Q4_0, &block, 32, None), Ok(expected));

    // +1.0 lands on code 16 and is clipped to 15, so it comes back as 0.875.
    block[0] = -1.0;
    block[1] = 1.0;
    let mut expected = vec![0x00, 0x30, 0x80, 0x8f];
    expected.extend([0x88; 14]);
    let bytes = quantize(GgmlType::Q4_0, &block, 32, None).expect("finite block");
    assert_eq!(bytes, expected);
    let restored = dequantize(GgmlType::Q4_0, &bytes, 32).expect("valid block");
    assert_eq!(restored[1], 0.875);
}

#[test]
fn non_finite_weights_rejected() {
    for (bad, name) in [
        (f32::NAN, "NaN"),
        (f32::INFINITY, "+Inf"),
        (f32::NEG_INFINITY, "-Inf"),
    ] {
        for ggml_type in WEIGHT_TYPES {
            let n_per_row = 32.max(ggml_type.block_size());
            let mut src = uniform(2 * n_per_row, 1);
            src[n_per_row + 5] = bad;
            match quantize(ggml_type, &src, n_per_row, None) {
                Err(QuantError::NonFinite { row, column, value }) => {
                    assert_eq!((row, column), (1, 5), "{ggml_type} {name}");
                    assert_eq!(value.to_bits(), bad.to_bits(), "{ggml_type} {name}");
                }
                other => panic!("{ggml_type} {name}: expected NonFinite, got {other:?}"),
            }
        }
    }
}

#[test]
fn f16_data_with_infinity_rejected() {
    let mut data: Vec<u8> = [0x3C00u16, 0x4000, 0x7C00, 0x3C00]
        .iter()
        .flat_map(|h| h.to_le_bytes())
        .collect();
    let expected = QuantError::NonFiniteData {
        ggml_type: GgmlType::F16,
        block: 2,
        value: f32::INFINITY,
    };
    assert_eq!(
        validate_row_data(GgmlType::F16, &data),
        Err(expected.clone())
    );
    assert_eq!(dequantize(GgmlType::F16, &data, 4), Err(expected));

    data[5] = 0x7E; // element 2 becomes NaN (0x7E00)
    assert!(matches!(
        dequantize(GgmlType::F16, &data, 2),
        Err(QuantError::NonFiniteData { block: 2, .. })
    ));
}

#[test]
fn q8_0_nan_scale_rejected() {
    let mut data = quantize(GgmlType::Q8_0, &uniform(64, 9), 64, None).expect("finite input");
    data[0..2].copy_from_slice(&0x7E00u16.to_le_bytes());

    let result = dequantize(GgmlType::Q8_0, &data, 64);
    assert!(
        matches!(result, Err(QuantError::NonFiniteData { ggml_type: GgmlType::Q8_0, block: 0, value }) if value.is_nan())
    );
    assert!(validate_row_data(GgmlType::Q8_0, &data).is_err());
}

#[test]
fn second_scale_checked() {
    // Q4_1's min and Q4_K's dmin are validated as well as d.
    let mut data = quantize(GgmlType::Q4_1, &uniform(64, 2), 64, None).expect("finite input");
    data[20 + 2..20 + 4].copy_from_slice(&0xFC00u16.to_le_bytes());
    assert_eq!(
        validate_row_data(GgmlType::Q4_1, &data),
        Err(QuantError::NonFiniteData {
            ggml_type: GgmlType::Q4_1,
            block: 1,
            value: f32::NEG_INFINITY
        })
    );

    let mut data = quantize(GgmlType::Q2_K, &uniform(256, 2), 256, None).expect("finite input");
    data[82..84].copy_from_slice(&0x7C01u16.to_le_bytes());
    assert!(matches!(
        validate_row_data(GgmlType::Q2_K, &data),
        Err(QuantError::NonFiniteData { block: 0, .. })
    ));
}

#[test]
fn row_length_not_multiple_rejected() {
    let src = vec![0.5f32; 1000];
    let error = quantize(GgmlType::Q4_K, &src, 1000, None).unwrap_err();
    assert_eq!(
        error,
        QuantError::RowLength {
            n_per_row: 1000,
            ggml_type: GgmlType::Q4_K,
            block_size: 256
        }
    );
    assert!(
        error
            .to_string()
            .starts_with("row length (ne0) 1000 is not a multiple of Q4_K's block size 256"),
        "{error}"
    );

    assert_eq!(
        quantize(GgmlType::Q4_0, &src, 0, None),
        Err(QuantError::EmptyRow)
    );
    assert_eq!(
        quantize(GgmlType::F32, &[], usize::MAX, None),
        Err(QuantError::RowTooLong {
            n_per_row: usize::MAX,
            ggml_type: GgmlType::F32
        })
    );
    assert_eq!(
        dequantize(GgmlType::F16, &[0u8; 4], usize::MAX),
        Err(QuantError::RowTooLong {
            n_per_row: usize::MAX,
            ggml_type: GgmlType::F16
        })
    );
    assert_eq!(quantize(GgmlType::Q8_0, &[], 64, None), Ok(Vec::new()));
    assert_eq!(dequantize(GgmlType::Q8_0, &[], 64), Ok(Vec::new()));
    assert_eq!(
        quantize(GgmlType::Q4_0, &src[..96], 64, None),
        Err(QuantError::SourceLength {
            len: 96,
            n_per_row: 64
        })
    );
}

#[test]
fn imatrix_checked() {
    let src = uniform(128, 4);

    let short = vec![1.0f32; 63];
    assert_eq!(
        quantize(GgmlType::Q4_0, &src, 64, Some(&short)),
        Err(QuantError::ImatrixLength {
            expected: 64,
            found: 63
        })
    );

    let mut bad = vec![1.0f32; 64];
    bad[17] = f32::NAN;
    assert!(matches!(
        quantize(GgmlType::IQ4_XS, &uniform(256, 4), 256, Some(&[1.0; 255])),
        Err(QuantError::ImatrixLength {
            expected: 256,
            found: 255
        })
    ));
    assert!(matches!(
        quantize(GgmlType::Q4_1, &src, 64, Some(&bad)),
        Err(QuantError::ImatrixNonFinite { column: 17, .. })
    ));

    bad[17] = -0.5;
    assert_eq!(
        quantize(GgmlType::Q5_1, &src, 64, Some(&bad)),
        Err(QuantError::ImatrixNegative {
            column: 17,
            value: -0.5
        })
    );
}

#[test]
fn imatrix_ignored_by_q8_0() {
    let src = uniform(128, 8);
    let importance: Vec<f32> = (0..64).map(|i| i as f32).collect();
    assert_eq!(
        quantize(GgmlType::Q8_0, &src, 64, Some(&importance)),
        quantize(GgmlType::Q8_0, &src, 64, None)
    );
}

#[test]
fn unsupported_type_rejected() {
    let src = vec![0.0f32; 256];
    assert_eq!(
        quantize(GgmlType::IQ2_XXS, &src, 256, None),
        Err(QuantError::UnsupportedType(GgmlType::IQ2_XXS))
    );
    assert_eq!(
        dequantize(GgmlType::TQ1_0, &[0u8; 54], 256),
        Err(QuantError::UnsupportedType(GgmlType::TQ1_0))
    );
    assert_eq!(
        validate_row_data(GgmlType::IQ3_S, &[0u8; 110]),
        Err(QuantError::UnsupportedType(GgmlType::IQ3_S))
    );
}

#[test]
fn data_and_output_lengths_checked() {
    let bytes = quantize(GgmlType::Q4_0, &uniform(128, 6), 64, None).expect("finite input");
    assert_eq!(
        dequantize(GgmlType::Q4_0, &bytes[..35], 64),
        Err(QuantError::DataLength {
            expected: 36,
            found: 35
        })
    );

    let mut short = vec![0.0f32; 127];
    assert_eq!(
        dequantize_into(GgmlType::Q4_0, &bytes, 64, &mut short),
        Err(QuantError::OutputLength {
            expected: 128,
            found: 127
        })
    );

    let mut dst = vec![0u8; 71];
    assert_eq!(
        quantize_into(GgmlType::Q4_0, &uniform(128, 6), 64, None, &mut dst),
        Err(QuantError::OutputLength {
            expected: 72,
            found: 71
        })
    );
}

#[test]
fn unaligned_buffers_match_aligned() {
    // One extra leading byte misaligns every block type with 2- or 4-byte alignment.
    for ggml_type in WEIGHT_TYPES {
        let n_per_row = 256;
        let src = uniform(2 * n_per_row, 12);
        let bytes = quantize(ggml_type, &src, n_per_row, None).expect("finite input");

        let mut shifted = vec![0u8; bytes.len() + 1];
        quantize_into(ggml_type, &src, n_per_row, None, &mut shifted[1..]).expect("unaligned dst");
        assert_eq!(&shifted[1..], &bytes[..], "{ggml_type} quantize_into");

        let aligned = dequantize(ggml_type, &bytes, n_per_row).expect("valid data");
        let unaligned = dequantize(ggml_type, &shifted[1..], n_per_row).expect("valid data");
        assert_eq!(aligned, unaligned, "{ggml_type} dequantize");
    }
}

#[test]
fn activation_formats_dequantize() {
    // Q8_1: d = 0.5 (0x3800), s unused, codes 0..32.
    let mut block = vec![0x00, 0x38, 0x00, 0x00];
    block.extend(0..32u8);
    let values = dequantize(GgmlType::Q8_1, &block, 32).expect("valid Q8_1");
    assert_eq!(values, (0..32).map(|q| q as f32 * 0.5).collect::<Vec<_>>());

    // Q8_K: f32 d = 0.25, codes -128..128, bsums ignored.
    let mut block = 0.25f32.to_le_bytes().to_vec();
    block.extend((0..256).map(|i| (i as i32 - 128) as i8 as u8));
    block.extend([0u8; 32]);
    let values = dequantize(GgmlType::Q8_K, &block, 256).expect("valid Q8_K");
    assert_eq!(
        values,
        (0..256)
            .map(|i| (i as f32 - 128.0) * 0.25)
            .collect::<Vec<_>>()
    );

    // Q8_K blocks are 4-byte aligned; a slice at an odd offset must dequantize the same.
    let mut shifted = vec![0u8; block.len() + 1];
    shifted[1..].copy_from_slice(&block);
    assert_eq!(dequantize(GgmlType::Q8_K, &shifted[1..], 256), Ok(values));
}
