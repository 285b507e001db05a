//! Checks the tokenizer built from the real Gemma 3 270M GGUF against llama.cpp's token ids.
//!
//! The model is found through `GEMMA3_270M_GGUF`, else at `models/gemma-3-270m-q4_k_m.gguf`
//! (`scripts/fetch-model.sh` downloads it). Without it every test here fails when `CI=true`
//! and prints a "skipped: model missing" line otherwise.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use gemma2_model::tokenizer::{
    tokenizer_config_json_from_vocab, tokenizer_json_from_vocab, trim_prompt_file, GemmaTokenizer,
    TokenType,
};
use gguf_format::GgufFile;
use serde_json::Value as Json;

/// Tokens llama-perplexity reports for `wiki.test.raw` with BOS (llama.cpp b11312), after its
/// `-f` option drops the file's final newline.
const WIKI_TEST_TOKENS_WITH_BOS: usize = 295_215;

const GOLDEN: &str = include_str!("data/tokenizer-golden.jsonl");

/// Token counts and id hashes of whole texts in `data/` from llama-tokenize.
const FULL_TEXTS: &str = include_str!("data/tokenizer-full-texts.json");

/// Hashes token ids with 64-bit FNV-1a over their little-endian bytes.
fn fnv1a64(ids: &[u32]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    for byte in ids.iter().flat_map(|id| id.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_path() -> Option<PathBuf> {
    let path = std::env::var_os("GEMMA3_270M_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models/gemma-3-270m-q4_k_m.gguf"));
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "model missing at {}; run scripts/fetch-model.sh or set GEMMA3_270M_GGUF",
            path.display()
        );
    }
    eprintln!(
        "\n*** skipped: model missing at {} (set GEMMA3_270M_GGUF) ***\n",
        path.display()
    );
    None
}

fn gguf() -> Option<&'static GgufFile> {
    static FILE: OnceLock<Option<GgufFile>> = OnceLock::new();
    FILE.get_or_init(|| model_path().map(|p| GgufFile::open(&p).expect("open the model GGUF")))
        .as_ref()
}

fn tokenizer() -> Option<&'static GemmaTokenizer> {
    static TOKENIZER: OnceLock<Option<GemmaTokenizer>> = OnceLock::new();
    TOKENIZER
        .get_or_init(|| {
            let file = gguf()?;
            let start = Instant::now();
            let tokenizer = GemmaTokenizer::from_gguf_metadata(file.metadata())
                .expect("build the tokenizer from GGUF metadata");
            eprintln!(
                "built the tokenizer from GGUF metadata in {:.2?}",
                start.elapsed()
            );
            Some(tokenizer)
        })
        .as_ref()
}

struct GoldenCase {
    line: usize,
    text: String,
    ids: Vec<u32>,
    ids_no_parse_special: Vec<u32>,
}

fn golden_cases() -> Vec<GoldenCase> {
    let ids_of = |value: &Json| -> Vec<u32> {
        value
            .as_array()
            .expect("ids array")
            .iter()
            .map(|id| id.as_u64().expect("integer id") as u32)
            .collect()
    };
    GOLDEN
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let record: Json = serde_json::from_str(line).expect("golden line is JSON");
            let ids = ids_of(&record["ids"]);
            let ids_no_parse_special = match record.get("ids_no_parse_special") {
                Some(value) => ids_of(value),
                None => ids.clone(),
            };
            GoldenCase {
                line: index + 1,
                text: record["text"].as_str().expect("text").to_string(),
                ids,
                ids_no_parse_special,
            }
        })
        .collect()
}

/// Encodes every golden text and lists the lines whose ids differ from llama.cpp's.
fn golden_mismatches(tokenizer: &GemmaTokenizer, parse_special: bool) -> Vec<String> {
    let mut mismatches = Vec::new();
    for case in golden_cases() {
        let expected = if parse_special {
            &case.ids
        } else {
            &case.ids_no_parse_special
        };
        let got = tokenizer
            .encode(&case.text, false, parse_special)
            .expect("encode");
        if &got != expected {
            let first_diff = got.iter().zip(expected).position(|(a, b)| a != b);
            mismatches.push(format!(
                "line {}: {:?}\n  expected {} ids {:?}\n  got      {} ids {:?}\n  first difference at {:?}",
                case.line,
                truncate(&case.text),
                expected.len(),
                &expected[..expected.len().min(24)],
                got.len(),
                &got[..got.len().min(24)],
                first_diff,
            ));
        }
    }
    mismatches
}

