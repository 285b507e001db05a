//! Names of the temporary files that atomic writes leave while they run, and the removal of
//! those left behind by processes that were killed.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Text between the destination's file name and the writer's process id in a temporary name.
const TEMP_MARKER: &str = ".tmp-";

/// Returns the temporary path an atomic write to `destination` uses in this process:
/// `.<file name>.tmp-<pid>` in the same folder.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] when `destination` has no file name (`/` or `..`).
///
/// # Examples
/// ```
/// use std::path::Path;
///
/// let temp = gguf_format::temp_path_for(Path::new("out/model.gguf"))?;
/// assert_eq!(temp, Path::new("out").join(format!(".model.gguf.tmp-{}", std::process::id())));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn temp_path_for(destination: &Path) -> io::Result<PathBuf> {
    let file_name = destination
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "output path has no file name"))?;
    let mut temp_name = temp_prefix(file_name);
    temp_name.push(std::process::id().to_string());
    Ok(destination.with_file_name(temp_name))
}

/// Removes the temporary files `.<file name>.tmp-<pid>` beside `destination` whose process
/// no longer runs, the leftovers of a writer that was killed (SIGKILL, power loss) before it
/// could clean up, and returns how many were removed.
///
/// A file is removed only when its name is exactly the prefix followed by a decimal pid, the
/// pid is not this process's, and `/proc/<pid>` does not exist. Liveness is known only on
/// Linux with `/proc` mounted; elsewhere nothing is removed. Files that cannot be removed
/// are skipped, since the write that follows does not depend on them.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] when `destination` has no file name; an unreadable folder
/// counts as having no leftovers.
pub fn remove_stale_temp_files(destination: &Path) -> io::Result<usize> {
    let file_name = destination
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "output path has no file name"))?;
    if !can_tell_liveness() {
        return Ok(0);
    }

    let folder = match destination.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let Ok(entries) = fs::read_dir(folder) else {
        return Ok(0);
    };

    let prefix = temp_prefix(file_name);
    let own_pid = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let Some(pid) = temp_file_pid(&entry.file_name(), &prefix) else {
            continue;
        };
        if pid == own_pid || process_exists(pid) {
            continue;
        }
        if fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Returns `.<file name>.tmp-`.
fn temp_prefix(file_name: &OsStr) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(file_name);
    prefix.push(TEMP_MARKER);
    prefix
}

/// Returns the pid of a temporary file name made from `prefix`, or `None` for any other name.
fn temp_file_pid(name: &OsStr, prefix: &OsStr) -> Option<u32> {
    let name = name.to_str()?;
    let digits = name.strip_prefix(prefix.to_str()?)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(target_os = "linux")]
fn can_tell_liveness() -> bool {
    Path::new("/proc/self").exists()
}

#[cfg(not(target_os = "linux"))]
fn can_tell_liveness() -> bool {
    false
}

fn process_exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_is_read_only_from_exact_temp_names() {
        let prefix = temp_prefix(OsStr::new("m.gguf"));
        assert_eq!(temp_file_pid(OsStr::new(".m.gguf.tmp-123"), &prefix), Some(123));
        assert_eq!(temp_file_pid(OsStr::new(".m.gguf.tmp-"), &prefix), None);
        assert_eq!(temp_file_pid(OsStr::new(".m.gguf.tmp-12x"), &prefix), None);
        assert_eq!(temp_file_pid(OsStr::new(".m.gguf.tmp-+12"), &prefix), None);
        assert_eq!(temp_file_pid(OsStr::new(".n.gguf.tmp-123"), &prefix), None);
        assert_eq!(temp_file_pid(OsStr::new("m.gguf"), &prefix), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn removes_only_leftovers_of_dead_processes() {
        let dir = tempfile::tempdir().unwrap();
        let destination = dir.path().join("m.gguf");

        // A pid above the kernel's maximum (2^22) never runs; this process's own and pid 1 do.
        let dead = dir.path().join(".m.gguf.tmp-99999999");
        let alive = dir.path().join(".m.gguf.tmp-1");
        let own = temp_path_for(&destination).unwrap();
        let other = dir.path().join(".other.gguf.tmp-99999999");
        for path in [&dead, &alive, &own, &other] {
            fs::write(path, b"partial").unwrap();
        }

        assert_eq!(remove_stale_temp_files(&destination).unwrap(), 1);
        assert!(!dead.exists());
        assert!(alive.exists() && own.exists() && other.exists());
    }
}
