//! Pieces every tool shares: logging, progress bars, Ctrl-C handling and text input.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Sends `tracing` logs to stderr at `info` level, or as `RUST_LOG` sets.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only help on a terminal; in a log file or a pipe they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).with_target(false).init();
}

/// Returns a flag that Ctrl-C (SIGINT) and SIGTERM set, so that a tool can stop between
/// steps and let its atomic writers remove their temporary files. A second signal while the
/// first is being handled exits at once with status 130.
pub fn cancel_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = Arc::clone(&flag);
    let installed = ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        tracing::warn!("interrupted; stopping after the current step (press Ctrl-C again to stop now)");
    });
    if let Err(error) = installed {
        tracing::warn!(%error, "Ctrl-C handler not installed; an interrupt may leave a temporary file");
    }
    flag
}

/// Returns a progress bar over `total` units with a rate and an ETA, drawn on stderr.
pub fn progress_bar(total: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!("{{spinner}} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}}) {{msg}}");
    let style = ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Returns a progress bar over bytes, shown as MiB with a rate and an ETA.
pub fn bytes_progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Reads a text file as bytes and decodes it as UTF-8, replacing each invalid sequence with
/// U+FFFD (and logging how many were replaced), so that no input text stops a tool.
///
/// # Errors
/// The I/O error, with the path in its message.
pub fn read_text_lossy(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(error) => {
            let text = String::from_utf8_lossy(error.as_bytes()).into_owned();
            let replaced = text.matches('\u{FFFD}').count();
            tracing::warn!(path = %path.display(), replaced, "text is not valid UTF-8; invalid bytes were replaced with U+FFFD");
            Ok(text)
        }
    }
}

/// Builds a rayon pool of `threads` threads (all cores when `None`).
///
/// # Errors
/// The pool builder's error, as text.
pub fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool, String> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        builder = builder.num_threads(n);
    }
    builder.build().map_err(|e| format!("cannot start {threads:?} threads: {e}"))
}

/// Parses a count that must be at least 1 (`--chunks`, `-t`), so that clap names the flag
/// and the accepted values when it is 0 or not a number.
///
/// # Errors
/// A message naming the accepted values.
pub fn parse_positive(text: &str) -> Result<usize, String> {
    parse_at_least(text, 1)
}

/// Parses a count that must be at least `min`.
///
/// # Errors
/// A message naming the accepted values.
pub fn parse_at_least(text: &str, min: usize) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        Ok(_) => Err(format!("must be at least {min}")),
        Err(_) => Err(format!("'{text}' is not a whole number; expected {min} or more")),
    }
}

/// Writes `bytes` to `path` atomically: into `.<file name>.tmp-<pid>` in the same folder,
/// synced, then renamed over `path`. On failure the temporary file is removed and `path` is
/// left as it was.
///
/// # Errors
/// The I/O error, with the path in its message.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;

    let name = path.file_name().ok_or_else(|| format!("{}: the output path has no file name", path.display()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp = path.with_file_name(temp_name);

    let written = std::fs::File::create(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&temp, path));
    if let Err(error) = renamed {
        let _ = std::fs::remove_file(&temp);
        return Err(format!("cannot write {}: {error}", path.display()));
    }
    Ok(())
}

/// Returns an error naming `flag` when `output` is the same file as `input` (also through
/// links), so that no tool overwrites its own input.
///
/// # Errors
/// A message naming both paths and the flag to change.
pub fn check_not_input(input: &Path, output: &Path, flag: &str) -> Result<(), String> {
    kquant::pipeline::check_distinct_paths(input, output)
        .map_err(|_| format!("{flag} {} is the input file {}; choose another output path", output.display(), input.display()))
}
