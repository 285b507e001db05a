//! Reproduces ggml's golden quantization vectors: bytes and dequantized floats bit for bit.
//!
//! The vectors live in `tests/data/golden-quant` (see its README). Set `KQUANT_GOLDEN_DIR`
//! to run the same check on another folder with that layout (`manifest.json`, inputs,
//! importance vectors and outputs). Types this crate does not implement are listed as
//! "not implemented" and do not fail the test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kquant::{dequantize, is_supported, quantize, GgmlType};
use serde_json::Value;

/// Environment variable naming a golden folder to use instead of the copy in this crate.
const GOLDEN_DIR_ENV: &str = "KQUANT_GOLDEN_DIR";

fn golden_dir() -> PathBuf {
    match std::env::var_os(GOLDEN_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-quant"),
    }
}

fn read_bytes(dir: &Path, relative: &str) -> Vec<u8> {
    let path = dir.join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_f32(dir: &Path, relative: &str) -> Vec<f32> {
    let bytes = read_bytes(dir, relative);
    assert_eq!(
        bytes.len() % 4,
        0,
        "{relative}: {} bytes is not a whole number of f32",
        bytes.len()
    );
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn field<'a>(entry: &'a Value, name: &str) -> &'a Value {
    entry
        .get(name)
        .unwrap_or_else(|| panic!("manifest entry without '{name}': {entry}"))
}

fn string_field<'a>(entry: &'a Value, name: &str) -> &'a str {
    field(entry, name)
        .as_str()
        .unwrap_or_else(|| panic!("manifest field '{name}' is not a string: {entry}"))
}

fn usize_field(entry: &Value, name: &str) -> usize {
    let value = field(entry, name)
        .as_u64()
        .unwrap_or_else(|| panic!("manifest field '{name}' is not an integer: {entry}"));
    usize::try_from(value).expect("manifest size fits usize")
}

/// Checks one supported entry and returns a description of each mismatch.
fn check_entry(dir: &Path, entry: &Value, ggml_type: GgmlType) -> Vec<String> {
    let rows = usize_field(entry, "rows");
    let cols = usize_field(entry, "cols");
    let input = read_f32(dir, string_field(entry, "input"));
    assert_eq!(input.len(), rows * cols, "input size of {entry}");
    let imatrix = field(entry, "imatrix")
        .as_str()
        .map(|path| read_f32(dir, path));
    let expected_bytes = read_bytes(dir, string_field(entry, "quantized"));
    let expected_floats = read_f32(dir, string_field(entry, "dequantized"));

    let mut mismatches = Vec::new();

    match quantize(ggml_type, &input, cols, imatrix.as_deref()) {
        Ok(bytes) if bytes == expected_bytes => {}
        Ok(bytes) if bytes.len() != expected_bytes.len() => {
            mismatches.push(format!(
                "quantized {} bytes, ggml wrote {}",
                bytes.len(),
                expected_bytes.len()
            ));
        }
        Ok(bytes) => {
            let first = bytes
                .iter()
                .zip(&expected_bytes)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            let differing = bytes
                .iter()
                .zip(&expected_bytes)
                .filter(|(a, b)| a != b)
                .count();
            let block = first / ggml_type.type_size();
            mismatches.push(format!(
                "{differing} bytes differ, first at byte {first} (block {block}): {:#04x} vs ggml {:#04x}",
                bytes[first], expected_bytes[first]
            ));
        }
        Err(e) => mismatches.push(format!("quantize failed: {e}")),
    }

    match dequantize(ggml_type, &expected_bytes, cols) {
        Ok(floats) => {
            let differing: Vec<usize> = (0..floats.len().min(expected_floats.len()))
                .filter(|&i| floats[i].to_bits() != expected_floats[i].to_bits())
                .collect();
            if floats.len() != expected_floats.len() {
                mismatches.push(format!(
                    "dequantized {} floats, ggml {}",
                    floats.len(),
                    expected_floats.len()
                ));
            } else if let Some(&first) = differing.first() {
                mismatches.push(format!(
                    "{} dequantized floats differ, first at {first}: {} vs ggml {}",
                    differing.len(),
                    floats[first],
                    expected_floats[first]
                ));
            }
        }
        Err(e) => mismatches.push(format!("dequantize failed: {e}")),
    }

    mismatches
}

#[derive(Default)]
struct TypeTally {
    bit_exact: usize,
    total: usize,
    supported: bool,
}

#[test]
fn golden_vectors_bit_exact() {
    let dir = golden_dir();
    let manifest: Value =
        serde_json::from_slice(&read_bytes(&dir, "manifest.json")).expect("manifest.json is JSON");
    let entries = field(&manifest, "entries")
        .as_array()
        .expect("'entries' is an array");
    assert!(!entries.is_empty(), "{} lists no entries", dir.display());

    let mut tallies: BTreeMap<String, TypeTally> = BTreeMap::new();
    let mut failures = Vec::new();
    for entry in entries {
        let type_name = string_field(entry, "type");
        let ggml_type: Option<GgmlType> = type_name.parse().ok();
        let supported = ggml_type.is_some_and(is_supported);
        let tally = tallies.entry(type_name.to_string()).or_default();
        tally.total += 1;
        tally.supported = supported;
        let Some(ggml_type) = ggml_type.filter(|_| supported) else {
            continue;
        };

        let mismatches = check_entry(&dir, entry, ggml_type);
        if mismatches.is_empty() {
            tally.bit_exact += 1;
        } else {
            failures.push(format!(
                "{}: {}",
                string_field(entry, "quantized"),
                mismatches.join("; ")
            ));
        }
    }

    println!("golden vectors from {}", dir.display());
    let mut checked = 0;
    let mut bit_exact = 0;
    for (type_name, tally) in &tallies {
        if tally.supported {
            println!("{type_name}: {}/{} bit-exact", tally.bit_exact, tally.total);
            checked += tally.total;
            bit_exact += tally.bit_exact;
        } else {
            println!(
                "{type_name}: not implemented ({} entries skipped)",
                tally.total
            );
        }
    }
    println!(
        "total: {bit_exact}/{checked} bit-exact over supported types, {} entries in the manifest",
        entries.len()
    );
    for failure in &failures {
        println!("MISMATCH {failure}");
    }

    assert!(
        checked > 0,
        "no entry of a supported type in {}",
        dir.display()
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} golden entries differ from ggml",
        failures.len()
    );
}
