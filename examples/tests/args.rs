//! Argument handling of every tool: `--help` exits 0 and states units and defaults; a bad or
//! missing value exits non-zero with a first line that names the flag or the value.

mod common;

use common::{assert_fails_naming, run, stdout, tool};

const TOOLS: [&str; 8] = ["quantize", "convert", "imatrix", "perplexity", "tokenize", "imatrix-compare", "imatrix-mix", "gguf-dump"];

#[test]
fn help_of_every_tool_exits_zero() {
    for name in TOOLS {
        let output = run(tool(name).arg("--help"));
        assert!(output.status.success(), "{name} --help failed: {}", common::stderr(&output));
        assert!(stdout(&output).contains("Usage:"), "{name} --help has no usage line");
    }
}

#[test]
fn help_states_units_and_defaults() {
    let expectations: [(&str, &[&str]); 7] = [
        ("quantize", &["Q4_K_M", "threads", "default: all cores"]),
        ("convert", &["[default: f16]", "[possible values: f32, f16, bf16]"]),
        ("imatrix", &["[default: 512]", "[default: imatrix.gguf]", "[default: 10]", "Tokens per chunk", "gguf: GGUF", "dat:  The legacy .dat"]),
        ("perplexity", &["[default: 512]", "Tokens per chunk", "--kl-divergence-base", "--compare-model", "--json"]),
        ("tokenize", &["--ids", "--no-bos", "--no-parse-special", "[2, 9259, 1902]"]),
        ("imatrix-compare", &["--json", "top 1%"]),
        ("imatrix-mix", &["FILE:WEIGHT", "--input", "-o"]),
    ];
    for (name, needles) in expectations {
        let text = stdout(&run(tool(name).arg("--help")));
        for needle in needles {
            assert!(text.contains(needle), "{name} --help does not mention {needle:?}:\n{text}");
        }
    }
}

#[test]
fn quantize_rejects_an_unknown_type() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(tool("quantize").args(["in.gguf", "out.gguf", "Q9_9"]).current_dir(dir.path()));
    assert_fails_naming(&output, &["Q9_9"]);
}

#[test]
fn quantize_rejects_a_tensor_type_without_equals() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(tool("quantize").args(["--tensor-type", "attn_v", "in.gguf", "out.gguf", "Q4_K_M"]).current_dir(dir.path()));
    assert_fails_naming(&output, &["--tensor-type", "attn_v"]);
}

#[test]
fn quantize_names_a_missing_input() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(tool("quantize").args(["missing.gguf", "out.gguf", "Q4_0"]).current_dir(dir.path()));
    assert_fails_naming(&output, &["missing.gguf"]);
    assert_eq!(common::folder_names(dir.path()), Vec::<String>::new(), "a failed run left files");
}

#[test]
fn quantize_refuses_to_overwrite_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model.gguf");
    std::fs::write(&input, b"GGUF").unwrap();
    let output = run(tool("quantize").args(["model.gguf", "./model.gguf", "Q4_0"]).current_dir(dir.path()));
    assert_fails_naming(&output, &["input"]);
    assert_eq!(std::fs::read(&input).unwrap(), b"GGUF");
}

#[test]
fn context_size_zero_is_rejected() {
    for name in ["imatrix", "perplexity"] {
        let output = run(tool(name).args(["-m", "m.gguf", "-f", "t.txt", "-c", "0"]));
        assert_fails_naming(&output, &["--ctx-size", "must be at least"]);
    }
}

#[test]
fn non_numeric_counts_are_rejected() {
    let output = run(tool("imatrix").args(["-m", "m.gguf", "-f", "t.txt", "--chunks", "many"]));
    assert_fails_naming(&output, &["--chunks", "many"]);
    let output = run(tool("perplexity").args(["-m", "m.gguf", "-f", "t.txt", "-t", "-2"]));
    assert_fails_naming(&output, &["-2"]);
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str], &str); 7] = [
        ("imatrix", &["-m", "missing.gguf", "-f", "missing.txt"], "missing.gguf"),
        ("perplexity", &["-m", "missing.gguf", "-f", "missing.txt"], "missing.gguf"),
        ("tokenize", &["-m", "missing.gguf", "-p", "hi"], "missing.gguf"),
        ("imatrix-compare", &["missing-a.gguf", "missing-b.gguf"], "missing-a.gguf"),
        ("imatrix-mix", &["--input", "missing.gguf:1", "-o", "out.gguf"], "missing.gguf"),
        ("convert", &["missing-folder"], "missing-folder"),
        ("imatrix", &["--in-file", "missing.gguf"], "missing.gguf"),
    ];
    for (name, args, needle) in cases {
        let output = run(tool(name).args(args).current_dir(dir.path()));
        assert_fails_naming(&output, &[needle]);
    }
    assert_eq!(common::folder_names(dir.path()), Vec::<String>::new(), "a failed run left files");
}

#[test]
fn convert_rejects_a_quantized_outtype() {
    let output = run(tool("convert").args(["folder", "--outtype", "q8_0"]));
    assert_fails_naming(&output, &["q8_0", "--outtype"]);
}

#[test]
fn imatrix_mix_rejects_inputs_without_a_weight() {
    let output = run(tool("imatrix-mix").args(["--input", "en.gguf", "-o", "out.gguf"]));
    assert_fails_naming(&output, &["--input", "FILE:WEIGHT"]);
    let output = run(tool("imatrix-mix").args(["--input", "en.gguf:-1", "-o", "out.gguf"]));
    assert_fails_naming(&output, &["--input", "-1"]);
}

#[test]
fn imatrix_refuses_to_overwrite_an_in_file() {
    let dir = tempfile::tempdir().unwrap();
    let source = common::repo_root().join("crates/kquant/tests/data/llama-quantize/imatrix-en.gguf");
    let input = dir.path().join("en.gguf");
    std::fs::copy(source, &input).unwrap();
    let before = common::sha256_file(&input);

    let output = run(tool("imatrix").args(["--in-file", "en.gguf", "-o", "en.gguf"]).current_dir(dir.path()));
    assert_fails_naming(&output, &["-o", "input"]);
    assert_eq!(common::sha256_file(&input), before);
}

#[test]
fn tokenize_needs_a_prompt_or_a_file() {
    let output = run(tool("tokenize").args(["-m", "model.gguf"]));
    assert_fails_naming(&output, &["--prompt"]);
}

#[test]
fn perplexity_kl_divergence_needs_a_base_file() {
    let output = run(tool("perplexity").args(["-m", "model.gguf", "--kl-divergence"]));
    assert_fails_naming(&output, &["--kl-divergence-base"]);
}

#[test]
fn study_rejects_a_bad_mode_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(tool("study").args(["--mode", "en+", "--out"]).arg(dir.path()).current_dir(dir.path()));
    assert_fails_naming(&output, &["--mode", "en+"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "the study wrote into --out");
}

#[test]
fn imatrix_help_names_the_batch_sizes() {
    let text = stdout(&run(tool("imatrix").arg("--help")));
    assert!(text.contains("--batch-size"), "{text}");
    assert!(text.contains("[default: 2048]"), "{text}");
    assert!(text.contains("--ubatch-size"), "{text}");
}
