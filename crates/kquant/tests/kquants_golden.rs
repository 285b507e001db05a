//! Checks Q2_K..Q6_K against ggml's golden vectors through the `QuantBlock` impls directly.
//!
//! Each manifest entry gives an input matrix, an optional imatrix, the bytes that ggml's
//! `ggml_quantize_chunk` wrote and the floats its `to_float` returned. Every entry of the
//! five k-quant types must match byte for byte and bit for bit.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use kquant::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K};
use kquant::QuantBlock;
use serde_json::Value;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-quant")
}

fn read_f32s(path: &Path) -> Vec<f32> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("failed to read {}: {e}", path.display()));
    assert_eq!(
        bytes.len() % 4,
        0,
        "{} is not a whole number of f32",
        path.display()
    );
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// One (type, input, imatrix) case of the manifest.
struct Case {
    ggml_type: String,
    rows: usize,
    cols: usize,
    input: PathBuf,
    imatrix: Option<PathBuf>,
    quantized: PathBuf,
    dequantized: PathBuf,
}

impl Case {
    fn name(&self) -> String {
        self.quantized
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }
}

fn load_cases(types: &[&str]) -> Vec<Case> {
    let dir = data_dir();
    let text = fs::read_to_string(dir.join("manifest.json")).expect("golden manifest missing");
    let manifest: Value = serde_json::from_str(&text).expect("golden manifest is not JSON");
    let entries = manifest["entries"]
        .as_array()
        .expect("manifest has no entries array");
    entries
        .iter()
        .filter(|entry| types.contains(&entry["type"].as_str().unwrap_or("")))
        .map(|entry| {
            let path = |key: &str| {
                dir.join(
                    entry[key]
                        .as_str()
                        .unwrap_or_else(|| panic!("entry without {key}")),
                )
            };
            Case {
                ggml_type: entry["type"].as_str().unwrap().to_owned(),
                rows: entry["rows"].as_u64().unwrap() as usize,
                cols: entry["cols"].as_u64().unwrap() as usize,
                input: path("input"),
                imatrix: entry["imatrix"].as_str().map(|p| dir.join(p)),
                quantized: path("quantized"),
                dequantized: path("dequantized"),
            }
        })
        .collect()
}

/// Quantizes and dequantizes one case; returns a description of the first mismatch.
fn check_case<B: QuantBlock>(case: &Case) -> Result<(), String> {
    let x = read_f32s(&case.input);
    assert_eq!(
        x.len(),
        case.rows * case.cols,
        "{}: input size",
        case.name()
    );
    let imatrix = case.imatrix.as_deref().map(read_f32s);
    if let Some(imatrix) = &imatrix {
        assert_eq!(imatrix.len(), case.cols, "{}: imatrix size", case.name());
    }

    let blocks_per_row = case.cols / B::BLOCK_SIZE;
    let mut blocks = vec![B::zeroed(); case.rows * blocks_per_row];
    for (row, out) in x
        .chunks_exact(case.cols)
        .zip(blocks.chunks_exact_mut(blocks_per_row))
    {
        B::quantize_row(row, imatrix.as_deref(), out);
    }

    let expected_bytes = fs::read(&case.quantized).unwrap();
    let bytes: &[u8] = bytemuck::cast_slice(&blocks);
    if bytes != expected_bytes.as_slice() {
        let block_size = std::mem::size_of::<B>();
        let first = bytes
            .iter()
            .zip(&expected_bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return Err(format!(
            "{}: quantized bytes differ (lengths {} vs {}), first at byte {first} (block {}, offset {})",
            case.name(),
            bytes.len(),
            expected_bytes.len(),
            first / block_size,
            first % block_size,
        ));
    }

    let expected_floats = read_f32s(&case.dequantized);
    let mut floats = vec![f32::NAN; x.len()];
    for (row_blocks, y) in blocks
        .chunks_exact(blocks_per_row)
        .zip(floats.chunks_exact_mut(case.cols))
    {
        B::dequantize_row(row_blocks, y);
    }
    let mismatch = floats
        .iter()
        .zip(&expected_floats)
        .position(|(a, b)| a.to_bits() != b.to_bits());
    if floats.len() != expected_floats.len() {
        return Err(format!(
            "{}: {} dequantized floats, expected {}",
            case.name(),
            floats.len(),
            expected_floats.len()
        ));
    }
    if let Some(i) = mismatch {
        return Err(format!(
            "{}: dequantized float {i} is {:e}, expected {:e}",
            case.name(),
            floats[i],
            expected_floats[i]
        ));
    }
    Ok(())
}

#[test]
fn kquants_match_ggml_golden_vectors() {
    const TYPES: [&str; 5] = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"];
    let cases = load_cases(&TYPES);

    let mut totals: BTreeMap<&str, (usize, usize)> = TYPES.iter().map(|&t| (t, (0, 0))).collect();
    let mut failures = Vec::new();
    for case in &cases {
        let result = match case.ggml_type.as_str() {
            "Q2_K" => check_case::<BlockQ2K>(case),
            "Q3_K" => check_case::<BlockQ3K>(case),
            "Q4_K" => check_case::<BlockQ4K>(case),
            "Q5_K" => check_case::<BlockQ5K>(case),
            "Q6_K" => check_case::<BlockQ6K>(case),
            other => unreachable!("filtered type {other}"),
        };
        let total = totals.get_mut(case.ggml_type.as_str()).unwrap();
        total.1 += 1;
        match result {
            Ok(()) => total.0 += 1,
            Err(message) => failures.push(message),
        }
    }

    for (ggml_type, (passed, count)) in &totals {
        println!("{ggml_type}: {passed}/{count} bit-exact");
    }
    for ggml_type in TYPES {
        let (_, count) = totals[ggml_type];
        assert!(count > 0, "no golden entries for {ggml_type}");
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
