//! Encodes arbitrary bytes with the Gemma 3 tokenizer, with and without BOS and
//! special-token parsing, then decodes them. Nothing may panic and decoding must give the
//! input back; see `checks/tokenizer_bytes.rs`.
//!
//! The tokenizer is built once per process from the real model's GGUF metadata, found
//! through `GEMMA3_270M_GGUF`, else at `models/gemma-3-270m-q4_k_m.gguf`.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use gemma2_model::tokenizer::GemmaTokenizer;
use libfuzzer_sys::fuzz_target;

#[path = "../checks/tokenizer_bytes.rs"]
mod checks;

/// Builds the tokenizer on first use; later calls return the same one.
fn tokenizer() -> &'static GemmaTokenizer {
    static TOKENIZER: OnceLock<GemmaTokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let path = std::env::var_os("GEMMA3_270M_GGUF")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/gemma-3-270m-q4_k_m.gguf")
            });
        let file = gguf_format::GgufFile::open(&path).unwrap_or_else(|e| {
            panic!(
                "open {} (run scripts/fetch-model.sh or set GEMMA3_270M_GGUF): {e}",
                path.display()
            )
        });
        GemmaTokenizer::from_gguf_metadata(file.metadata()).expect("build the Gemma tokenizer")
    })
}

fuzz_target!(|data: &[u8]| {
    checks::check(tokenizer(), data);
});
