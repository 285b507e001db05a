//! A tool stopped by SIGINT or SIGKILL leaves nothing at its output path and its input
//! unchanged; a killed writer's temporary file is recognisable by name, and the next write to
//! the same path removes it.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{real_model, sha256_file, tool};

/// How long a tool may take to reach the point where the test interrupts it.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// How often the test looks at the child's progress.
const POLL: Duration = Duration::from_millis(20);

/// The signals a test sends, by the name `kill` takes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Signal {
    Int,
    Kill,
}

/// Sends `signal` to the child's own pid.
fn send(child: &mut Child, signal: Signal) {
    match signal {
        Signal::Kill => child.kill().expect("SIGKILL sent"),
        Signal::Int => {
            let status = Command::new("kill").arg("-INT").arg(child.id().to_string()).status().expect("kill runs");
            assert!(status.success(), "kill -INT {} failed", child.id());
        }
    }
}

/// Returns the temporary name a writer with `pid` uses for `output`.
fn temp_name(output: &Path, pid: u32) -> PathBuf {
    let name = output.file_name().unwrap().to_string_lossy();
    output.with_file_name(format!(".{name}.tmp-{pid}"))
}

/// Waits until `ready` holds, failing if the child exits first or the time runs out.
fn wait_until(child: &mut Child, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the tool exited ({status}) before {what}");
        }
        assert!(started.elapsed() < START_TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

/// Interrupts `quantize` while it writes the F32 base of the real model, and checks what it
/// leaves behind.
fn interrupt_quantize(signal: Signal) {
    let Some(model) = real_model(&format!("quantize_{signal:?}")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("base.gguf");
    let model_sha = sha256_file(&model);

    let mut child = tool("quantize")
        .args(["--allow-requantize"])
        .arg(&model)
        .arg(&output)
        .args(["F32", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let temp = temp_name(&output, child.id());

    // Mid-write: the temporary file exists and has tensor data in it.
    wait_until(&mut child, "writing 1 MiB of output", || std::fs::metadata(&temp).map(|m| m.len() > 1 << 20).unwrap_or(false));
    send(&mut child, signal);
    let result = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);

    assert!(!result.status.success(), "quantize succeeded despite {signal:?}");
    assert!(!stderr.contains("panicked"), "quantize panicked:\n{stderr}");
    assert!(!output.exists(), "{signal:?} left a file at the output path");
    assert_eq!(sha256_file(&model), model_sha, "the input changed");

    match signal {
        Signal::Int => {
            assert!(stderr.contains("cancelled"), "no cancellation message:\n{stderr}");
            assert_eq!(common::folder_names(dir.path()), Vec::<String>::new(), "SIGINT left a temporary file");
        }
        Signal::Kill => {
            assert!(temp.exists(), "SIGKILL left no recognisable temporary file; folder has {:?}", common::folder_names(dir.path()));

            // The next run to the same path removes the dead writer's leftover.
            let tiny = common::repo_root().join("crates/gemma2-model/tests/data/hf-tiny/gemma2-tiny");
            let rerun = common::run(tool("quantize").arg(&tiny).arg(&output).args(["Q8_0", "1"]));
            assert!(rerun.status.success(), "rerun failed: {}", common::stderr(&rerun));
            assert_eq!(common::folder_names(dir.path()), vec!["base.gguf".to_owned()], "the stale temporary file is still there");
        }
    }
}

#[test]
fn quantize_sigint_mid_write_leaves_nothing() {
    interrupt_quantize(Signal::Int);
}

#[test]
fn quantize_sigkill_leaves_named_temporary() {
    interrupt_quantize(Signal::Kill);
}

/// Collects stdout of a child in the background, so that the test can wait for a chunk line.
fn capture_stdout(child: &mut Child) -> Arc<Mutex<Vec<u8>>> {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = Arc::clone(&buffer);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 256];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buffer
}

/// Starts `imatrix` on the real model with saves only at the end, and interrupts it after its
/// first chunk.
fn interrupt_imatrix(signal: Signal) {
    let Some(model) = real_model(&format!("imatrix_{signal:?}")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("calibration.txt");
    std::fs::copy(common::test_data("wiki-head.raw"), &text).unwrap();
    let output = dir.path().join("imatrix.gguf");
    let text_sha = sha256_file(&text);

    let mut child = tool("imatrix")
        .arg("-m")
        .arg(&model)
        .arg("-f")
        .arg(&text)
        .arg("-o")
        .arg(&output)
        .args(["-c", "64", "--chunks", "100", "--output-frequency", "1000", "-t", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let printed = capture_stdout(&mut child);
    wait_until(&mut child, "the first chunk", || printed.lock().unwrap().starts_with(b"[1]"));
    send(&mut child, signal);
    let result = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);

    assert!(!result.status.success(), "imatrix succeeded despite {signal:?}");
    assert!(!stderr.contains("panicked"), "imatrix panicked:\n{stderr}");
    if signal == Signal::Int {
        assert_eq!(result.status.code(), Some(130), "SIGINT should exit with 130:\n{stderr}");
        assert!(stderr.contains("interrupted; nothing was written"), "no interruption message:\n{stderr}");
    }
    assert!(!output.exists(), "{signal:?} left a file at the output path");
    assert_eq!(common::folder_names(dir.path()), vec!["calibration.txt".to_owned()], "{signal:?} left files");
    assert_eq!(sha256_file(&text), text_sha, "the input changed");
}

#[test]
fn imatrix_sigint_stops_after_the_chunk_without_output() {
    interrupt_imatrix(Signal::Int);
}

#[test]
fn imatrix_sigkill_leaves_no_output() {
    interrupt_imatrix(Signal::Kill);
}

/// The temporary file of an imatrix writer that was killed mid-write (pid 99999999, above the
/// kernel's pid limit, never runs) is removed by the next save to the same path; that of a
/// running process is kept.
#[test]
fn imatrix_save_removes_stale_temporaries() {
    let source = common::repo_root().join("crates/kquant/tests/data/llama-quantize/imatrix-en.gguf");
    for output_name in ["merged.gguf", "merged.dat"] {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join(output_name);
        let stale = temp_name(&output, 99_999_999);
        let live = temp_name(&output, 1);
        std::fs::write(&stale, b"partial imatrix").unwrap();
        std::fs::write(&live, b"another writer's").unwrap();

        let result = common::run(tool("imatrix").arg("--in-file").arg(&source).arg("-o").arg(&output));
        assert!(result.status.success(), "imatrix --in-file failed: {}", common::stderr(&result));
        assert!(output.is_file());
        assert!(!stale.exists(), "{output_name}: the stale temporary file is still there");
        assert!(live.exists(), "{output_name}: the temporary file of a running process was removed");
    }
}