fn truncate(text: &str) -> String {
    text.chars().take(60).collect()
}

#[test]
fn golden_ids_with_special_parsing() {
    let Some(tokenizer) = tokenizer() else { return };
    let mismatches = golden_mismatches(tokenizer, true);
    assert!(
        mismatches.is_empty(),
        "{} lines differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn golden_ids_without_special_parsing() {
    let Some(tokenizer) = tokenizer() else { return };
    let mismatches = golden_mismatches(tokenizer, false);
    assert!(
        mismatches.is_empty(),
        "{} lines differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn golden_texts_round_trip() {
    let Some(tokenizer) = tokenizer() else { return };
    for case in golden_cases() {
        for parse_special in [true, false] {
            let ids = tokenizer.encode(&case.text, false, parse_special).unwrap();
            let decoded = tokenizer.decode(&ids).unwrap();
            assert_eq!(
                decoded, case.text,
                "line {} (parse_special {parse_special})",
                case.line
            );
        }
    }
}

#[test]
fn bos_added_on_request() {
    let Some(tokenizer) = tokenizer() else { return };
    assert_eq!(tokenizer.bos_id(), Some(2));
    assert_eq!(tokenizer.eos_id(), Some(1));
    assert!(tokenizer.add_bos());
    assert_eq!(tokenizer.n_vocab(), 262_144);
    assert_eq!(
        tokenizer.encode("Hello world", true, false).unwrap(),
        [2, 9259, 1902]
    );
    assert_eq!(tokenizer.encode("", true, false).unwrap(), [2]);
    assert_eq!(
        tokenizer.encode("", false, false).unwrap(),
        Vec::<u32>::new()
    );
}

#[test]
fn wiki_test_raw_token_count() {
    let Some(tokenizer) = tokenizer() else { return };
    let path = repo_root().join("data/wiki.test.raw");
    let text = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "read {}: {e}; the evaluation texts belong in data/",
            path.display()
        )
    });

    let start = Instant::now();
    let ids = tokenizer
        .encode_bytes(trim_prompt_file(&text), true, false)
        .unwrap();
    eprintln!(
        "tokenized {} ({} bytes) into {} tokens in {:.2?}",
        path.display(),
        text.len(),
        ids.len(),
        start.elapsed()
    );
    assert_eq!(ids.len(), WIKI_TEST_TOKENS_WITH_BOS);
    assert_eq!(ids[0], 2);

    // The dropped newline is the last token of the untrimmed text.
    let untrimmed = tokenizer.encode_bytes(&text, true, false).unwrap();
    assert_eq!(untrimmed.len(), WIKI_TEST_TOKENS_WITH_BOS + 1);
}

#[test]
fn full_texts_match_llama_tokenize() {
    let Some(tokenizer) = tokenizer() else { return };
    let expected: Json = serde_json::from_str(FULL_TEXTS).unwrap();
    let files = expected.as_object().unwrap();
    assert_eq!(files.len(), 4);

    for (name, record) in files {
        let path = repo_root().join("data").join(name);
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        for (parse_special, suffix) in [(true, ""), (false, "_no_parse_special")] {
            let ids = tokenizer.encode_bytes(&text, false, parse_special).unwrap();
            let n_tokens = record[format!("n_tokens{suffix}")].as_u64().unwrap() as usize;
            let hash = record[format!("fnv1a64{suffix}")].as_str().unwrap();
            assert_eq!(
                ids.len(),
                n_tokens,
                "{name} (parse_special {parse_special})"
            );
            assert_eq!(
                format!("{:016x}", fnv1a64(&ids)),
                hash,
                "{name} (parse_special {parse_special})"
            );
        }
    }
}

