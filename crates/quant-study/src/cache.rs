//! Content hashes, cache keys and atomic writes, which make a study resumable.
//!
//! Every step stores its result next to a record holding its cache key, the sha256 of
//! its inputs and parameters. A later run whose key matches reuses the result, so an
//! interrupted study recomputes only the steps that had not finished.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::StudyError;

/// Bytes read per call while hashing a file.
const HASH_BUFFER_BYTES: usize = 1 << 20;

/// Returns the lower-case hex sha256 of a file's contents.
///
/// # Errors
/// [`StudyError::Io`] when the file cannot be read.
pub fn sha256_file(path: &Path) -> Result<String, StudyError> {
    let mut file = File::open(path).map_err(|e| StudyError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; HASH_BUFFER_BYTES];
    loop {
        let read = file.read(&mut buffer).map_err(|e| StudyError::io(path, e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Returns the sha256 of a step's inputs and parameters, given as `name=value` parts in a
/// fixed order, which is the step's cache key.
pub fn cache_key(parts: &[(&str, &str)]) -> String {
    let mut hasher = Sha256::new();
    for (name, value) in parts {
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
        hasher.update(value.as_bytes());
        hasher.update([0u8]);
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` through a temporary file in the same folder, synced and then
/// renamed, so that `path` is either its old content or the complete new one.
///
/// # Errors
/// [`StudyError::Io`] when the folder cannot be created or any write, sync or rename fails;
/// the temporary file is removed on failure.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StudyError> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).map_err(|e| StudyError::io(folder, e))?;

    let temporary = temporary_path(path);
    let result = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if let Err(error) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(StudyError::io(path, error));
    }
    Ok(())
}

/// Returns a hidden temporary name next to `path`, unique to this process.
pub(crate) fn temporary_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes `value` as pretty JSON with [`write_atomic`].
///
/// # Errors
/// [`StudyError::Json`] when encoding fails and the errors of [`write_atomic`].
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StudyError> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| StudyError::Json { path: path.into(), source: e })?;
    text.push(b'\n');
    write_atomic(path, &text)
}

/// A cached step result: the key it was computed for and its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cached<T> {
    /// The step's cache key.
    pub key: String,
    /// Seconds the step took when it was computed.
    pub seconds: f64,
    /// The result.
    pub value: T,
}

/// Reads a cached record at `path` and returns it when its key equals `key`.
///
/// A missing file, an unreadable record or another key all mean "not cached" (the step
/// runs again and overwrites the record), so that a damaged cache never stops a study.
pub fn read_cached<T: DeserializeOwned>(path: &Path, key: &str) -> Option<Cached<T>> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice::<Cached<T>>(&bytes) {
        Ok(cached) if cached.key == key => Some(cached),
        Ok(_) => {
            tracing::info!(path = %path.display(), "cached result was made from other inputs; recomputing");
            None
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cached result is unreadable; recomputing");
            None
        }
    }
}
