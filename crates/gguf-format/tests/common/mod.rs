//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Returns the path of the real Gemma 3 270M Q4_K_M model: `$GEMMA3_270M_GGUF`, else
/// `models/gemma-3-270m-q4_k_m.gguf` at the repository root.
///
/// When the file is missing this panics if `CI=true` and otherwise prints a loud
/// "skipped: model missing" line and returns `None`.
pub fn real_model() -> Option<PathBuf> {
    let path = std::env::var_os("GEMMA3_270M_GGUF").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/gemma-3-270m-q4_k_m.gguf")
    });
    if path.is_file() {
        return Some(path);
    }

    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("model missing at {}; run scripts/fetch-model.sh", path.display());
    }
    eprintln!("=== skipped: model missing at {} (run scripts/fetch-model.sh) ===", path.display());
    None
}
