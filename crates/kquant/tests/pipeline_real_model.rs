//! The whole-model pipeline on the real Gemma 3 270M: the F32 base made by dequantizing the
//! Q4_K_M original, requantized as llama-quantize did, tensor bytes compared by sha256.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use gguf_format::{GgmlType, GgufFile, Metadata};
use kquant::pipeline::{quantize_model, ImportanceMatrix, QuantizeOptions, SourceError, TensorSource};
use kquant::plan::{FileType, TensorSpec};
use sha2::{Digest, Sha256};

/// Returns the real model's path, or `None` (with a loud note) outside CI when it is missing.
fn real_model() -> Option<PathBuf> {
    let path = std::env::var_os("GEMMA3_270M_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/gemma-3-270m-q4_k_m.gguf")));
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("real model missing at {}; run scripts/fetch-model.sh", path.display());
    }
    eprintln!("skipped: real model missing at {} (run scripts/fetch-model.sh)", path.display());
    None
}

/// The F32 base: every tensor of the original dequantized on demand, as
/// `llama-quantize --allow-requantize original base-f32.gguf F32` writes it.
struct DequantizedBase {
    file: GgufFile,
}

impl TensorSource for DequantizedBase {
    fn metadata(&self) -> &Metadata {
        self.file.metadata()
    }

    fn tensor_specs(&self) -> Vec<TensorSpec> {
        self.file.tensors().iter().map(|t| TensorSpec::new(t.name.clone(), &t.dims, GgmlType::F32)).collect()
    }

    fn tensor_data(&self, name: &str) -> Result<Cow<'_, [u8]>, SourceError> {
        let info = self.file.tensor(name).ok_or("tensor not found")?;
        let values = kquant::dequantize(info.ggml_type, self.file.tensor_data(info), info.dims[0] as usize)?;
        Ok(Cow::Owned(bytemuck::cast_slice(&values).to_vec()))
    }
}

/// Reads a GGUF imatrix (`<name>.in_sum2` / `<name>.counts`) into mean squares, as
/// llama-quantize's loader does.
fn read_imatrix(path: &str) -> ImportanceMatrix {
    let file = GgufFile::open(path).unwrap();
    let mut entries = BTreeMap::new();
    for info in file.tensors() {
        let Some(name) = info.name.strip_suffix(".in_sum2") else { continue };
        let sums = f32_values(file.tensor_data(info));
        let counts = f32_values(file.tensor_bytes(&format!("{name}.counts")).unwrap());
        let ncols = info.dims[0] as usize;
        let mut mean = Vec::with_capacity(sums.len());
        for (j, count) in counts.iter().enumerate() {
            let row = &sums[j * ncols..(j + 1) * ncols];
            mean.extend(row.iter().map(|s| if *count > 0.0 { s / count } else { 1.0 }));
        }
        entries.insert(name.to_string(), mean);
    }
    let metadata = file.metadata();
    ImportanceMatrix {
        file: path.to_string(),
        datasets: metadata.get_string_array("imatrix.datasets").unwrap().to_vec(),
        chunk_count: metadata.get_u32("imatrix.chunk_count").unwrap(),
        entries,
    }
}

fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn reference_hashes() -> BTreeMap<String, BTreeMap<String, (String, String)>> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/llama-quantize/quant-hashes.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn options_for(label: &str, imatrix: Option<&ImportanceMatrix>) -> QuantizeOptions {
    let q8 = Some(GgmlType::Q8_0);
    let f16 = Some(GgmlType::F16);
    let (file_type, output, embedding, pure) = match label.trim_end_matches("-en").trim_end_matches("-none") {
        "q4km-M" => (FileType::Q4_K_M, None, None, false),
        "q4km-L" => (FileType::Q4_K_M, q8, q8, false),
        "q4km-fp16" => (FileType::Q4_K_M, f16, f16, false),
        "q4_0-pure" => (FileType::Q4_0, None, None, true),
        "q3km" => (FileType::Q3_K_M, None, None, false),
        "iq4xs" => (FileType::IQ4_XS, None, None, false),
        other => panic!("unknown reference model {other}"),
    };
    let mut options = QuantizeOptions::new(file_type);
    options.plan.output_tensor_type = output;
    options.plan.token_embedding_type = embedding;
    options.plan.pure = pure;
    options.imatrix = if label.ends_with("-en") { imatrix.cloned() } else { None };
    options
}

