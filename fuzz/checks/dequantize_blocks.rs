//! The checks of the `dequantize_blocks` fuzz target, shared with the corpus replay test in
//! `crates/kquant/tests/fuzz_corpus_dequantize.rs`.
//!
//! The first byte picks a ggml type, the second the row length, and the rest is block
//! data. Dequantization, `validate_row_data` and the vec-dot matmul must return `Ok` or an
//! error and never panic. Accepted data must dequantize to values without NaN, bit for bit
//! the same through `dequantize` and `dequantize_into`.

use kquant::{GgmlType, QuantError, WeightMatrix};

/// The types `kquant::dequantize` accepts.
const TYPES: [GgmlType; 17] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q8_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
];

/// Flag in the second byte: take its low 6 bits as `n_per_row` itself (0 and lengths that
/// are not a multiple of the block size included) rather than as a count of blocks.
const RAW_ROW_LENGTH: u8 = 0x80;

/// Maximum blocks per row when the row length is a count of blocks.
const MAX_BLOCKS_PER_ROW: usize = 8;

/// Activation rows of the matmul check.
const N_BATCH: usize = 2;

/// Runs every check on one input; panics on any broken property.
pub fn check(input: &[u8]) {
    let [type_byte, length_byte, data @ ..] = input else {
        return;
    };
    let ggml_type = TYPES[usize::from(*type_byte) % TYPES.len()];
    let n_per_row = if length_byte & RAW_ROW_LENGTH != 0 {
        usize::from(length_byte & 0x3f)
    } else {
        ggml_type.block_size() * (1 + usize::from(*length_byte) % MAX_BLOCKS_PER_ROW)
    };

    // The data as given, which may end inside a row.
    let _ = check_dequantize(ggml_type, data, n_per_row);

    // The data cut to whole rows, so the accepting paths run often.
    let Some(row_bytes) = ggml_type.row_size(n_per_row as u64).filter(|&b| b > 0) else {
        return;
    };
    let whole = &data[..data.len() - data.len() % row_bytes];
    let dequantized = check_dequantize(ggml_type, whole, n_per_row);
    check_validate(ggml_type, whole, &dequantized);
    check_matmul(ggml_type, whole, n_per_row, &dequantized);
}

/// Dequantizes `data` both ways, checks the results agree and hold no NaN, and returns
/// the result of `dequantize`.
fn check_dequantize(
    ggml_type: GgmlType,
    data: &[u8],
    n_per_row: usize,
) -> Result<Vec<f32>, QuantError> {
    let result = kquant::dequantize(ggml_type, data, n_per_row);

    let len = result.as_ref().map_or(0, Vec::len);
    let mut into = vec![0.0f32; len];
    let into_result = kquant::dequantize_into(ggml_type, data, n_per_row, &mut into);

    match &result {
        Ok(values) => {
            assert_eq!(values.len() % n_per_row, 0, "{ggml_type}: partial row");
            assert_eq!(
                values.len() / n_per_row * ggml_type.row_size(n_per_row as u64).unwrap(),
                data.len(),
                "{ggml_type}: output length does not match the data"
            );
            if let Some(i) = values.iter().position(|v| v.is_nan()) {
                panic!("{ggml_type} n_per_row {n_per_row}: NaN at {i} from accepted data");
            }
            into_result.expect("dequantize_into accepts what dequantize accepts");
            let same = values
                .iter()
                .zip(&into)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{ggml_type}: dequantize and dequantize_into differ");
        }
        Err(error) => {
            assert!(
                into_result.is_err(),
                "{ggml_type}: only dequantize_into accepted"
            );
            assert!(!error.to_string().is_empty());
        }
    }
    result
}

/// Checks that `validate_row_data` accepts whole rows exactly when dequantization does.
fn check_validate(ggml_type: GgmlType, data: &[u8], dequantized: &Result<Vec<f32>, QuantError>) {
    let validated = kquant::validate_row_data(ggml_type, data);
    if dequantized.is_ok() {
        validated.expect("validate_row_data accepts what dequantize accepts");
    } else if let Err(QuantError::NonFiniteData { .. }) = dequantized {
        assert!(
            matches!(validated, Err(QuantError::NonFiniteData { .. })),
            "{ggml_type}: dequantize found a non-finite scale that validate_row_data missed"
        );
    }
}

/// Multiplies the data, as a weight matrix, by a small activation, which must succeed for
/// whole rows of any type with a dot product. Data that dequantized cleanly must give no
/// NaN, except F32 and BF16 weights: they reach f32's range, so Inf - Inf can occur.
fn check_matmul(
    ggml_type: GgmlType,
    data: &[u8],
    n_per_row: usize,
    dequantized: &Result<Vec<f32>, QuantError>,
) {
    let Some(row_bytes) = ggml_type.row_size(n_per_row as u64) else {
        return;
    };
    let n_rows = data.len() / row_bytes;
    let weight = match WeightMatrix::new(ggml_type, data, n_per_row, n_rows) {
        Ok(weight) => weight,
        Err(_) => {
            assert!(
                kquant::vec_dot_type(ggml_type).is_none()
                    || n_per_row % ggml_type.block_size() != 0
                    || n_per_row == 0,
                "{ggml_type}: WeightMatrix rejected whole rows of a type with a dot product"
            );
            return;
        }
    };

    // Small values of both signs, so the activation quantizers see a real range.
    let x: Vec<f32> = (0..N_BATCH * n_per_row)
        .map(|i| ((i % 7) as f32 - 3.0) * 0.25)
        .collect();
    let mut out = vec![0.0f32; N_BATCH * n_rows];
    kquant::matmul(&weight, &x, N_BATCH, &mut out).expect("matmul of a valid matrix");

    let may_overflow = matches!(ggml_type, GgmlType::F32 | GgmlType::BF16);
    if dequantized.is_ok() && !may_overflow {
        if let Some(i) = out.iter().position(|v| v.is_nan()) {
            panic!("{ggml_type} n_per_row {n_per_row}: matmul gave NaN at {i} for valid data");
        }
    }
}
