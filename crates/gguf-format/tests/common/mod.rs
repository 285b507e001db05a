//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Returns the path of the real Gemma 3 270M Q4_K_M model: `$GEMMA3_270M_GGUF`, else
/// `models/gemma-3-270m-q4_k_m.gguf` at the repository root.
///
/// When the file is missing this panics if `CI=true` and otherwise prints a loud
/// "skipped: model missing" line and returns `None`.
pub fn real_model() -> Option<PathBuf> {
    let path = std::env::var_os("GEMMA3_270M_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/gemma-3-270m-q4_k_m.gguf")
        });
    if path.is_file() {
        return Some(path);
    }

    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "model missing at {}; run scripts/fetch-model.sh",
            path.display()
        );
    }
    eprintln!(
        "=== skipped: model missing at {} (run scripts/fetch-model.sh) ===",
        path.display()
    );
    None
}

/// Runs `python3 -c script args...` and returns its stdout, or `None` (after a loud
/// "skipped" line) when python3 or the `gguf` package is missing and `CI` is not `true`.
///
/// # Panics
///
/// Panics when the script fails, or when python3 or `gguf` is missing and `CI=true`.
pub fn run_python(script: &str, args: &[&std::path::Path]) -> Option<String> {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import gguf, numpy"])
        .output();
    let available = matches!(&probe, Ok(o) if o.status.success());
    if !available {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("python3 with the gguf and numpy packages is required: pip install gguf==0.19.0 numpy");
        }
        eprintln!(
            "=== skipped: python3 with gguf and numpy missing (pip install gguf==0.19.0 numpy) ==="
        );
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
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Builds GGUF bytes field by field, for hand-made (often malformed) test files.
#[derive(Default)]
pub struct RawGguf {
    pub bytes: Vec<u8>,
}

impl RawGguf {
    /// Starts a file with the magic, `version` and the two counts.
    pub fn new(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        let mut raw = RawGguf::default();
        raw.bytes.extend_from_slice(b"GGUF");
        raw.u32(version).u64(n_tensors).u64(n_kv);
        raw
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes.push(v);
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn f32(&mut self, v: f32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends a GGUF string: u64 length, then the bytes.
    pub fn string(&mut self, s: &[u8]) -> &mut Self {
        self.u64(s.len() as u64);
        self.bytes.extend_from_slice(s);
        self
    }

    /// Appends a u32 metadata pair.
    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.string(key.as_bytes()).u32(4).u32(v)
    }

    /// Appends a tensor info with dims as signed 64-bit values.
    pub fn tensor_info(
        &mut self,
        name: &str,
        dims: &[i64],
        type_id: u32,
        offset: u64,
    ) -> &mut Self {
        self.string(name.as_bytes()).u32(dims.len() as u32);
        for &d in dims {
            self.i64(d);
        }
        self.u32(type_id).u64(offset)
    }

    /// Appends zeros up to the next multiple of `alignment`.
    pub fn pad_to(&mut self, alignment: usize) -> &mut Self {
        while self.bytes.len() % alignment != 0 {
            self.bytes.push(0);
        }
        self
    }

    /// Appends `n` little-endian f32 values counting up from `first`.
    pub fn f32_run(&mut self, first: f32, n: usize) -> &mut Self {
        for i in 0..n {
            self.f32(first + i as f32);
        }
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }
}
