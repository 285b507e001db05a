//! Bit-exactness of Q4_1, Q5_1, Q2_K, Q3_K and IQ4_XS matrix products against ggml's
//! x86-64 `ggml_vec_dot_*` kernels.
//!
//! The golden files in `tests/data/ggml-cpu/vec-dot-misc/` come from llama.cpp b11312's
//! CPU backend (see the README there). For these weight types ggml computes each output
//! element with one `vec_dot` call, so an output depends on one weight row and one
//! activation row only. Each case runs for several batch sizes, on the first rows of the
//! stored activations, and with every instruction set this CPU supports.

use std::fs;
use std::path::PathBuf;

use kquant::{matmul_quantized_with_isa, quantize_activations, vec_dot_type, GgmlType, Isa, WeightMatrix};

/// Activation rows stored per shape.
const STORED_BATCH: usize = 16;

/// Batch sizes to run: single rows, every remainder of the four-row groups, and full groups.
const BATCHES: [usize; 8] = [1, 2, 3, 4, 5, 7, 9, 16];

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/ggml-cpu/vec-dot-misc")
}

fn read(name: &str) -> Vec<u8> {
    let path = data_dir().join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("failed to read {}: {e}", path.display()))
}

fn read_f32(name: &str) -> Vec<f32> {
    read(name).chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

/// One line of `cases.txt`: the weight type's file-name stem, n_cols and n_rows.
struct Case {
    stem: String,
    ggml_type: GgmlType,
    n_cols: usize,
    n_rows: usize,
}

fn cases() -> Vec<Case> {
    let text = String::from_utf8(read("cases.txt")).expect("cases.txt is UTF-8");
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 3, "cases.txt line {line:?}: expected `type n_cols n_rows`");
            let ggml_type = match fields[0] {
                "q4_1" => GgmlType::Q4_1,
                "q5_1" => GgmlType::Q5_1,
                "q2_k" => GgmlType::Q2_K,
                "q3_k" => GgmlType::Q3_K,
                "iq4_xs" => GgmlType::IQ4_XS,
                other => panic!("cases.txt names unknown type {other:?}"),
            };
            Case {
                stem: fields[0].to_string(),
                ggml_type,
                n_cols: fields[1].parse().expect("n_cols is a number"),
                n_rows: fields[2].parse().expect("n_rows is a number"),
            }
        })
        .collect()
}

/// Returns ggml's file-name suffix of an activation type.
fn act_suffix(ggml_type: GgmlType) -> &'static str {
    match ggml_type {
        GgmlType::Q8_1 => "q8_1",
        GgmlType::Q8_K => "q8_K",
        other => panic!("no golden activations for {other}"),
    }
}

#[test]
fn cases_cover_every_type() {
    let cases = cases();
    for ggml_type in [GgmlType::Q4_1, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::IQ4_XS] {
        let n = cases.iter().filter(|c| c.ggml_type == ggml_type).count();
        assert_eq!(n, 3, "{ggml_type}: expected three shapes in cases.txt");
    }
}

#[test]
fn activations_match_ggml_from_float() {
    for case in cases() {
        let act_type = vec_dot_type(case.ggml_type).expect("type has a vec_dot_type");
        let x = read_f32(&format!("act_{}.f32", case.n_cols));
        let expected = read(&format!("act_{}.{}", case.n_cols, act_suffix(act_type)));

        let acts = quantize_activations(act_type, &x, STORED_BATCH, case.n_cols).expect("quantize");

        assert!(
            acts.as_bytes() == expected.as_slice(),
            "{} {}: {act_type} activations differ from ggml's",
            case.stem,
            case.n_cols,
        );
    }
}

#[test]
fn outputs_bit_identical_to_ggml() {
    let mut failures = Vec::new();

    for case in cases() {
        let name = format!("{}_{}x{}", case.stem, case.n_cols, case.n_rows);
        let weight_bytes = read(&format!("{name}.weight"));
        let weight = WeightMatrix::new(case.ggml_type, &weight_bytes, case.n_cols, case.n_rows)
            .expect("weight matrix");
        let expected = read_f32(&format!("{name}.out"));
        assert_eq!(expected.len(), STORED_BATCH * case.n_rows, "{name}.out has the wrong length");

        let act_type = vec_dot_type(case.ggml_type).expect("type has a vec_dot_type");
        let x = read_f32(&format!("act_{}.f32", case.n_cols));

        for n_batch in BATCHES {
            let acts = quantize_activations(act_type, &x[..n_batch * case.n_cols], n_batch, case.n_cols)
                .expect("quantize");
            for isa in Isa::supported() {
                let mut out = vec![0.0f32; n_batch * case.n_rows];
                matmul_quantized_with_isa(isa, &weight, &acts, &mut out).expect("matmul");

                let want = &expected[..out.len()];
                let same = out.iter().zip(want).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
                println!("{name} batch {n_batch} {isa:?}: {same}/{} outputs bit-identical", out.len());
                if same != out.len() {
                    let (i, (got, want)) = out
                        .iter()
                        .zip(want)
                        .enumerate()
                        .find(|(_, (a, b))| a.to_bits() != b.to_bits())
                        .expect("a differing output");
                    failures.push(format!(
                        "{name} batch {n_batch} {isa:?}: output {i} is {got:e}, ggml has {want:e}"
                    ));
                }
            }
        }
    }

    assert!(failures.is_empty(), "outputs differ from ggml:\n{}", failures.join("\n"));
}
