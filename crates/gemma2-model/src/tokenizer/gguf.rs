//! Reads and writes the `tokenizer.ggml.*` GGUF metadata of a SentencePiece vocabulary.

use std::path::Path;

use gguf_format::{Array, Metadata, Value};

use super::error::TokenizerError;
use super::hf_json::spm_vocab_from_tokenizer_json;
use super::vocab::{SpmVocab, TokenType};

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
const KEY_BOS_ID: &str = "tokenizer.ggml.bos_token_id";
const KEY_EOS_ID: &str = "tokenizer.ggml.eos_token_id";
const KEY_UNK_ID: &str = "tokenizer.ggml.unknown_token_id";
const KEY_PAD_ID: &str = "tokenizer.ggml.padding_token_id";
const KEY_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
const KEY_ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
const KEY_ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";

/// The keys [`SpmVocab::to_gguf_metadata`] writes, in the order it writes them.
pub const TOKENIZER_GGUF_KEYS: [&str; 12] = [
    KEY_MODEL,
    KEY_PRE,
    KEY_TOKENS,
    KEY_SCORES,
    KEY_TOKEN_TYPE,
    KEY_BOS_ID,
    KEY_EOS_ID,
    KEY_UNK_ID,
    KEY_PAD_ID,
    KEY_ADD_BOS,
    KEY_ADD_EOS,
    KEY_ADD_SPACE_PREFIX,
];

/// `tokenizer.ggml.model` of a SentencePiece vocabulary.
const SPM_MODEL_NAME: &str = "llama";

/// `tokenizer.ggml.pre` that llama.cpp's converter writes for SentencePiece vocabularies.
const SPM_PRE_NAME: &str = "default";

/// llama.cpp's special-token defaults for a SentencePiece vocabulary without the keys.
const DEFAULT_BOS_ID: u32 = 1;
const DEFAULT_EOS_ID: u32 = 2;
const DEFAULT_UNK_ID: u32 = 0;

/// Reads a SentencePiece vocabulary from GGUF metadata; defaults as documented on
/// [`GemmaTokenizer::from_gguf_metadata`](super::GemmaTokenizer::from_gguf_metadata).
pub(crate) fn spm_vocab_from_metadata(metadata: &Metadata) -> Result<SpmVocab, TokenizerError> {
    let model = metadata.get_str(KEY_MODEL)?;
    if model != SPM_MODEL_NAME {
        return Err(TokenizerError::UnsupportedModel {
            found: model.to_string(),
        });
    }

    let tokens = metadata.get_string_array(KEY_TOKENS)?.to_vec();
    let n_vocab = tokens.len();

    let scores = match metadata.get(KEY_SCORES) {
        None => vec![0.0; n_vocab],
        Some(_) => metadata.get_f32_array(KEY_SCORES)?.to_vec(),
    };

    let token_types = match metadata.get(KEY_TOKEN_TYPE) {
        None => vec![TokenType::Normal; n_vocab],
        Some(_) => {
            let codes = metadata.get_i32_array(KEY_TOKEN_TYPE)?;
            codes
                .iter()
                .enumerate()
                .map(|(id, &code)| {
                    TokenType::from_code(code).ok_or(TokenizerError::InvalidTokenType {
                        id: id as u32,
                        code,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        }
    };

    let vocab = SpmVocab {
        tokens,
        scores,
        token_types,
        bos_id: special_id(metadata, KEY_BOS_ID, "bos", Some(DEFAULT_BOS_ID))?,
        eos_id: special_id(metadata, KEY_EOS_ID, "eos", Some(DEFAULT_EOS_ID))?,
        unk_id: special_id(metadata, KEY_UNK_ID, "unknown", Some(DEFAULT_UNK_ID))?,
        pad_id: special_id(metadata, KEY_PAD_ID, "padding", None)?,
        add_bos: metadata.opt_bool(KEY_ADD_BOS)?.unwrap_or(true),
        add_eos: metadata.opt_bool(KEY_ADD_EOS)?.unwrap_or(false),
        add_space_prefix: metadata.opt_bool(KEY_ADD_SPACE_PREFIX)?.unwrap_or(true),
    };
    Ok(vocab)
}

/// Reads a special token id stored with any integer type.
fn special_id(
    metadata: &Metadata,
    key: &str,
    role: &'static str,
    default: Option<u32>,
) -> Result<Option<u32>, TokenizerError> {
    if metadata.get(key).is_none() {
        return Ok(default);
    }
    let id = metadata.get_uint(key)?;
    let n_vocab = metadata
        .get_string_array(KEY_TOKENS)
        .map(<[String]>::len)
        .unwrap_or(0);
    u32::try_from(id)
        .map(Some)
        .map_err(|_| TokenizerError::SpecialIdOutOfRange { role, id, n_vocab })
}

impl SpmVocab {
    /// Returns the `tokenizer.ggml.*` key-value pairs llama.cpp's converter writes for a
    /// SentencePiece vocabulary, in the order of [`TOKENIZER_GGUF_KEYS`].
    ///
    /// Ids are `u32`, token types `i32` and scores `f32`, as in llama.cpp's files. A special
    /// token the vocabulary does not define is left out.
    pub fn to_gguf_metadata(&self) -> Vec<(String, Value)> {
        let mut pairs = vec![
            (KEY_MODEL, Value::String(SPM_MODEL_NAME.to_string())),
            (KEY_PRE, Value::String(SPM_PRE_NAME.to_string())),
            (KEY_TOKENS, Value::Array(Array::String(self.tokens.clone()))),
            (KEY_SCORES, Value::Array(Array::F32(self.scores.clone()))),
            (
                KEY_TOKEN_TYPE,
                Value::Array(Array::I32(
                    self.token_types.iter().map(|t| t.code()).collect(),
                )),
            ),
        ];

        let specials = [
            (KEY_BOS_ID, self.bos_id),
            (KEY_EOS_ID, self.eos_id),
            (KEY_UNK_ID, self.unk_id),
            (KEY_PAD_ID, self.pad_id),
        ];
        for (key, id) in specials {
            if let Some(id) = id {
                pairs.push((key, Value::U32(id)));
            }
        }

        pairs.push((KEY_ADD_BOS, Value::Bool(self.add_bos)));
        pairs.push((KEY_ADD_EOS, Value::Bool(self.add_eos)));
        pairs.push((KEY_ADD_SPACE_PREFIX, Value::Bool(self.add_space_prefix)));

        pairs
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect()
    }
}

/// Builds the `tokenizer.ggml.*` GGUF metadata for a Hugging Face `tokenizer.json` (and the
/// `tokenizer_config.json` beside it), as a converter to GGUF writes it.
///
/// `vocab_size` is the model's `vocab_size` from `config.json`: the token list is cut or
/// padded with unused `[PAD{id}]` tokens to that length, as llama.cpp's converter does.
/// `None` keeps the tokenizer's own size.
///
/// # Errors
///
/// As [`spm_vocab_from_tokenizer_json`], plus the errors of [`SpmVocab::validate`].
pub fn gguf_metadata_from_tokenizer_json(
    path: &Path,
    vocab_size: Option<usize>,
) -> Result<Vec<(String, Value)>, TokenizerError> {
    let vocab = spm_vocab_from_tokenizer_json(path, vocab_size)?;
    vocab.validate()?;
    Ok(vocab.to_gguf_metadata())
}
