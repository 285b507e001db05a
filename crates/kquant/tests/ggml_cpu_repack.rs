//! Products of repacked Q4_K, Q4_0 and IQ4_NL weights against ggml's own `CPU_REPACK`
//! matrix products (`ggml_gemm_*_8x8` / `ggml_gemv_*_8x8` of llama.cpp b11312), compared
//! bit for bit.
//!
//! The golden files in `tests/data/ggml-cpu/repack` come from
//! `scripts/ggml-oracle/repack.c`; their README describes how. Each case runs with the scalar
//! kernels and with the best SIMD kernels of this CPU.

use std::path::{Path, PathBuf};

use gguf_format::GgmlType;
use kquant::{matmul_quantized_with_isa, quantize_activations, vec_dot_type, Isa, WeightMatrix};

/// Mismatches listed in a failure message.
const SHOWN_MISMATCHES: usize = 8;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ggml-cpu/repack")
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
                "q4_k" => GgmlType::Q4_K,
                "q4_0" => GgmlType::Q4_0,
                "iq4_nl" => GgmlType::IQ4_NL,
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
    let act_type = vec_dot_type(ggml_type).expect("repacked types have a vec-dot type");

    for case in cases(ggml_type) {
        let weight_bytes = read(&case.weight_file);
        let weight = WeightMatrix::new(case.ggml_type, &weight_bytes, case.n_cols, case.n_rows)
            .expect("golden weight has the size its case names")
            .with_repack(true);
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
fn q4_k_matches_ggml_repack() {
    check_type(GgmlType::Q4_K);
}

#[test]
fn q4_0_matches_ggml_repack() {
    check_type(GgmlType::Q4_0);
}

#[test]
fn iq4_nl_matches_ggml_repack() {
    check_type(GgmlType::IQ4_NL);
}

/// Builds a `n_rows` x `n_cols` matrix of `ggml_type` from a fixed pseudo-random spread.
fn random_weight(ggml_type: GgmlType, n_rows: usize, n_cols: usize, seed: u32) -> Vec<u8> {
    let values = pseudo_random(n_rows * n_cols, seed, 0.03);
    kquant::quantize(ggml_type, &values, n_cols, None).expect("type quantizes without imatrix")
}

/// Returns `len` values of a fixed linear congruential sequence scaled to +-`scale`, with
/// every 97th value 40 times larger (activation outliers).
fn pseudo_random(len: usize, seed: u32, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    (0..len)
        .map(|i| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let unit = (state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
            if i % 97 == 5 {
                unit * scale * 40.0
            } else {
                unit * scale
            }
        })
        .collect()
}

#[test]
fn simd_matches_scalar_on_large_shapes() {
    // 2048 columns is the FFN width of Gemma 3 270M; 72 rows leave an 8-row panel after
    // the 32-row tiles; 13 rows mix both kernels.
    let shapes = [
        (GgmlType::Q4_K, 2048, 72),
        (GgmlType::Q4_0, 640, 40),
        (GgmlType::IQ4_NL, 640, 24),
    ];
    for (ggml_type, n_cols, n_rows) in shapes {
        let data = random_weight(ggml_type, n_rows, n_cols, 11);
        let weight = WeightMatrix::new(ggml_type, &data, n_cols, n_rows)
            .unwrap()
            .with_repack(true);

        for n_batch in [1, 6, 13, 70] {
            let x = pseudo_random(n_batch * n_cols, 5 + n_batch as u32, 1.0);
            let act_type = vec_dot_type(ggml_type).unwrap();
            let acts = quantize_activations(act_type, &x, n_batch, n_cols).unwrap();

            let mut scalar = vec![0.0f32; n_batch * n_rows];
            let mut simd = vec![0.0f32; n_batch * n_rows];
            matmul_quantized_with_isa(Isa::Scalar, &weight, &acts, &mut scalar).unwrap();
            matmul_quantized_with_isa(Isa::detect(), &weight, &acts, &mut simd).unwrap();

            let (n_differing, shown) = mismatches(&scalar, &simd);
            assert_eq!(
                n_differing, 0,
                "{ggml_type} {n_cols}x{n_rows} batch {n_batch}: SIMD differs from scalar\n{shown}"
            );
        }
    }
}

#[test]
fn repacked_q4_k_stays_near_plain_kernel() {
    // The repacked order changes only the f32 rounding, so the result must stay within a
    // few ulps of the sum of 2048 products that the plain vec-dot kernel returns.
    let (n_cols, n_rows, n_batch) = (2048, 16, 5);
    let data = random_weight(GgmlType::Q4_K, n_rows, n_cols, 3);
    let plain = WeightMatrix::new(GgmlType::Q4_K, &data, n_cols, n_rows).unwrap();
    let repacked = plain.with_repack(true);
    let x = pseudo_random(n_batch * n_cols, 9, 1.0);
    let acts = quantize_activations(GgmlType::Q8_K, &x, n_batch, n_cols).unwrap();

    let mut expected = vec![0.0f32; n_batch * n_rows];
    let mut found = vec![0.0f32; n_batch * n_rows];
    kquant::matmul_quantized(&plain, &acts, &mut expected).unwrap();
    kquant::matmul_quantized(&repacked, &acts, &mut found).unwrap();

    let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (i, (e, f)) in expected.iter().zip(&found).enumerate() {
        assert!(
            (e - f).abs() <= 1e-5 * scale,
            "output {i}: plain {e} vs repacked {f}"
        );
    }
}
