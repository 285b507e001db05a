//! Tokenizer behaviour on small hand-made SentencePiece vocabularies: special-token
//! matching, whitespace runs, byte fallback, flags and input validation.

use gemma2_model::tokenizer::{
    spm_vocab_from_tokenizer_json, tokenizer_config_json_from_vocab, tokenizer_json_from_vocab,
    GemmaTokenizer, SpmVocab, TokenType, TokenizerError,
};
use gguf_format::{Array, Metadata, Value};

/// Builds a vocabulary from `(piece, type, score)` rows followed by the 256 byte pieces.
fn vocab(rows: &[(&str, TokenType, f32)]) -> SpmVocab {
    let mut vocab = SpmVocab {
        tokens: rows.iter().map(|r| r.0.to_string()).collect(),
        scores: rows.iter().map(|r| r.2).collect(),
        token_types: rows.iter().map(|r| r.1).collect(),
        bos_id: None,
        eos_id: None,
        unk_id: None,
        pad_id: None,
        add_bos: false,
        add_eos: false,
        add_space_prefix: false,
    };
    for byte in 0..=255u8 {
        vocab.tokens.push(format!("<0x{byte:02X}>"));
        vocab.scores.push(0.0);
        vocab.token_types.push(TokenType::Byte);
    }
    vocab
}

fn id(tokenizer: &GemmaTokenizer, piece: &str) -> u32 {
    (0..tokenizer.n_vocab() as u32)
        .find(|&id| tokenizer.token_to_piece(id) == Some(piece))
        .unwrap_or_else(|| panic!("no piece {piece:?}"))
}

use TokenType::{Control, Normal, UserDefined};

/// Builds the vocabulary of the Gemma whitespace-run case. SentencePiece merging reaches
/// `test` through `te` and `st`, so those pieces are present too.
fn whitespace_vocab() -> SpmVocab {
    let mut v = vocab(&[
        ("<pad>", Control, -1000.0),
        ("<eos>", Control, -1000.0),
        ("<bos>", Control, -1000.0),
        ("t", Normal, -10.0),
        ("e", Normal, -11.0),
        ("s", Normal, -12.0),
        ("\u{2581}", Normal, -13.0),
        ("test", Normal, -1.0),
        ("te", Normal, -2.0),
        ("st", Normal, -3.0),
        ("\t\t\t", UserDefined, -1000.0),
        ("\t\t\t\t\t\t", UserDefined, -1000.0),
        ("a", Normal, -14.0),
        ("b", Normal, -15.0),
        ("c", Normal, -16.0),
        ("n", Normal, -17.0),
        ("d", Normal, -18.0),
        ("\u{2581}and", Normal, -4.0),
        ("\u{2581}an", Normal, -4.5),
        ("\u{2581}a", Normal, -5.0),
        ("an", Normal, -6.0),
        ("  ", UserDefined, -1000.0),
        ("    ", UserDefined, -1000.0),
        ("</s>", UserDefined, -1000.0),
    ]);
    v.bos_id = Some(2);
    v.eos_id = Some(1);
    v.add_bos = true;
    v
}

#[test]
fn tokenizer_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GemmaTokenizer>();
}

#[test]
fn six_tabs_before_word_are_one_piece() {
    let tokenizer = GemmaTokenizer::from_vocab(whitespace_vocab()).unwrap();
    let ids = tokenizer.encode("\t\t\t\t\t\ttest", false, false).unwrap();
    assert_eq!(
        ids,
        [id(&tokenizer, "\t\t\t\t\t\t"), id(&tokenizer, "test")]
    );
}

#[test]
fn each_space_run_is_one_piece() {
    let tokenizer = GemmaTokenizer::from_vocab(whitespace_vocab()).unwrap();
    let ids = tokenizer.encode("a  b and    c", false, false).unwrap();
    let expected = [
        id(&tokenizer, "a"),
        id(&tokenizer, "  "),
        id(&tokenizer, "b"),
        id(&tokenizer, "\u{2581}and"),
        id(&tokenizer, "    "),
        id(&tokenizer, "c"),
    ];
    assert_eq!(ids, expected);
    assert_eq!(tokenizer.decode(&ids).unwrap(), "a  b and    c");
}

