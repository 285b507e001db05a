//! The checks of the `tokenizer_bytes` fuzz target, shared with the corpus replay test in
//! `crates/gemma2-model/tests/fuzz_corpus_tokenizer.rs`.
//!
//! Arbitrary bytes are encoded with every combination of `add_bos` and `parse_special`,
//! then decoded. Nothing may panic, and every encoding must succeed because the Gemma
//! vocabulary has BOS, EOS and all 256 byte tokens. Every id must lie inside the
//! vocabulary. Decoding must give the input back, up to `▁` and spaces where the input is
//! not plain UTF-8.

use gemma2_model::tokenizer::{GemmaTokenizer, SPACE_ESCAPE};

/// Encodes and decodes `data` four ways and panics on any broken property.
pub fn check(tokenizer: &GemmaTokenizer, data: &[u8]) {
    // Decoding turns every `▁` of a normal piece into a space, so input that already contains
    // `▁` cannot come back unchanged. Invalid UTF-8 cannot either: as in llama.cpp, spaces
    // become `▁` before characters are cut by lead byte, so a truncated character can take
    // in part of a `▁` and give it back as raw bytes. Both sides agree once every `▁` is a
    // space again.
    let exact = !contains(data, SPACE_ESCAPE.as_bytes()) && std::str::from_utf8(data).is_ok();
    let unescaped = unescape(data);

    for add_bos in [false, true] {
        for parse_special in [false, true] {
            let ids = tokenizer
                .encode_bytes(data, add_bos, parse_special)
                .unwrap_or_else(|e| {
                    panic!("encode (add_bos {add_bos}, special {parse_special}): {e}")
                });

            let n_vocab = tokenizer.n_vocab();
            assert!(
                ids.iter().all(|&id| (id as usize) < n_vocab),
                "id past the vocabulary of {n_vocab}"
            );

            // Strip the BOS (and EOS, for vocabularies that add it) the encoder added.
            let mut body = &ids[..];
            if add_bos {
                assert_eq!(body.first().copied(), tokenizer.bos_id(), "missing BOS");
                body = &body[1..];
                if tokenizer.vocab().add_eos {
                    assert_eq!(body.last().copied(), tokenizer.eos_id(), "missing EOS");
                    body = &body[..body.len() - 1];
                }
            }
            if !add_bos && data.is_empty() {
                assert!(ids.is_empty(), "empty input gave {ids:?}");
            }

            let bytes = tokenizer
                .decode_bytes(body)
                .expect("decode ids the encoder produced");
            let text = tokenizer
                .decode(body)
                .expect("decode ids the encoder produced");
            assert_eq!(
                unescape(&bytes),
                unescaped,
                "round trip (add_bos {add_bos}, special {parse_special}) of {data:?} via {ids:?}"
            );
            if exact {
                assert_eq!(bytes, data, "exact round trip of {data:?} via {ids:?}");
                assert_eq!(text, String::from_utf8_lossy(data));
            }
        }
    }
}

/// Returns whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Returns `bytes` with every `▁` turned into a space.
fn unescape(bytes: &[u8]) -> Vec<u8> {
    let escape = SPACE_ESCAPE.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut pos = 0;
    while pos < bytes.len() {
        if bytes[pos..].starts_with(escape) {
            out.push(b' ');
            pos += escape.len();
        } else {
            out.push(bytes[pos]);
            pos += 1;
        }
    }
    out
}
