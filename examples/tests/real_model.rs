//! The tools on the real Gemma 3 270M model: `quantize` writes llama-quantize's bytes,
//! `tokenize` prints llama-tokenize's ids, and `imatrix`, `perplexity`, `imatrix-compare` and
//! `imatrix-mix` run end to end with llama.cpp's output lines.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{real_model, repo_root, run, stdout, tool};
use gguf_format::GgufFile;

fn llama_quantize_data(name: &str) -> std::path::PathBuf {
    repo_root().join("crates/kquant/tests/data/llama-quantize").join(name)
}

/// Returns `{tensor: (ggml type, sha256)}` of one model in quant-hashes.json.
fn reference_hashes(model: &str) -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(llama_quantize_data("quant-hashes.json")).unwrap();
    let all: BTreeMap<String, BTreeMap<String, (String, String)>> = serde_json::from_str(&text).unwrap();
    all[model].clone()
}

fn succeed(command: &mut std::process::Command, what: &str) -> std::process::Output {
    let output = run(command);
    assert!(output.status.success(), "{what} failed: {}", common::stderr(&output));
    output
}

#[test]
fn quantize_q4_k_m_matches_llama_quantize() {
    let Some(model) = real_model("quantize_q4_k_m_matches_llama_quantize") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.gguf");
    let out = dir.path().join("q4km-M-en.gguf");

    succeed(tool("quantize").arg("--allow-requantize").arg(&model).arg(&base).arg("F32"), "quantize to the F32 base");
    let printed = succeed(
        tool("quantize").arg("--imatrix").arg(llama_quantize_data("imatrix-en.gguf")).arg(&base).arg(&out).args(["Q4_K_M", "2"]),
        "quantize to Q4_K_M",
    );
    assert!(stdout(&printed).contains("quantize: wrote"), "no summary line");

    let expected = reference_hashes("q4km-M-en");
    let file = GgufFile::open(&out).unwrap();
    assert_eq!(file.tensors().len(), expected.len(), "tensor count");
    let mut mismatched = Vec::new();
    for info in file.tensors() {
        let (ggml_type, sha) = &expected[&info.name];
        let actual = common::sha256(file.tensor_data(info));
        if info.ggml_type.name() != ggml_type || &actual != sha {
            mismatched.push(format!("{} ({} vs llama-quantize's {ggml_type})", info.name, info.ggml_type.name()));
        }
    }
    assert!(mismatched.is_empty(), "{} tensors differ from llama-quantize: {:?}", mismatched.len(), mismatched);
}

#[test]
fn tokenize_prints_llama_tokenize_ids() {
    let Some(model) = real_model("tokenize_prints_llama_tokenize_ids") else {
        return;
    };
    let ids = succeed(tool("tokenize").arg("-m").arg(&model).args(["-p", "Hello world", "--ids"]), "tokenize --ids");
    assert_eq!(stdout(&ids), "[2, 9259, 1902]\n");

    let pieces = succeed(tool("tokenize").arg("-m").arg(&model).args(["-p", "Hello world"]), "tokenize");
    assert_eq!(stdout(&pieces), "     2 -> '<bos>'\n  9259 -> 'Hello'\n  1902 -> ' world'\n");

    let no_bos = succeed(tool("tokenize").arg("-m").arg(&model).args(["-p", "Hello world", "--ids", "--no-bos"]), "tokenize --no-bos");
    assert_eq!(stdout(&no_bos), "[9259, 1902]\n");
}

#[test]
fn tokenize_reads_a_tokenizer_json() {
    let Some(model) = real_model("tokenize_reads_a_tokenizer_json") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = GgufFile::open(&model).unwrap();
    let tokenizer = gemma2_model::GemmaTokenizer::from_gguf_metadata(file.metadata()).unwrap();
    let json = dir.path().join("tokenizer.json");
    std::fs::write(&json, gemma2_model::tokenizer::tokenizer_json_from_vocab(tokenizer.vocab())).unwrap();

    let ids = succeed(tool("tokenize").arg("-m").arg(&json).args(["-p", "Hello world", "--ids"]), "tokenize -m tokenizer.json");
    assert_eq!(stdout(&ids), "[2, 9259, 1902]\n");
}

#[test]
fn tokenize_reads_invalid_utf8_without_panicking() {
    let Some(model) = real_model("tokenize_reads_invalid_utf8_without_panicking") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("bad.txt");
    std::fs::write(&text, b"caf\xe9 \xff ok").unwrap();

    let output = succeed(tool("tokenize").arg("-m").arg(&model).arg("-f").arg(&text).arg("--ids"), "tokenize -f");
    assert!(stdout(&output).starts_with("[2, "), "unexpected output {}", stdout(&output));
    assert!(common::stderr(&output).contains("not valid UTF-8"), "no warning about the replaced bytes");
}

/// Returns the `[k]x.xxxx` values of a llama.cpp progress line.
fn running_estimates(text: &str) -> Vec<f64> {
    text.split(',')
        .filter_map(|item| item.trim().strip_prefix('[').and_then(|rest| rest.split_once(']')))
        .filter_map(|(_, value)| value.trim().parse().ok())
        .collect()
}

