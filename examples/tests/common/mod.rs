//! Helpers the tool tests share: finding the built tools, the real model and test data, and
//! hashing files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

/// Returns the path of a built tool: the test binary lives in `target/<profile>/deps`, the
/// examples in `target/<profile>/examples`.
pub fn tool_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile> folder");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.is_file(),
        "tool {name} not built at {}; run `cargo test -p gemma-quant-examples --release`, which builds the examples, or build them first with `cargo build --release --examples` (a `--test` filter builds no examples)",
        path.display()
    );
    path
}

/// Returns a command for the tool `name`, with logs reduced to warnings.
pub fn tool(name: &str) -> Command {
    let mut command = Command::new(tool_path(name));
    command.env("RUST_LOG", "warn");
    command
}

/// Runs a command and returns its output.
pub fn run(command: &mut Command) -> Output {
    command.output().expect("tool starts")
}

/// Returns stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Returns stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Returns the repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository root").to_path_buf()
}

/// Returns a file under `examples/tests/data`.
pub fn test_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// Returns the real Gemma 3 270M GGUF (env `GEMMA3_270M_GGUF`, else
/// `models/gemma-3-270m-q4_k_m.gguf`), or `None` after a loud skip line when it is missing.
///
/// # Panics
/// When the model is missing and env `CI` is `true`: CI must run these tests.
pub fn real_model(test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("GEMMA3_270M_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models/gemma-3-270m-q4_k_m.gguf"));
    if path.is_file() {
        return Some(path);
    }
    let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    assert!(!ci, "{test}: the real model is missing at {} and CI=true; run scripts/fetch-model.sh", path.display());
    eprintln!("{test}: skipped: model missing ({}); run scripts/fetch-model.sh or set GEMMA3_270M_GGUF", path.display());
    None
}

/// Returns the hex sha256 of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Returns the hex sha256 of a file's contents.
pub fn sha256_file(path: &Path) -> String {
    sha256(&std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())))
}

/// Returns the names in a folder, sorted.
pub fn folder_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Asserts that a failed run exited non-zero without a panic and that its error message (the
/// first paragraph of stderr: one line, or clap's line plus the arguments it lists) contains
/// every one of `needles`.
pub fn assert_fails_naming(output: &Output, needles: &[&str]) {
    let text = stderr(output);
    assert!(!output.status.success(), "expected failure, got success; stderr:\n{text}");
    assert!(!text.contains("panicked"), "the tool panicked:\n{text}");
    let message: Vec<&str> = text.lines().skip_while(|line| line.trim().is_empty()).take_while(|line| !line.trim().is_empty()).collect();
    let message = message.join("\n");
    for needle in needles {
        assert!(message.contains(needle), "error message {message:?} does not name {needle:?}; stderr:\n{text}");
    }
}
