//! Golden files made by the oracle programs in `scripts/ggml-oracle/`, and the bit-for-bit
//! comparison of our products with ggml's.
//!
//! Each folder under `tests/data/ggml-cpu/` holds little-endian f32 and block files and a
//! `cases.txt` that lists them, one case per line of whitespace-separated fields.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use gguf_format::GgmlType;
use kquant::{matmul_quantized_with_isa, quantize_activations, vec_dot_type, Isa, WeightMatrix};

/// Differing outputs listed in a failure message.
const SHOWN_MISMATCHES: usize = 8;

/// One folder of golden files, `tests/data/ggml-cpu/<folder>`.
pub struct GoldenDir(PathBuf);

impl GoldenDir {
    pub fn new(folder: &str) -> GoldenDir {
        GoldenDir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ggml-cpu").join(folder))
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        let path = self.0.join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    pub fn read_f32(&self, name: &str) -> Vec<f32> {
        self.read(name)
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    /// Returns the fields of every line of `cases.txt`; each line must have `n_fields`.
    pub fn case_lines(&self, n_fields: usize) -> Vec<Vec<String>> {
        let manifest = String::from_utf8(self.read("cases.txt")).expect("cases.txt is UTF-8");
        manifest
            .lines()
            .map(|line| {
                let fields: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
                assert_eq!(fields.len(), n_fields, "cases.txt line {line:?}: expected {n_fields} fields");
                fields
            })
            .collect()
    }
}

/// Parses a `cases.txt` type name such as `q4_k` or `iq4_nl`.
pub fn parse_type(name: &str) -> GgmlType {
    name.parse().unwrap_or_else(|e| panic!("cases.txt: {e}"))
}

/// One line `type n_cols n_rows n_batch weight activations output` of a matmul `cases.txt`.
pub struct MatmulCase {
    pub ggml_type: GgmlType,
    pub n_cols: usize,
    pub n_rows: usize,
    pub n_batch: usize,
    pub weight_file: String,
    /// The activations' file, or their file-name stem where a folder stores several forms.
    pub act: String,
    pub out_file: String,
}

impl MatmulCase {
    pub fn name(&self) -> String {
        format!("{} {}x{} batch {}", self.ggml_type, self.n_cols, self.n_rows, self.n_batch)
    }
}

/// Returns the cases of `ggml_type` in `dir`'s `cases.txt`; there must be at least one.
pub fn matmul_cases(dir: &GoldenDir, ggml_type: GgmlType) -> Vec<MatmulCase> {
    let cases: Vec<MatmulCase> = dir
        .case_lines(7)
        .into_iter()
        .map(|f| MatmulCase {
            ggml_type: parse_type(&f[0]),
            n_cols: f[1].parse().expect("n_cols is a number"),
            n_rows: f[2].parse().expect("n_rows is a number"),
            n_batch: f[3].parse().expect("n_batch is a number"),
            weight_file: f[4].clone(),
            act: f[5].clone(),
            out_file: f[6].clone(),
        })
        .filter(|case| case.ggml_type == ggml_type)
        .collect();
    assert!(!cases.is_empty(), "cases.txt has no {ggml_type} case");
    cases
}

/// Compares `found` with `expected` bit for bit and prints how many outputs are identical.
///
/// # Errors
/// A message with the number of differing outputs and the first few of them.
pub fn compare_bits(label: &str, expected: &[f32], found: &[f32]) -> Result<(), String> {
    assert_eq!(expected.len(), found.len(), "{label}: output lengths");
    let differing: Vec<usize> = (0..expected.len())
        .filter(|&i| expected[i].to_bits() != found[i].to_bits())
        .collect();
    println!("{label}: {}/{} outputs bit-identical", expected.len() - differing.len(), expected.len());
    if differing.is_empty() {
        return Ok(());
    }

    let first_differences: Vec<String> = differing
        .iter()
        .take(SHOWN_MISMATCHES)
        .map(|&i| {
            format!(
                "  [{i}] expected {:e} ({:#010x}), found {:e} ({:#010x})",
                expected[i],
                expected[i].to_bits(),
                found[i],
                found[i].to_bits()
            )
        })
        .collect();
    Err(format!("{label}: {} outputs differ\n{}", differing.len(), first_differences.join("\n")))
}

/// Runs every `ggml_type` case of `dir` with every instruction set this CPU supports, and
/// asserts bit equality with ggml's outputs. `repack` marks the weights as repacked.
pub fn check_matmul_cases(dir: &GoldenDir, ggml_type: GgmlType, repack: bool) {
    let act_type = vec_dot_type(ggml_type).expect("the type has a vec-dot type");

    for case in matmul_cases(dir, ggml_type) {
        let weight_bytes = dir.read(&case.weight_file);
        let weight = WeightMatrix::new(case.ggml_type, &weight_bytes, case.n_cols, case.n_rows)
            .expect("golden weight has the size its case names")
            .with_repack(repack);
        let x = dir.read_f32(&case.act);
        let x = &x[..case.n_batch * case.n_cols];
        let acts = quantize_activations(act_type, x, case.n_batch, case.n_cols).unwrap();
        let expected = dir.read_f32(&case.out_file);
        assert_eq!(expected.len(), case.n_batch * case.n_rows, "{}: output file length", case.name());

        for isa in Isa::supported() {
            let mut out = vec![f32::NAN; expected.len()];
            matmul_quantized_with_isa(isa, &weight, &acts, &mut out).unwrap();
            if let Err(message) = compare_bits(&format!("{} {isa:?}", case.name()), &expected, &out) {
                panic!("{message}");
            }
        }
    }
}
