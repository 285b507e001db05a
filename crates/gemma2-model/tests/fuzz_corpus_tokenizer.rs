//! Replays every input of the committed `tokenizer_bytes` fuzz corpus through the fuzz
//! target's own checks: encoding with and without BOS and special-token parsing, then
//! decoding, must never panic and must give the input back.
//!
//! Needs the real model for its vocabulary, found through `GEMMA3_270M_GGUF`, else at
//! `models/gemma-3-270m-q4_k_m.gguf`. Without it the test fails when `CI=true` and is
//! skipped with a loud message otherwise.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use gemma2_model::tokenizer::GemmaTokenizer;
use gguf_format::GgufFile;

#[path = "../../../fuzz/checks/tokenizer_bytes.rs"]
mod checks;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_path() -> Option<PathBuf> {
    let path = std::env::var_os("GEMMA3_270M_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models/gemma-3-270m-q4_k_m.gguf"));
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "model missing at {}; run scripts/fetch-model.sh or set GEMMA3_270M_GGUF",
            path.display()
        );
    }
    eprintln!(
        "\n*** skipped: model missing at {} (set GEMMA3_270M_GGUF) ***\n",
        path.display()
    );
    None
}

#[test]
fn tokenizer_corpus_round_trips() {
    let Some(path) = model_path() else {
        return;
    };
    let file = GgufFile::open(&path).expect("open the model GGUF");
    let tokenizer = GemmaTokenizer::from_gguf_metadata(file.metadata()).expect("build tokenizer");

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/tokenizer_bytes");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();

        let outcome =
            std::panic::catch_unwind(AssertUnwindSafe(|| checks::check(&tokenizer, &bytes)));
        assert!(outcome.is_ok(), "{} broke a check", path.display());
        replayed += 1;
    }
    assert!(replayed >= 5, "only {replayed} inputs in {}", dir.display());
}