/// Every tensor of all twelve reference models is byte-identical to llama-quantize's output.
#[test]
fn requantized_tensors_match_llama_quantize() {
    let Some(path) = real_model() else { return };
    let base = DequantizedBase { file: GgufFile::open(&path).unwrap() };
    let imatrix = read_imatrix(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/llama-quantize/imatrix-en.gguf"));
    let dir = tempfile::tempdir().unwrap();

    let mut mismatches = Vec::new();
    for (label, expected) in reference_hashes() {
        let output = dir.path().join(format!("{label}.gguf"));
        let options = options_for(&label, Some(&imatrix));
        quantize_model(&base, &output, &options, &mut |_| {}).unwrap();

        let written = GgufFile::open(&output).unwrap();
        let mut matching = 0;
        for info in written.tensors() {
            let (ggml_type, sha) = &expected[&info.name];
            let actual = format!("{:x}", Sha256::digest(written.tensor_data(info)));
            if info.ggml_type.name() == ggml_type && &actual == sha {
                matching += 1;
            } else {
                mismatches.push(format!("{label}: {} ({} vs {ggml_type})", info.name, info.ggml_type));
            }
        }
        println!("{label}: {matching}/{} tensors byte-identical", expected.len());
        assert_eq!(written.tensors().len(), expected.len(), "{label}");
        std::fs::remove_file(&output).unwrap();
    }
    assert!(mismatches.is_empty(), "{} tensors differ, first: {:?}", mismatches.len(), &mismatches[..mismatches.len().min(10)]);
}

/// The output metadata records the file type, the quantization version and the imatrix.
#[test]
fn output_metadata_records_imatrix() {
    let Some(path) = real_model() else { return };
    let base = DequantizedBase { file: GgufFile::open(&path).unwrap() };
    let imatrix = read_imatrix(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/llama-quantize/imatrix-en.gguf"));
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("q4_0.gguf");

    let mut options = QuantizeOptions::new(FileType::Q4_0);
    options.plan.pure = true;
    options.imatrix = Some(imatrix.clone());
    quantize_model(&base, &output, &options, &mut |_| {}).unwrap();

    let written = GgufFile::open(&output).unwrap();
    let metadata = written.metadata();
    assert_eq!(metadata.get_u32("general.file_type").unwrap(), 2);
    assert_eq!(metadata.get_u32("general.quantization_version").unwrap(), 2);
    assert_eq!(metadata.get_u32("quantize.imatrix.entries_count").unwrap() as usize, imatrix.entries.len());
    assert_eq!(metadata.get_u32("quantize.imatrix.chunks_count").unwrap(), 40);
    assert!(metadata.get_str("quantize.imatrix.file").unwrap().ends_with("imatrix-en.gguf"));
}

/// A quantized input without `allow_requantize`, and an imatrix made for another shape, fail
/// before any output exists.
#[test]
fn refused_inputs_leave_no_output() {
    let Some(path) = real_model() else { return };
    let original = GgufFile::open(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.gguf");

    let err = quantize_model(&original, &output, &QuantizeOptions::new(FileType::Q4_0), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("--allow-requantize"), "{err}");
    assert!(!output.exists());

    let base = DequantizedBase { file: original };
    let mut options = QuantizeOptions::new(FileType::Q4_0);
    let mut imatrix = ImportanceMatrix::default();
    imatrix.entries.insert("blk.0.ffn_down.weight".into(), vec![1.0; 9216]);
    options.imatrix = Some(imatrix);
    let err = quantize_model(&base, &output, &options, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("imatrix has 9216 values, expected 2048"), "{err}");
    assert!(!output.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no temporary file is left");
}