#[test]
fn no_dummy_prefix_without_add_space_prefix() {
    let tokenizer = GemmaTokenizer::from_vocab(whitespace_vocab()).unwrap();
    assert_eq!(
        tokenizer.encode("a", true, false).unwrap(),
        [2, id(&tokenizer, "a")]
    );
}

#[test]
fn space_prefix_at_start_and_after_special() {
    let mut v = whitespace_vocab();
    v.add_space_prefix = true;
    let tokenizer = GemmaTokenizer::from_vocab(v).unwrap();

    let a_prefixed = id(&tokenizer, "\u{2581}a");
    assert_eq!(tokenizer.encode("a", false, false).unwrap(), [a_prefixed]);
    assert_eq!(
        tokenizer.encode("<bos>a", false, true).unwrap(),
        [2, a_prefixed]
    );
    // After ordinary text no prefix is added: "a" + "\t\t\t" + "a".
    assert_eq!(
        tokenizer.encode("a\t\t\ta", false, false).unwrap(),
        [a_prefixed, id(&tokenizer, "\t\t\t"), a_prefixed]
    );
}

#[test]
fn eos_appended_when_vocab_asks() {
    let mut v = whitespace_vocab();
    v.add_eos = true;
    let tokenizer = GemmaTokenizer::from_vocab(v).unwrap();
    assert_eq!(
        tokenizer.encode("a", true, false).unwrap(),
        [2, id(&tokenizer, "a"), 1]
    );
    assert_eq!(
        tokenizer.encode("a", false, false).unwrap(),
        [id(&tokenizer, "a")]
    );
}

#[test]
fn control_text_needs_parse_special() {
    let tokenizer = GemmaTokenizer::from_vocab(whitespace_vocab()).unwrap();
    assert_eq!(tokenizer.encode("<bos>", false, true).unwrap(), [2]);
    let plain = tokenizer.encode("<bos>", false, false).unwrap();
    assert_eq!(plain.len(), 5, "one byte token per character: {plain:?}");
    assert_eq!(tokenizer.decode(&plain).unwrap(), "<bos>");
}

#[test]
fn end_of_sequence_text_treated_as_control() {
    // llama.cpp marks "</s>" as control by its text even when the file types it user-defined.
    let tokenizer = GemmaTokenizer::from_vocab(whitespace_vocab()).unwrap();
    let s = id(&tokenizer, "</s>");
    assert_eq!(tokenizer.token_type(s), Some(UserDefined));
    assert_eq!(
        tokenizer.encode("a</s>", false, true).unwrap(),
        [id(&tokenizer, "a"), s]
    );
    let plain = tokenizer.encode("a</s>", false, false).unwrap();
    assert!(!plain.contains(&s), "{plain:?}");
}

#[test]
fn unknown_character_falls_back_to_bytes() {
    let tokenizer = GemmaTokenizer::from_vocab(whitespace_vocab()).unwrap();
    let ids = tokenizer.encode("é", false, false).unwrap();
    assert_eq!(ids, [id(&tokenizer, "<0xC3>"), id(&tokenizer, "<0xA9>")]);
    assert_eq!(tokenizer.decode(&ids).unwrap(), "é");
}

#[test]
fn invalid_utf8_kept_as_bytes() {
    let tokenizer = GemmaTokenizer::from_vocab(whitespace_vocab()).unwrap();
    // 0xFF announces a 4-byte character, so llama.cpp cuts "\xFFst" as one invalid character
    // and emits its three bytes as byte tokens.
    let ids = tokenizer.encode_bytes(b"te\xFFst", false, false).unwrap();
    let bytes = ["<0xFF>", "<0x73>", "<0x74>"].map(|piece| id(&tokenizer, piece));
    assert_eq!(ids, [id(&tokenizer, "te"), bytes[0], bytes[1], bytes[2]]);
    assert_eq!(tokenizer.decode_bytes(&ids).unwrap(), b"te\xFFst");
    assert_eq!(tokenizer.decode(&ids).unwrap(), "te\u{FFFD}st");

    // A stray continuation byte is a character of its own, so the text after it still merges.
    let ids = tokenizer.encode_bytes(b"\x80test", false, false).unwrap();
    assert_eq!(ids, [id(&tokenizer, "<0x80>"), id(&tokenizer, "test")]);
}

