//! Converts between Hugging Face `tokenizer.json` files and [`SpmVocab`].
//!
//! The conversion follows llama.cpp's `convert_hf_to_gguf.py`: added tokens marked special
//! (or that look special, such as `<unused0>`) become control tokens, the other added tokens
//! become user-defined tokens with `▁` turned back into spaces, and every added token gets
//! the score -1000.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};
use tokenizers::models::ModelWrapper;
use tokenizers::Tokenizer;

use super::error::TokenizerError;
use super::merges::{derive_merges, token_to_id};
use super::vocab::{parse_byte_piece, SpmVocab, TokenType};
use super::SPACE_ESCAPE;

/// Score llama.cpp's converter gives every added (control or user-defined) token.
const ADDED_TOKEN_SCORE: f32 = -1000.0;

/// Score llama.cpp's converter gives the `[PAD{id}]` tokens it adds to reach `vocab_size`.
const PAD_TOKEN_SCORE: f32 = -10000.0;

/// Name of the configuration file read beside `tokenizer.json`.
const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";

/// Reads a `tokenizer.json` (and `tokenizer_config.json` beside it, when present) into the
/// vocabulary llama.cpp's converter would write to GGUF.
///
/// The file stores merges but no SentencePiece scores, so scores are rebuilt from the merge
/// order: a piece that a merge forms scores minus the rank of its first merge, and a piece no
/// merge forms scores below all of those. Merges derived from these scores run in the file's
/// order, so tokenization is unchanged, though the values differ from `tokenizer.model`'s.
///
/// `vocab_size` (the model's `vocab_size` from `config.json`) cuts or pads the token list
/// with unused `[PAD{id}]` tokens; `None` keeps the tokenizer's own size.
///
/// # Errors
///
/// [`TokenizerError::Io`] or [`TokenizerError::InvalidJson`] when a file cannot be read or
/// parsed, and [`TokenizerError::UnsupportedTokenizerJson`] when the model is not BPE.
pub fn spm_vocab_from_tokenizer_json(
    path: &Path,
    vocab_size: Option<usize>,
) -> Result<SpmVocab, TokenizerError> {
    let tokenizer = Tokenizer::from_file(path).map_err(|e| invalid_json(path, e))?;
    let ModelWrapper::BPE(bpe) = tokenizer.get_model() else {
        return Err(TokenizerError::UnsupportedTokenizerJson {
            path: path.to_path_buf(),
            reason: "the model is not BPE; Gemma's tokenizer.json has a byte-fallback BPE model"
                .to_string(),
        });
    };

    // The merges are not exposed by the API, so take them from the model's serialized form.
    let model_json = serde_json::to_value(bpe).map_err(|e| invalid_json(path, e))?;
    let merges = parse_merges(path, &model_json)?;

    let model_vocab = tokenizers::Model::get_vocab(bpe);
    let added = tokenizer.get_added_tokens_decoder();
    let n_file = model_vocab
        .values()
        .chain(added.keys())
        .map(|&id| id as usize + 1)
        .max()
        .unwrap_or(0);
    let n_vocab = vocab_size.unwrap_or(n_file);

    let mut id_to_piece: Vec<Option<&str>> = vec![None; n_file];
    for (piece, &id) in &model_vocab {
        id_to_piece[id as usize] = Some(piece);
    }
    let first_merge_rank = first_merge_ranks(&merges);
    let n_merges = merges.len();
    let unk_piece = bpe.unk_token.as_deref();

    let mut vocab = SpmVocab {
        tokens: Vec::with_capacity(n_vocab),
        scores: Vec::with_capacity(n_vocab),
        token_types: Vec::with_capacity(n_vocab),
        bos_id: None,
        eos_id: None,
        unk_id: None,
        pad_id: None,
        add_bos: false,
        add_eos: false,
        add_space_prefix: prepends_space(&tokenizer)?,
    };

    for id in 0..n_vocab {
        let (piece, score, token_type) = if let Some(token) = added.get(&(id as u32)) {
            if token.special || looks_special(&token.content) {
                (token.content.clone(), ADDED_TOKEN_SCORE, TokenType::Control)
            } else {
                let literal = token.content.replace(SPACE_ESCAPE, " ");
                (literal, ADDED_TOKEN_SCORE, TokenType::UserDefined)
            }
        } else if let Some(piece) = id_to_piece.get(id).copied().flatten() {
            if parse_byte_piece(piece).is_some() {
                (piece.to_string(), 0.0, TokenType::Byte)
            } else if Some(piece) == unk_piece {
                (piece.to_string(), 0.0, TokenType::Unknown)
            } else {
                let rank = first_merge_rank
                    .get(piece)
                    .copied()
                    .unwrap_or(n_merges + id);
                (piece.to_string(), -(rank as f32), TokenType::Normal)
            }
        } else {
            (format!("[PAD{id}]"), PAD_TOKEN_SCORE, TokenType::Unused)
        };
        vocab.tokens.push(piece);
        vocab.scores.push(score);
        vocab.token_types.push(token_type);
    }

    let id_of = |piece: &str| -> Option<u32> {
        vocab
            .tokens
            .iter()
            .position(|p| p == piece)
            .map(|i| i as u32)
    };
    vocab.unk_id = unk_piece.and_then(id_of);

    let config_path = path.with_file_name(TOKENIZER_CONFIG_FILE);
    if config_path.is_file() {
        let config = read_json(&config_path)?;
        let token_id = |key: &str| special_token_content(&config, key).and_then(id_of);
        vocab.bos_id = token_id("bos_token");
        vocab.eos_id = token_id("eos_token");
        vocab.pad_id = token_id("pad_token");
        vocab.unk_id = token_id("unk_token").or(vocab.unk_id);
        vocab.add_bos = config
            .get("add_bos_token")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        vocab.add_eos = config
            .get("add_eos_token")
            .and_then(Json::as_bool)
            .unwrap_or(false);
    } else {
        // Without a config, the post-processor shows whether BOS is added.
        let first = first_template_special(&tokenizer)?;
        vocab.bos_id = first.as_deref().and_then(id_of);
        vocab.add_bos = vocab.bos_id.is_some();
    }
    Ok(vocab)
}

