//! Bit equality with ggml's CPU backend for the llamafile tinyBLAS types: Q4_0, Q5_0, Q8_0
//! and IQ4_NL weights (Q8_0 activations), F16 weights (F16 activations) and F32 weights.
//!
//! The golden outputs in `tests/data/ggml-cpu/tinyblas` come from a real GGML_OP_MUL_MAT
//! on llama.cpp b11312's CPU backend (see the README there). A batch of one row takes
//! `ggml_vec_dot_*`; larger batches take tinyBLAS, or `ggml_vec_dot_*` again for float
//! shapes tinyBLAS rejects.

use std::path::{Path, PathBuf};

use gguf_format::GgmlType;
use kquant::dot::Isa;
use kquant::{matmul_quantized_with_isa, quantize_activations, vec_dot_type, WeightMatrix};

/// Rows in every activation file.
const MAX_BATCH: usize = 16;

/// Version of the golden file layout written by `scripts/ggml-oracle/tinyblas.c`.
const FORMAT_VERSION: u32 = 1;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ggml-cpu/tinyblas")
}

/// A little-endian reader over one golden file.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        assert!(self.pos + n <= self.bytes.len(), "golden file truncated at byte {}", self.pos);
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        out
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }

    fn f32s(&mut self, n: usize) -> Vec<f32> {
        self.take(4 * n).chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
    }
}

/// One golden case: a weight matrix and ggml's outputs for several batch sizes.
struct Case {
    name: String,
    ggml_type: GgmlType,
    n_rows: usize,
    n_cols: usize,
    weight: Vec<u8>,
    runs: Vec<(usize, Vec<f32>)>,
}

fn read_case(path: &Path) -> Case {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut r = Reader { bytes: &bytes, pos: 0 };
    assert_eq!(r.take(4), b"TBGO", "{}: magic", path.display());
    assert_eq!(r.u32(), FORMAT_VERSION, "{}: format version", path.display());

    let type_id = r.u32();
    let ggml_type = GgmlType::from_id(type_id).unwrap_or_else(|| panic!("unknown ggml type {type_id}"));
    let n_rows = r.u32() as usize;
    let n_cols = r.u32() as usize;
    let n_runs = r.u32() as usize;
    let row_size = n_cols / ggml_type.block_size() * ggml_type.type_size();
    let weight = r.take(n_rows * row_size).to_vec();

    let runs = (0..n_runs)
        .map(|_| {
            let n_batch = r.u32() as usize;
            (n_batch, r.f32s(n_batch * n_rows))
        })
        .collect();
    assert_eq!(r.pos, bytes.len(), "{}: trailing bytes", path.display());

    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    Case { name, ggml_type, n_rows, n_cols, weight, runs }
}

fn read_activations(n_cols: usize) -> Vec<f32> {
    let path = golden_dir().join(format!("acts-c{n_cols}.bin"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert_eq!(bytes.len(), 4 * MAX_BATCH * n_cols, "{}: size", path.display());
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

fn cases_of(types: &[GgmlType]) -> Vec<Case> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("golden folder exists")
        .map(|entry| entry.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("acts-"))
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    paths.sort();
    let cases: Vec<Case> = paths.iter().map(|p| read_case(p)).filter(|c| types.contains(&c.ggml_type)).collect();
    assert!(!cases.is_empty(), "no golden cases for {types:?}");
    cases
}

/// Checks every run of every case with every instruction set this CPU has, the scalar one
/// included, and returns the number of outputs compared.
fn check(types: &[GgmlType]) -> usize {
    let mut compared = 0;
    for case in cases_of(types) {
        let x_all = read_activations(case.n_cols);
        let weight = WeightMatrix::new(case.ggml_type, &case.weight, case.n_cols, case.n_rows).unwrap();
        let act_type = vec_dot_type(case.ggml_type).unwrap();

        for isa in Isa::supported() {
            let mut identical = 0;
            let mut total = 0;
            let mut first_mismatch = None;
            for (n_batch, expected) in &case.runs {
                let x = &x_all[..n_batch * case.n_cols];
                let acts = quantize_activations(act_type, x, *n_batch, case.n_cols).unwrap();
                let mut out = vec![f32::NAN; n_batch * case.n_rows];
                matmul_quantized_with_isa(isa, &weight, &acts, &mut out).unwrap();

                for (i, (got, want)) in out.iter().zip(expected).enumerate() {
                    total += 1;
                    if got.to_bits() == want.to_bits() {
                        identical += 1;
                    } else if first_mismatch.is_none() {
                        first_mismatch = Some(format!("batch {n_batch} [{i}]: {got:e} vs ggml {want:e}"));
                    }
                }
            }
            println!("{} {isa:?}: {identical}/{total} outputs bit-identical", case.name);
            assert_eq!(identical, total, "{} {isa:?}: first mismatch {}", case.name, first_mismatch.unwrap_or_default());
            compared += total;
        }
    }
    compared
}

#[test]
fn q8_0_matches_ggml() {
    assert!(check(&[GgmlType::Q8_0]) > 0);
}

#[test]
fn q5_0_matches_ggml() {
    assert!(check(&[GgmlType::Q5_0]) > 0);
}

#[test]
fn q4_0_matches_ggml() {
    assert!(check(&[GgmlType::Q4_0]) > 0);
}

#[test]
fn iq4_nl_matches_ggml() {
    assert!(check(&[GgmlType::IQ4_NL]) > 0);
}

#[test]
fn f16_matches_ggml() {
    assert!(check(&[GgmlType::F16]) > 0);
}

#[test]
fn f32_matches_ggml() {
    assert!(check(&[GgmlType::F32]) > 0);
}
