//! Products of Q3_K, IQ4_XS and Q2_K weights with batches of 8 or more rows against ggml's
//! tiled K-quant matrix product (`ggml_compute_forward_mul_mat_tiled` of llama.cpp b11312),
//! compared bit for bit.
//!
//! The golden files in `tests/data/ggml-cpu/tiled-misc` come from
//! `scripts/ggml-oracle/tiled_misc.c`; their README describes how. Each case runs with the
//! scalar kernels and with the best SIMD kernels of this CPU.

use std::path::{Path, PathBuf};

use gguf_format::GgmlType;
use kquant::{matmul_quantized_with_isa, quantize_activations, vec_dot_type, Isa, WeightMatrix};

/// Mismatches listed in a failure message.
const SHOWN_MISMATCHES: usize = 8;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ggml-cpu/tiled-misc")
}

fn read(name: &str) -> Vec<u8> {
    let path = data_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_f32(name: &str) -> Vec<f32> {
    read(name)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// One line of `cases.txt`.
struct Case {
    ggml_type: GgmlType,
    n_cols: usize,
    n_rows: usize,
    n_batch: usize,
    weight_file: String,
    act_file: String,
    out_file: String,
}

impl Case {
    fn name(&self) -> String {
        format!(
            "{} {}x{} batch {}",
            self.ggml_type, self.n_cols, self.n_rows, self.n_batch
        )
    }
}

fn cases(ggml_type: GgmlType) -> Vec<Case> {
    let manifest = String::from_utf8(read("cases.txt")).expect("cases.txt is not UTF-8");
    let cases: Vec<Case> = manifest
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 7, "bad cases.txt line: {line}");
            let parsed_type = match fields[0] {
                "q3_k" => GgmlType::Q3_K,
                "iq4_xs" => GgmlType::IQ4_XS,
                "q2_k" => GgmlType::Q2_K,
                other => panic!("unknown type {other} in cases.txt"),
            };
            Case {
                ggml_type: parsed_type,
                n_cols: fields[1].parse().unwrap(),
                n_rows: fields[2].parse().unwrap(),
                n_batch: fields[3].parse().unwrap(),
                weight_file: fields[4].to_string(),
                act_file: fields[5].to_string(),
                out_file: fields[6].to_string(),
            }
        })
        .filter(|case| case.ggml_type == ggml_type)
        .collect();
    assert!(!cases.is_empty(), "cases.txt has no {ggml_type} case");
    cases
}

/// Returns the number of differing outputs and "index: expected vs found" for the first
/// [`SHOWN_MISMATCHES`] of them.
fn mismatches(expected: &[f32], found: &[f32]) -> (usize, String) {
    let differing: Vec<usize> = (0..expected.len())
        .filter(|&i| expected[i].to_bits() != found[i].to_bits())
        .collect();
    let shown = differing
        .iter()
        .take(SHOWN_MISMATCHES)
        .map(|&i| {
            format!(
                "  [{i}] ggml {:e} ({:#010x}) vs {:e} ({:#010x})",
                expected[i],
                expected[i].to_bits(),
                found[i],
                found[i].to_bits()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    (differing.len(), shown)
}

/// Runs every case of `ggml_type` with the scalar and the detected ISA and asserts bit
/// equality with ggml's outputs.
fn check_type(ggml_type: GgmlType) {
    let act_type = vec_dot_type(ggml_type).expect("K-quants have a vec-dot type");

    for case in cases(ggml_type) {
        let weight_bytes = read(&case.weight_file);
        let weight = WeightMatrix::new(case.ggml_type, &weight_bytes, case.n_cols, case.n_rows)
            .expect("golden weight has the size its case names");
        let x = read_f32(&case.act_file);
        let x = &x[..case.n_batch * case.n_cols];
        let acts = quantize_activations(act_type, x, case.n_batch, case.n_cols).unwrap();
        let expected = read_f32(&case.out_file);
        assert_eq!(
            expected.len(),
            case.n_batch * case.n_rows,
            "{}: output file length",
            case.name()
        );

        for isa in [Isa::Scalar, Isa::detect()] {
            let mut out = vec![0.0f32; expected.len()];
            matmul_quantized_with_isa(isa, &weight, &acts, &mut out).unwrap();

            let (n_differing, shown) = mismatches(&expected, &out);
            let n_same = expected.len() - n_differing;
            println!(
                "{} {isa:?}: {n_same}/{} outputs bit-identical",
                case.name(),
                expected.len()
            );
            assert_eq!(
                n_differing,
                0,
                "{} {isa:?}: {n_differing} outputs differ from ggml\n{shown}",
                case.name()
            );
        }
    }
}

#[test]
fn q3_k_matches_ggml_tiled() {
    check_type(GgmlType::Q3_K);
}

#[test]
fn iq4_xs_matches_ggml_tiled() {
    check_type(GgmlType::IQ4_XS);
}

#[test]
fn q2_k_matches_ggml_tiled() {
    check_type(GgmlType::Q2_K);
}