/// Writes `vocab` as a Hugging Face `tokenizer.json`: a byte-fallback BPE model with merges
/// derived from the scores, spaces normalized to `▁`, control and user-defined tokens as
/// added tokens, and a post-processor that adds BOS when `vocab.add_bos` is set.
///
/// Reading the result back with [`spm_vocab_from_tokenizer_json`] gives the same tokens,
/// token types and special ids, and scores that order the merges the same way.
pub fn tokenizer_json_from_vocab(vocab: &SpmVocab) -> String {
    let to_hf = |id: usize| -> String {
        let piece = &vocab.tokens[id];
        match vocab.token_types[id] {
            TokenType::UserDefined => piece.replace(' ', SPACE_ESCAPE),
            _ => piece.clone(),
        }
    };

    let mut model_vocab = serde_json::Map::with_capacity(vocab.tokens.len());
    let mut added_tokens = Vec::new();
    for (id, token_type) in vocab.token_types.iter().enumerate() {
        let piece = to_hf(id);
        if matches!(
            token_type,
            TokenType::Control | TokenType::Unknown | TokenType::UserDefined
        ) {
            added_tokens.push(json!({
                "id": id,
                "content": piece,
                "single_word": false,
                "lstrip": false,
                "rstrip": false,
                "normalized": false,
                "special": *token_type != TokenType::UserDefined,
            }));
        }
        model_vocab.insert(piece, json!(id));
    }

    // A raw space only occurs in user-defined pieces, whose text the merges never reach.
    let merges: Vec<Json> = derive_merges(vocab, &token_to_id(vocab))
        .into_iter()
        .filter(|(left, right)| !left.contains(' ') && !right.contains(' '))
        .map(|(left, right)| json!([left, right]))
        .collect();

    let replace_space =
        json!({"type": "Replace", "pattern": {"String": " "}, "content": SPACE_ESCAPE});
    let normalizer = if vocab.add_space_prefix {
        json!({"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPACE_ESCAPE},
            replace_space,
        ]})
    } else {
        replace_space
    };

    let post_processor = match vocab.bos_id.filter(|_| vocab.add_bos) {
        Some(bos) => {
            let bos_piece = to_hf(bos as usize);
            json!({
                "type": "TemplateProcessing",
                "single": [
                    {"SpecialToken": {"id": bos_piece, "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                ],
                "pair": [
                    {"SpecialToken": {"id": bos_piece, "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": bos_piece, "type_id": 1}},
                    {"Sequence": {"id": "B", "type_id": 1}},
                ],
                "special_tokens": {
                    bos_piece.clone(): {"id": bos_piece, "ids": [bos], "tokens": [bos_piece]},
                },
            })
        }
        None => Json::Null,
    };

    let unk_piece = vocab.unk_id.map(|id| to_hf(id as usize));
    let document = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": normalizer,
        "pre_tokenizer": null,
        "post_processor": post_processor,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE_ESCAPE}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
        ]},
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": unk_piece,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": true,
            "byte_fallback": true,
            "ignore_merges": false,
            "vocab": model_vocab,
            "merges": merges,
        },
    });
    document.to_string()
}