#[test]
fn higher_score_merge_wins() {
    // "tes" could become "te"+"s" or "t"+"es"; only "te" exists, then "te"+"st" cannot
    // form, so the text stays "te", "s".
    let tokenizer = GemmaTokenizer::from_vocab(whitespace_vocab()).unwrap();
    assert_eq!(
        tokenizer.encode("tes", false, false).unwrap(),
        [id(&tokenizer, "te"), id(&tokenizer, "s")]
    );

    // With "es" scoring above "te", "t" + "es" is merged first.
    let mut v = whitespace_vocab();
    v.tokens.push("es".to_string());
    v.scores.push(-1.5);
    v.token_types.push(Normal);
    let tokenizer = GemmaTokenizer::from_vocab(v).unwrap();
    assert_eq!(
        tokenizer.encode("tes", false, false).unwrap(),
        [id(&tokenizer, "t"), id(&tokenizer, "es")]
    );
}

#[test]
fn missing_bos_is_an_error() {
    let mut v = whitespace_vocab();
    v.bos_id = None;
    let tokenizer = GemmaTokenizer::from_vocab(v).unwrap();
    assert!(matches!(
        tokenizer.encode("a", true, false),
        Err(TokenizerError::NoBosToken)
    ));
}

#[test]
fn vocab_validation_errors() {
    let mut short_scores = whitespace_vocab();
    short_scores.scores.pop();
    assert!(matches!(
        GemmaTokenizer::from_vocab(short_scores),
        Err(TokenizerError::LengthMismatch {
            field: "tokenizer.ggml.scores",
            ..
        })
    ));

    let mut bad_bos = whitespace_vocab();
    bad_bos.bos_id = Some(1_000_000);
    assert!(matches!(
        GemmaTokenizer::from_vocab(bad_bos),
        Err(TokenizerError::SpecialIdOutOfRange {
            role: "bos",
            id: 1_000_000,
            ..
        })
    ));

    let mut nan_score = whitespace_vocab();
    nan_score.scores[3] = f32::NAN;
    assert!(matches!(
        GemmaTokenizer::from_vocab(nan_score),
        Err(TokenizerError::NonFiniteScore { id: 3, .. })
    ));

    let mut no_byte = whitespace_vocab();
    let last = no_byte.tokens.len() - 1;
    no_byte.tokens[last] = "x".to_string();
    no_byte.token_types[last] = Normal;
    assert!(matches!(
        GemmaTokenizer::from_vocab(no_byte),
        Err(TokenizerError::MissingByteToken { byte: 0xFF })
    ));

    let empty = SpmVocab {
        tokens: vec![],
        scores: vec![],
        token_types: vec![],
        ..whitespace_vocab()
    };
    assert!(matches!(
        GemmaTokenizer::from_vocab(empty),
        Err(TokenizerError::EmptyVocab)
    ));
}

fn metadata_of(vocab: &SpmVocab) -> Metadata {
    vocab.to_gguf_metadata().into_iter().collect()
}

#[test]
fn gguf_metadata_round_trip() {
    let mut v = whitespace_vocab();
    v.unk_id = Some(0);
    v.pad_id = Some(0);
    let tokenizer = GemmaTokenizer::from_gguf_metadata(&metadata_of(&v)).unwrap();
    assert_eq!(tokenizer.vocab(), &v);
}

