//! Q4_K, Q5_K and Q6_K matrix products against outputs of ggml's own x86-64 kernels
//! (`ggml_vec_dot_q{4,5,6}_K_q8_K` of llama.cpp b11312), compared bit for bit.
//!
//! The golden files in `tests/data/ggml-cpu/vec-dot-k` come from
//! `scripts/ggml-oracle/vec_dot_k.c`, whose header comment gives the build command.

use std::path::{Path, PathBuf};

use gguf_format::GgmlType;
use kquant::{matmul_quantized_with_isa, quantize_activations, Isa, WeightMatrix};

/// Batch sizes to check: each uses the first rows of a case's activations, so every
/// remainder of the four-row groups and the single-row path is covered.
const BATCHES: [usize; 8] = [1, 2, 3, 4, 5, 7, 9, 16];

/// Mismatches listed in a failure message.
const SHOWN_MISMATCHES: usize = 8;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ggml-cpu/vec-dot-k")
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
    act_stem: String,
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
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(f.len(), 7, "bad cases.txt line: {line}");
            let parsed_type = match f[0] {
                "q4_k" => GgmlType::Q4_K,
                "q5_k" => GgmlType::Q5_K,
                "q6_k" => GgmlType::Q6_K,
                other => panic!("unknown type {other} in cases.txt"),
            };
            Case {
                ggml_type: parsed_type,
                n_cols: f[1].parse().unwrap(),
                n_rows: f[2].parse().unwrap(),
                n_batch: f[3].parse().unwrap(),
                weight_file: f[4].to_string(),
                act_stem: f[5].to_string(),
                out_file: f[6].to_string(),
            }
        })
        .filter(|case| case.ggml_type == ggml_type)
        .collect();
    assert!(!cases.is_empty(), "cases.txt has no {ggml_type} case");
    cases
}

/// Returns "index: expected vs found" for up to [`SHOWN_MISMATCHES`] differing outputs.
fn mismatches(expected: &[f32], found: &[f32]) -> (usize, String) {
    let differing: Vec<usize> = (0..expected.len())
        .filter(|&i| expected[i].to_bits() != found[i].to_bits())
        .collect();
    let listed = differing
        .iter()
        .take(SHOWN_MISMATCHES)
        .map(|&i| {
            format!(
                "[{i}] ggml {:e} ({:#010x}) vs {:e} ({:#010x})",
                expected[i],
                expected[i].to_bits(),
                found[i],
                found[i].to_bits()
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    (differing.len(), listed)
}

/// Checks every case of `ggml_type` for every batch prefix and every supported ISA.
fn check_type(ggml_type: GgmlType) {
    for case in cases(ggml_type) {
        let weight_bytes = read(&case.weight_file);
        let weight =
            WeightMatrix::new(case.ggml_type, &weight_bytes, case.n_cols, case.n_rows).unwrap();
        let x = read_f32(&format!("{}.f32", case.act_stem));
        let q8_golden = read(&format!("{}.q8_k", case.act_stem));
        let expected = read_f32(&case.out_file);
        assert_eq!(
            expected.len(),
            case.n_batch * case.n_rows,
            "{}: output file length",
            case.name()
        );

        let all = quantize_activations(GgmlType::Q8_K, &x, case.n_batch, case.n_cols).unwrap();
        assert!(
            all.as_bytes() == q8_golden.as_slice(),
            "{}: Q8_K activations differ from ggml's",
            case.name()
        );

        let batches = BATCHES
            .iter()
            .copied()
            .filter(|&n| n < case.n_batch)
            .chain([case.n_batch]);
        for n_batch in batches {
            let acts = quantize_activations(
                GgmlType::Q8_K,
                &x[..n_batch * case.n_cols],
                n_batch,
                case.n_cols,
            )
            .unwrap();
            let expected = &expected[..n_batch * case.n_rows];

            for isa in Isa::supported() {
                let mut out = vec![f32::NAN; n_batch * case.n_rows];
                matmul_quantized_with_isa(isa, &weight, &acts, &mut out).unwrap();

                let (n_differing, listed) = mismatches(expected, &out);
                println!(
                    "{} prefix {n_batch} {isa:?}: {}/{} outputs bit-identical",
                    case.name(),
                    expected.len() - n_differing,
                    expected.len()
                );
                assert_eq!(
                    n_differing,
                    0,
                    "{} prefix {n_batch} {isa:?}: {listed}",
                    case.name()
                );
            }
        }
    }
}

#[test]
fn q6_k_matches_ggml_bits() {
    check_type(GgmlType::Q6_K);
}

#[test]
fn q5_k_matches_ggml_bits() {
    check_type(GgmlType::Q5_K);
}

#[test]
fn q4_k_matches_ggml_bits() {
    check_type(GgmlType::Q4_K);
}

#[test]
fn repacked_q4_k_odd_rows_use_vec_dot() {
    // A repacked Q4_K matrix whose row count is not a multiple of 8 cannot be repacked, so
    // ggml multiplies it with the plain vec-dot kernel.
    let case = cases(GgmlType::Q4_K)
        .into_iter()
        .find(|c| c.n_rows % 8 != 0)
        .expect("a Q4_K case with n_rows % 8 != 0");
    let weight_bytes = read(&case.weight_file);
    let weight = WeightMatrix::new(GgmlType::Q4_K, &weight_bytes, case.n_cols, case.n_rows)
        .unwrap()
        .with_repack(true);
    let x = read_f32(&format!("{}.f32", case.act_stem));
    let acts = quantize_activations(GgmlType::Q8_K, &x, case.n_batch, case.n_cols).unwrap();
    let expected = read_f32(&case.out_file);

    let mut out = vec![f32::NAN; expected.len()];
    matmul_quantized_with_isa(Isa::detect(), &weight, &acts, &mut out).unwrap();

    let (n_differing, listed) = mismatches(&expected, &out);
    assert_eq!(n_differing, 0, "{}: {listed}", case.name());
}
