//! The SentencePiece vocabulary in the form GGUF stores it.

use super::error::TokenizerError;

/// Largest vocabulary llama.cpp can address, because its token ids are `int32_t`.
pub const MAX_VOCAB: usize = i32::MAX as usize;

/// The type of a token, with the codes of llama.cpp's `llama_token_type`
/// (`tokenizer.ggml.token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum TokenType {
    /// Code 0: no type recorded; treated like a normal piece that is never matched.
    Undefined = 0,
    /// Code 1: an ordinary SentencePiece piece, produced by merges.
    Normal = 1,
    /// Code 2: the unknown token.
    Unknown = 2,
    /// Code 3: a control token (`<bos>`, `<start_of_turn>`), matched in text only when
    /// special-token parsing is on.
    Control = 3,
    /// Code 4: a user-defined token (Gemma's whitespace runs, HTML tags), always matched
    /// literally before the merges.
    UserDefined = 4,
    /// Code 5: an unused slot.
    Unused = 5,
    /// Code 6: a byte-fallback token `<0xXX>`.
    Byte = 6,
}

impl TokenType {
    /// Converts a `tokenizer.ggml.token_type` code; returns `None` outside 0..=6.
    pub fn from_code(code: i32) -> Option<TokenType> {
        Some(match code {
            0 => TokenType::Undefined,
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => return None,
        })
    }

    /// Returns the `tokenizer.ggml.token_type` code.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// A SentencePiece vocabulary as plain data: what GGUF's `tokenizer.ggml.*` keys hold.
///
/// Pieces use U+2581 `▁` for a space, as SentencePiece writes them, except user-defined
/// pieces, which hold their literal text (Gemma's runs of spaces are stored as spaces).
#[derive(Debug, Clone, PartialEq)]
pub struct SpmVocab {
    /// `tokenizer.ggml.tokens`: the text of each token, indexed by id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores`: the SentencePiece log-probability of each piece; a merge
    /// that forms a higher-scoring piece runs first.
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.token_type`.
    pub token_types: Vec<TokenType>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`: whether callers should prepend BOS by default.
    pub add_bos: bool,
    /// `tokenizer.ggml.add_eos_token`: whether EOS follows the text when special tokens
    /// are added.
    pub add_eos: bool,
    /// `tokenizer.ggml.add_space_prefix`: whether a space is put before text that starts
    /// the input or follows a special token (false for Gemma).
    pub add_space_prefix: bool,
}

impl SpmVocab {
    /// Returns the number of tokens.
    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }

    /// Checks the invariants every later step relies on.
    ///
    /// # Errors
    ///
    /// [`TokenizerError::EmptyVocab`], [`TokenizerError::VocabTooLarge`],
    /// [`TokenizerError::LengthMismatch`] when `scores` or `token_types` do not have one
    /// entry per token, [`TokenizerError::NonFiniteScore`], and
    /// [`TokenizerError::SpecialIdOutOfRange`] for a special id past the end.
    pub fn validate(&self) -> Result<(), TokenizerError> {
        let n_vocab = self.tokens.len();
        if n_vocab == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        if n_vocab > MAX_VOCAB {
            return Err(TokenizerError::VocabTooLarge {
                n_vocab,
                max: MAX_VOCAB,
            });
        }

        let arrays = [
            ("tokenizer.ggml.scores", self.scores.len()),
            ("tokenizer.ggml.token_type", self.token_types.len()),
        ];
        for (field, found) in arrays {
            if found != n_vocab {
                return Err(TokenizerError::LengthMismatch {
                    field,
                    found,
                    n_vocab,
                });
            }
        }

        for (id, (&score, piece)) in self.scores.iter().zip(&self.tokens).enumerate() {
            if !score.is_finite() {
                return Err(TokenizerError::NonFiniteScore {
                    id: id as u32,
                    piece: piece.clone(),
                    score,
                });
            }
        }

        let specials = [
            ("bos", self.bos_id),
            ("eos", self.eos_id),
            ("unknown", self.unk_id),
            ("padding", self.pad_id),
        ];
        for (role, id) in specials {
            if let Some(id) = id {
                if id as usize >= n_vocab {
                    return Err(TokenizerError::SpecialIdOutOfRange {
                        role,
                        id: u64::from(id),
                        n_vocab,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Returns the byte a `<0xXX>` piece stands for, or `None` for any other text.
pub(crate) fn parse_byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// Returns the `<0xXX>` piece for `byte`, as SentencePiece names it.
pub(crate) fn byte_piece(byte: u8) -> String {
    format!("<0x{byte:02X}>")
}
