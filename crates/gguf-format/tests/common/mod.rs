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

/// Runs `python3 -c script args...` and returns its stdout, or `None` (after a loud
/// "skipped" line) when python3 or the `gguf` package is missing and `CI` is not `true`.
///
/// # Panics
///
/// Panics when the script fails, or when python3 or `gguf` is missing and `CI=true`.
pub fn run_python(script: &str, args: &[&std::path::Path]) -> Option<String> {
    let probe = std::process::Command::new("python3").args(["-c", "import gguf, numpy"]).output();
    let available = matches!(&probe, Ok(o) if o.status.success());
    if !available {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("python3 with the gguf and numpy packages is required: pip install gguf==0.19.0 numpy");
        }
        eprintln!("=== skipped: python3 with gguf and numpy missing (pip install gguf==0.19.0 numpy) ===");
        return None;
    }

    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 ran a moment ago");
    assert!(
        output.status.success(),
        "python3 failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8(output.stdout).expect("python prints UTF-8"))
}

/// Returns the lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