#[test]
fn gguf_metadata_errors_name_the_key() {
    let v = whitespace_vocab();

    let mut wrong_model = metadata_of(&v);
    wrong_model.set("tokenizer.ggml.model", Value::String("gpt2".into()));
    let error = GemmaTokenizer::from_gguf_metadata(&wrong_model).unwrap_err();
    assert!(matches!(&error, TokenizerError::UnsupportedModel { found } if found == "gpt2"));

    let mut bad_type = metadata_of(&v);
    let mut codes: Vec<i32> = v.token_types.iter().map(|t| t.code()).collect();
    codes[4] = 9;
    bad_type.set("tokenizer.ggml.token_type", Value::Array(Array::I32(codes)));
    let error = GemmaTokenizer::from_gguf_metadata(&bad_type).unwrap_err();
    assert!(matches!(
        error,
        TokenizerError::InvalidTokenType { id: 4, code: 9 }
    ));

    let mut no_tokens = metadata_of(&v);
    no_tokens.remove("tokenizer.ggml.tokens");
    let error = GemmaTokenizer::from_gguf_metadata(&no_tokens).unwrap_err();
    assert!(
        error.to_string().contains("tokenizer.ggml.tokens"),
        "{error}"
    );

    let mut float_ids = metadata_of(&v);
    float_ids.set("tokenizer.ggml.bos_token_id", Value::F32(2.0));
    let error = GemmaTokenizer::from_gguf_metadata(&float_ids).unwrap_err();
    assert!(error.to_string().contains("bos_token_id"), "{error}");
}

#[test]
fn gguf_defaults_follow_llama_cpp() {
    let v = whitespace_vocab();
    let mut metadata = metadata_of(&v);
    for key in [
        "tokenizer.ggml.scores",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.add_bos_token",
        "tokenizer.ggml.add_space_prefix",
    ] {
        metadata.remove(key);
    }
    let tokenizer = GemmaTokenizer::from_gguf_metadata(&metadata).unwrap();
    assert_eq!(tokenizer.bos_id(), Some(1));
    assert_eq!(tokenizer.eos_id(), Some(2));
    assert!(tokenizer.add_bos());
    assert!(tokenizer.vocab().add_space_prefix);
    assert!(tokenizer.vocab().scores.iter().all(|&s| s == 0.0));
}

#[test]
fn tokenizer_json_round_trip() {
    let mut v = whitespace_vocab();
    v.add_space_prefix = true;
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("tokenizer.json");
    std::fs::write(&path, tokenizer_json_from_vocab(&v)).unwrap();
    std::fs::write(
        folder.path().join("tokenizer_config.json"),
        tokenizer_config_json_from_vocab(&v),
    )
    .unwrap();

    let reread = spm_vocab_from_tokenizer_json(&path, None).unwrap();
    assert_eq!(reread.tokens, v.tokens);
    assert_eq!(reread.token_types, v.token_types);
    assert_eq!((reread.bos_id, reread.eos_id), (v.bos_id, v.eos_id));
    assert!(reread.add_bos);
    assert!(reread.add_space_prefix);

    // Padding to a larger vocab_size adds unused [PAD] tokens, as llama.cpp's converter does.
    let padded = spm_vocab_from_tokenizer_json(&path, Some(v.tokens.len() + 2)).unwrap();
    assert_eq!(
        padded.tokens.last().map(String::as_str),
        Some(format!("[PAD{}]", v.tokens.len() + 1).as_str())
    );
    assert_eq!(padded.token_types.last(), Some(&TokenType::Unused));

    let from_json = GemmaTokenizer::from_tokenizer_json(&path).unwrap();
    let from_vocab = GemmaTokenizer::from_vocab(v).unwrap();
    for text in ["a  b and    c", "\t\t\t\t\t\ttest", "tes", "<bos>test</s>"] {
        for parse_special in [true, false] {
            assert_eq!(
                from_json.encode(text, true, parse_special).unwrap(),
                from_vocab.encode(text, true, parse_special).unwrap(),
                "{text:?}"
            );
        }
    }
}

#[test]
fn tokenizer_json_errors_name_the_file() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("tokenizer.json");

    let missing = GemmaTokenizer::from_tokenizer_json(&path).unwrap_err();
    assert!(missing.to_string().contains("tokenizer.json"), "{missing}");

    std::fs::write(&path, "{not json").unwrap();
    let invalid = GemmaTokenizer::from_tokenizer_json(&path).unwrap_err();
    assert!(
        matches!(invalid, TokenizerError::InvalidJson { .. }),
        "{invalid}"
    );
}