/// Writes the `tokenizer_config.json` that goes with [`tokenizer_json_from_vocab`]: the
/// special tokens and the `add_bos_token` / `add_eos_token` flags.
pub fn tokenizer_config_json_from_vocab(vocab: &SpmVocab) -> String {
    let piece = |id: Option<u32>| id.map(|id| vocab.tokens[id as usize].clone());
    json!({
        "add_bos_token": vocab.add_bos,
        "add_eos_token": vocab.add_eos,
        "bos_token": piece(vocab.bos_id),
        "eos_token": piece(vocab.eos_id),
        "unk_token": piece(vocab.unk_id),
        "pad_token": piece(vocab.pad_id),
    })
    .to_string()
}

/// Returns whether llama.cpp's converter treats an added token as control although the file
/// does not mark it special (`does_token_look_special` in `convert_hf_to_gguf.py`).
fn looks_special(content: &str) -> bool {
    matches!(content, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (content.starts_with("<|") && content.ends_with("|>"))
        || (content.starts_with("<\u{ff5c}") && content.ends_with("\u{ff5c}>"))
        || (content.starts_with("<unused") && content.ends_with('>'))
}

/// Reads the merges of a serialized BPE model, in rank order.
fn parse_merges(path: &Path, model: &Json) -> Result<Vec<(String, String)>, TokenizerError> {
    let Some(entries) = model.get("merges").and_then(Json::as_array) else {
        return Err(invalid_json(path, "model.merges is missing"));
    };
    entries
        .iter()
        .map(|entry| {
            let pair = match entry {
                Json::Array(parts) => match parts.as_slice() {
                    [Json::String(left), Json::String(right)] => {
                        Some((left.clone(), right.clone()))
                    }
                    _ => None,
                },
                Json::String(text) => text
                    .split_once(' ')
                    .map(|(left, right)| (left.to_string(), right.to_string())),
                _ => None,
            };
            pair.ok_or_else(|| invalid_json(path, format!("merge {entry} is not a pair of pieces")))
        })
        .collect()
}

/// Maps each piece a merge forms to the rank of the first merge that forms it.
fn first_merge_ranks(merges: &[(String, String)]) -> HashMap<String, usize> {
    let mut ranks = HashMap::with_capacity(merges.len());
    for (rank, (left, right)) in merges.iter().enumerate() {
        ranks.entry(format!("{left}{right}")).or_insert(rank);
    }
    ranks
}

/// Returns whether the normalizer or pre-tokenizer puts `▁` before the text, which is
/// llama.cpp's `add_space_prefix`.
fn prepends_space(tokenizer: &Tokenizer) -> Result<bool, TokenizerError> {
    let normalizer =
        serde_json::to_value(tokenizer.get_normalizer()).map_err(TokenizerError::hf)?;
    let pre_tokenizer =
        serde_json::to_value(tokenizer.get_pre_tokenizer()).map_err(TokenizerError::hf)?;
    Ok(contains_space_prefix(&normalizer) || contains_space_prefix(&pre_tokenizer))
}

/// Searches a serialized normalizer or pre-tokenizer for a `Prepend("▁")` or a `Metaspace`
/// that prepends.
fn contains_space_prefix(node: &Json) -> bool {
    match node {
        Json::Object(map) => {
            let kind = map.get("type").and_then(Json::as_str);
            let prepends = match kind {
                Some("Prepend") => map.get("prepend").and_then(Json::as_str) == Some(SPACE_ESCAPE),
                Some("Metaspace") => {
                    let scheme = map.get("prepend_scheme").and_then(Json::as_str);
                    let legacy = map.get("add_prefix_space").and_then(Json::as_bool);
                    matches!(scheme, Some("always" | "first")) || legacy == Some(true)
                }
                _ => false,
            };
            prepends || map.values().any(contains_space_prefix)
        }
        Json::Array(items) => items.iter().any(contains_space_prefix),
        _ => false,
    }
}

/// Returns the special token a `TemplateProcessing` post-processor puts first, if any.
fn first_template_special(tokenizer: &Tokenizer) -> Result<Option<String>, TokenizerError> {
    let post = serde_json::to_value(tokenizer.get_post_processor()).map_err(TokenizerError::hf)?;
    let first = post
        .get("single")
        .and_then(Json::as_array)
        .and_then(|items| items.first())
        .and_then(|item| item.get("SpecialToken"))
        .and_then(|token| token.get("id"))
        .and_then(Json::as_str)
        .map(str::to_string);
    Ok(first)
}

/// Returns the text of a special-token entry of `tokenizer_config.json`, stored either as a
/// string or as an object with a `content` field.
fn special_token_content<'a>(config: &'a Json, key: &str) -> Option<&'a str> {
    match config.get(key)? {
        Json::String(text) => Some(text),
        Json::Object(map) => map.get("content").and_then(Json::as_str),
        _ => None,
    }
}

fn read_json(path: &Path) -> Result<Json, TokenizerError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
        path: PathBuf::from(path),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| invalid_json(path, e))
}

fn invalid_json(path: &Path, reason: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::InvalidJson {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}