/// Gemma's whitespace runs are user-defined pieces matched before the merges: six tabs and
/// `test` are the 6-tab piece and `test`, not two 3-tab pieces and `▁test`.
#[test]
fn whitespace_runs_match_user_defined_pieces() {
    let Some(tokenizer) = tokenizer() else { return };
    assert_eq!(tokenizer.token_to_piece(2181), Some("test"));
    assert_eq!(
        tokenizer.encode("\t\t\t\t\t\ttest", true, false).unwrap(),
        [2, 255973, 2181]
    );
    assert_eq!(tokenizer.token_to_piece(255973), Some("\t\t\t\t\t\t"));
    assert_eq!(tokenizer.token_type(255973), Some(TokenType::UserDefined));

    // A run longer than the longest piece (31 spaces) takes the longest piece first.
    let ids = tokenizer.encode(&" ".repeat(40), false, false).unwrap();
    assert_eq!(ids, [167, 145]);
    assert_eq!(tokenizer.decode(&ids).unwrap(), " ".repeat(40));
}

#[test]
fn invalid_utf8_becomes_byte_tokens() {
    let Some(tokenizer) = tokenizer() else { return };
    let byte = |b: u8| {
        let piece = format!("<0x{b:02X}>");
        (0..tokenizer.n_vocab() as u32)
            .find(|&id| tokenizer.token_to_piece(id) == Some(piece.as_str()))
            .unwrap()
    };
    assert_eq!(
        tokenizer.encode_bytes(b"\xff", false, false).unwrap(),
        [byte(0xff)]
    );

    // 0xC3 announces a 2-byte character, so llama.cpp cuts "\xC3A" as one invalid character
    // and emits both bytes as byte tokens, 'A' included.
    let ids = tokenizer.encode_bytes(b"\xC3A b", false, false).unwrap();
    let tail = tokenizer.encode(" b", false, false).unwrap();
    let mut expected = vec![byte(0xC3), byte(b'A')];
    expected.extend(tail);
    assert_eq!(ids, expected);
    assert_eq!(tokenizer.decode_bytes(&ids).unwrap(), b"\xC3A b");
}

#[test]
fn decode_rejects_out_of_range_id() {
    let Some(tokenizer) = tokenizer() else { return };
    let error = tokenizer.decode(&[9259, 262_144]).unwrap_err();
    assert!(error.to_string().contains("262144"), "{error}");
}

#[test]
fn gguf_metadata_export_matches_file() {
    let (Some(file), Some(tokenizer)) = (gguf(), tokenizer()) else {
        return;
    };
    let exported = tokenizer.gguf_metadata();
    assert_eq!(exported.len(), 12);
    for (key, value) in &exported {
        let in_file = file
            .metadata()
            .get(key)
            .unwrap_or_else(|| panic!("{key} not in the file"));
        assert_eq!(value, in_file, "{key}");
    }
}

#[test]
fn tokenizer_json_round_trip_keeps_ids() {
    let Some(tokenizer) = tokenizer() else { return };
    let vocab = tokenizer.vocab();
    let folder = tempfile::tempdir().unwrap();
    let json_path = folder.path().join("tokenizer.json");
    std::fs::write(&json_path, tokenizer_json_from_vocab(vocab)).unwrap();
    std::fs::write(
        folder.path().join("tokenizer_config.json"),
        tokenizer_config_json_from_vocab(vocab),
    )
    .unwrap();

    let start = Instant::now();
    let from_json = GemmaTokenizer::from_tokenizer_json(&json_path).unwrap();
    eprintln!(
        "built the tokenizer from tokenizer.json in {:.2?}",
        start.elapsed()
    );

    let reread = from_json.vocab();
    assert_eq!(reread.tokens, vocab.tokens);
    assert_eq!(reread.token_types, vocab.token_types);
    assert_eq!(
        (reread.bos_id, reread.eos_id, reread.unk_id, reread.pad_id),
        (vocab.bos_id, vocab.eos_id, vocab.unk_id, vocab.pad_id)
    );
    assert_eq!(
        (reread.add_bos, reread.add_eos, reread.add_space_prefix),
        (vocab.add_bos, vocab.add_eos, vocab.add_space_prefix)
    );

    for parse_special in [true, false] {
        let mismatches = golden_mismatches(&from_json, parse_special);
        assert!(
            mismatches.is_empty(),
            "{} lines differ:\n{}",
            mismatches.len(),
            mismatches.join("\n")
        );
    }
}
