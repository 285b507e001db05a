//! `convert` of the tiny Gemma checkpoints gives a GGUF with the checkpoint's logits, and a
//! checkpoint folder quantized in one `quantize` command gives the same bytes as `convert`
//! then `quantize`.

mod common;

use std::path::{Path, PathBuf};

use common::{repo_root, run, tool};
use gemma2_model::Model;

/// Largest difference allowed between logits from the GGUF and from the checkpoint.
const MAX_LOGIT_DIFF: f32 = 1e-5;

fn checkpoint(name: &str) -> PathBuf {
    repo_root().join("crates/gemma2-model/tests/data/hf-tiny").join(name)
}

fn convert(folder: &Path, outtype: &str, outfile: &Path) {
    let output = run(tool("convert").arg(folder).args(["--outtype", outtype]).arg("--outfile").arg(outfile));
    assert!(output.status.success(), "convert failed: {}", common::stderr(&output));
    assert!(common::stdout(&output).contains("wrote"), "convert printed no summary");
}

fn quantize(input: &Path, output_path: &Path, file_type: &str) {
    let output = run(tool("quantize").arg(input).arg(output_path).args([file_type, "2"]));
    assert!(output.status.success(), "quantize {} failed: {}", input.display(), common::stderr(&output));
}

/// Token ids of a test sequence: BOS, then a walk over the 512-token vocabulary longer than
/// the sliding window (8).
fn tokens() -> Vec<u32> {
    std::iter::once(2).chain((0..39).map(|i| (i * 37 + 5) % 512)).collect()
}

#[test]
fn converted_f32_gguf_gives_the_checkpoint_logits() {
    for name in ["gemma2-tiny", "gemma3-tiny"] {
        let dir = tempfile::tempdir().unwrap();
        let gguf = dir.path().join(format!("{name}-f32.gguf"));
        convert(&checkpoint(name), "f32", &gguf);

        let from_gguf = Model::from_gguf(&gguf).unwrap().forward(&tokens(), 0, None).unwrap();
        let from_hf = Model::from_hf_dir(checkpoint(name)).unwrap().forward(&tokens(), 0, None).unwrap();
        assert_eq!(from_gguf.len(), from_hf.len());
        let max_diff = from_gguf.iter().zip(&from_hf).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(max_diff <= MAX_LOGIT_DIFF, "{name}: logits differ by {max_diff}");
    }
}

#[test]
fn default_outfile_sits_beside_the_folder_as_f16() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("gemma2-tiny");
    std::fs::create_dir(&folder).unwrap();
    for entry in std::fs::read_dir(checkpoint("gemma2-tiny")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, folder.join(path.file_name().unwrap())).unwrap();
    }

    let output = run(tool("convert").arg(&folder));
    assert!(output.status.success(), "convert failed: {}", common::stderr(&output));
    let gguf = gguf_format::GgufFile::open(dir.path().join("gemma2-tiny-f16.gguf")).unwrap();
    let embd = gguf.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.ggml_type, gguf_format::GgmlType::F16);
}

#[test]
fn quantizing_the_folder_equals_convert_then_quantize() {
    // Rows of 64 fit Q8_0's 32-value blocks; k-quant types would fall back per tensor.
    for file_type in ["Q8_0", "Q4_K_M"] {
        let dir = tempfile::tempdir().unwrap();
        let direct = dir.path().join("direct.gguf");
        quantize(&checkpoint("gemma2-tiny"), &direct, file_type);

        let f32_gguf = dir.path().join("gemma2-tiny-f32.gguf");
        let two_step = dir.path().join("two-step.gguf");
        convert(&checkpoint("gemma2-tiny"), "f32", &f32_gguf);
        quantize(&f32_gguf, &two_step, file_type);

        let (a, b) = (std::fs::read(&direct).unwrap(), std::fs::read(&two_step).unwrap());
        assert!(a == b, "{file_type}: one-command and two-step outputs differ ({} vs {} bytes)", a.len(), b.len());
        assert_eq!(common::folder_names(dir.path()), ["direct.gguf", "gemma2-tiny-f32.gguf", "two-step.gguf"], "left files behind");
    }
}

#[test]
fn convert_refuses_to_write_into_the_checkpoint_file() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("ckpt");
    std::fs::create_dir(&folder).unwrap();
    for entry in std::fs::read_dir(checkpoint("gemma2-tiny")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, folder.join(path.file_name().unwrap())).unwrap();
    }
    let weights = folder.join("model.safetensors");
    let before = common::sha256_file(&weights);

    let output = run(tool("convert").arg(&folder).arg("--outfile").arg(&weights));
    common::assert_fails_naming(&output, &["--outfile", "input"]);
    assert_eq!(common::sha256_file(&weights), before);
}