#[test]
fn tools_run_end_to_end() {
    let Some(model) = real_model("tools_run_end_to_end") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let text = common::test_data("wiki-head.raw");
    let gguf_out = dir.path().join("wiki.gguf");
    let dat_out = dir.path().join("wiki.dat");

    let collected = succeed(
        tool("imatrix").arg("-m").arg(&model).arg("-f").arg(&text).arg("-o").arg(&gguf_out).args(["-c", "128", "--chunks", "4", "-t", "2"]),
        "imatrix",
    );
    let printed = stdout(&collected);
    assert_eq!(running_estimates(printed.lines().next().unwrap()).len(), 4, "expected four [k] estimates:\n{printed}");
    assert!(printed.contains("Final estimate: PPL = "), "no final estimate:\n{printed}");
    assert!(printed.contains("tokens/s"), "no speed summary:\n{printed}");
    assert!(gguf_out.is_file());

    // The same run, saved as legacy .dat by its extension, compares as identical.
    succeed(
        tool("imatrix").arg("-m").arg(&model).arg("-f").arg(&text).arg("-o").arg(&dat_out).args(["-c", "128", "--chunks", "4", "--no-ppl"]),
        "imatrix to .dat",
    );
    assert!(!std::fs::read(&dat_out).unwrap().starts_with(b"GGUF"), ".dat output is GGUF");
    let compared = succeed(tool("imatrix-compare").arg(&gguf_out).arg(&dat_out).arg("--json"), "imatrix-compare");
    let json: serde_json::Value = serde_json::from_slice(&compared.stdout).unwrap();
    let tensors = json["tensors"].as_array().unwrap();
    assert!(!tensors.is_empty());
    for tensor in tensors {
        let cosine = tensor["cosine"].as_f64().unwrap();
        assert!(cosine > 0.999_99, "{}: cosine {cosine}", tensor["name"]);
    }
    let table = succeed(tool("imatrix-compare").arg(&gguf_out).arg(llama_quantize_data("imatrix-en.gguf")), "imatrix-compare table");
    assert!(!stdout(&table).is_empty());

    // --in-file together with -f adds the new chunks to the file's.
    let merged = dir.path().join("merged.gguf");
    succeed(
        tool("imatrix").arg("-m").arg(&model).arg("-f").arg(&text).arg("--in-file").arg(&gguf_out).arg("-o").arg(&merged).args(["-c", "128", "--chunk", "4", "--chunks", "2", "--no-ppl"]),
        "imatrix --in-file",
    );
    let first = imatrix_collect::Imatrix::load(&gguf_out).unwrap();
    let merged_imatrix = imatrix_collect::Imatrix::load(&merged).unwrap();
    assert_eq!(merged_imatrix.chunk_count(), first.chunk_count() + 2);

    // Sources of one chunk size mix; the result keeps both sources' chunks.
    let mixed = dir.path().join("mixed.gguf");
    let mut first_input = gguf_out.clone().into_os_string();
    first_input.push(":0.7");
    let mut second_input = merged.clone().into_os_string();
    second_input.push(":0.3");
    succeed(tool("imatrix-mix").arg("--input").arg(&first_input).arg("--input").arg(&second_input).arg("-o").arg(&mixed), "imatrix-mix");
    let mixed_imatrix = imatrix_collect::Imatrix::load(&mixed).unwrap();
    assert_eq!(mixed_imatrix.entries().len(), first.entries().len());
    assert_eq!(mixed_imatrix.chunk_count(), first.chunk_count() + merged_imatrix.chunk_count());

    perplexity_modes(&model, &text, dir.path());
}

/// Perplexity, its KLD base file and --kl-divergence, and the paired comparison.
fn perplexity_modes(model: &Path, text: &Path, dir: &Path) {
    let json = dir.join("ppl.json");
    let base = dir.join("base.kld");
    let scored = succeed(
        tool("perplexity").arg("-m").arg(model).arg("-f").arg(text).arg("--kl-divergence-base").arg(&base).arg("--json").arg(&json).args(["-c", "128", "--chunks", "3"]),
        "perplexity",
    );
    let printed = stdout(&scored);
    assert_eq!(running_estimates(printed.lines().next().unwrap()).len(), 3, "expected three [k] estimates:\n{printed}");
    assert!(printed.contains("Final estimate: PPL = "), "no final estimate:\n{printed}");
    assert!(printed.contains(" +/- "), "no uncertainty:\n{printed}");
    let result: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(result["perplexity"]["n_chunk"], 3);
    assert!(base.is_file());

    let kld = succeed(tool("perplexity").arg("-m").arg(model).arg("--kl-divergence-base").arg(&base).arg("--kl-divergence"), "perplexity --kl-divergence");
    let printed = stdout(&kld);
    assert!(printed.contains("KL Divergence"), "no KLD table:\n{printed}");
    assert!(printed.contains("Same top p"), "no same-top-p statistic:\n{printed}");

    let paired = succeed(tool("perplexity").arg("-m").arg(model).arg("-f").arg(text).arg("--compare-model").arg(model).args(["-c", "128", "--chunks", "2"]), "perplexity --compare-model");
    let printed = stdout(&paired);
    assert!(printed.contains("Paired comparison"), "no paired comparison:\n{printed}");
    assert!(printed.contains("within noise"), "a model compared with itself should be within noise:\n{printed}");
}
