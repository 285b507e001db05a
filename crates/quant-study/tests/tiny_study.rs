//! A tiny study on the real Gemma 3 270M end to end: interrupted, resumed, then rerun from
//! the cache.
//!
//! The model is `models/gemma-3-270m-q4_k_m.gguf` or the path in `GEMMA3_270M_GGUF`. Without
//! it the test prints `skipped: model missing`, and fails when `CI=true`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kquant::plan::FileType;
use quant_study::{run_study, ImatrixMode, Quantization, StudyError, StudySpec, Variant};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Returns the model path, or `None` after printing why the test is skipped.
fn model_path() -> Option<PathBuf> {
    let path = std::env::var_os("GEMMA3_270M_GGUF").map(PathBuf::from).unwrap_or_else(|| repo_root().join("models/gemma-3-270m-q4_k_m.gguf"));
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("real model missing at {}; run scripts/fetch-model.sh or set GEMMA3_270M_GGUF", path.display());
    }
    eprintln!("skipped: model missing at {} (run scripts/fetch-model.sh or set GEMMA3_270M_GGUF)", path.display());
    None
}

/// Q4_0 `--pure` without and with an English imatrix, 2 chunks everywhere, KL divergence on 1.
fn tiny_spec(model: PathBuf, out: PathBuf) -> StudySpec {
    let mut spec = StudySpec::reference(model, repo_root().join("data"), out);
    spec.calibration.retain(|c| c.name == "en");
    spec.calibration[0].chunks = Some(2);
    spec.modes = vec![ImatrixMode::None, ImatrixMode::Merged { name: "en".into(), sets: vec!["en".into()] }];
    spec.quantizations = vec![Quantization { file_type: FileType::Q4_0, variant: Variant::Pure }];
    spec.eval_chunks = 2;
    spec.kld_chunks = 1;
    spec
}

#[test]
fn tiny_study_resumes_and_caches() {
    let Some(model) = model_path() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("study");
    let spec = tiny_spec(model, out.clone());

    // First run: interrupt as soon as the second cell starts quantizing.
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    let mut on_progress = |p: &quant_study::StudyProgress| {
        assert!(p.done <= p.total, "progress {}/{} overshoots", p.done, p.total);
        if p.step == "quantize Q4_0-pure-en" {
            flag.store(true, Ordering::SeqCst);
        }
    };
    let interrupted = run_study(&spec, Some(cancel), &mut on_progress);
    assert!(matches!(interrupted, Err(StudyError::Cancelled)), "{interrupted:?}");
    assert!(!out.join("results.md").exists(), "an interrupted study writes no results");

    // Second run: resumes, computing only the second cell.
    let resumed = run_study(&spec, None, &mut |_| {}).unwrap();
    assert!(resumed.recomputed.iter().all(|s| s.contains("Q4_0-pure-en")), "resumed run recomputed {:?}", resumed.recomputed);
    assert!(resumed.recomputed.contains(&"quantize Q4_0-pure-en".to_owned()), "{:?}", resumed.recomputed);
    assert_eq!(resumed.recomputed.len(), 3, "quantize + 2 texts: {:?}", resumed.recomputed);

    for name in ["results.md", "results.json", "results.csv", "manifest.json", "charts/ppl-wiki.png", "charts/ppl-ja-wiki.png"] {
        let path = out.join(name);
        assert!(std::fs::metadata(&path).map(|m| m.len() > 0).unwrap_or(false), "{} missing or empty", path.display());
    }
    let png = std::fs::read(out.join("charts/ppl-wiki.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "chart is a PNG");

    assert_eq!(resumed.cells.len(), 2);
    assert_eq!(resumed.base.len(), 2);
    for cell in &resumed.cells {
        assert_eq!(cell.evals.len(), 2, "{}", cell.label);
        for eval in &cell.evals {
            assert!(eval.ppl.is_finite(), "{} on {}: PPL {}", cell.label, eval.text, eval.ppl);
            assert!(eval.ppl > 1.0, "{} on {}: PPL {}", cell.label, eval.text, eval.ppl);
            assert_eq!(eval.n_tokens, 2 * 255, "{} on {}", cell.label, eval.text);
            let kld = eval.kld.as_ref().expect("KL divergence computed");
            assert!(kld.kld.value > 0.0, "{} on {}: KLD {}", cell.label, eval.text, kld.kld.value);
        }
    }

    // The imatrix lowers Q4_0's perplexity on English text.
    let none = resumed.cells.iter().find(|c| c.mode == "none").unwrap();
    let en = resumed.cells.iter().find(|c| c.mode == "en").unwrap();
    assert!(en.evals[0].ppl < none.evals[0].ppl, "en {} vs none {}", en.evals[0].ppl, none.evals[0].ppl);
    assert_eq!(resumed.paired.len(), 2, "none vs en on two texts");
    assert!(resumed.paired.iter().all(|p| p.base_mode == "none" && p.candidate_mode == "en"));

    let markdown = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(markdown.contains("| Q4_0-pure | en |"), "{markdown}");
    assert!(markdown.contains("## Paired comparisons"), "{markdown}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 + 2 * 2, "header, base on 2 texts, 2 cells on 2 texts:\n{csv}");
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["inputs"][0]["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(manifest["base"]["from_quantized"], serde_json::Value::Bool(true));

    // Third run: everything from the cache, same figures.
    let cached = run_study(&spec, None, &mut |_| {}).unwrap();
    assert!(cached.recomputed.is_empty(), "rerun recomputed {:?}", cached.recomputed);
    for (a, b) in cached.cells.iter().zip(&resumed.cells) {
        assert_eq!(a.evals[0].ppl, b.evals[0].ppl, "{}", a.label);
        assert_eq!(a.model_sha256, b.model_sha256, "{}", a.label);
    }
    assert!(!out.join("models/Q4_0-pure-en.gguf").exists(), "quantized files are removed unless keep_models");
}
