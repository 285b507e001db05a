//! The Gemma SentencePiece tokenizer, matching llama.cpp's token ids.
//!
//! [`GemmaTokenizer`] loads the vocabulary from GGUF metadata
//! ([`GemmaTokenizer::from_gguf_metadata`]) or from a Hugging Face `tokenizer.json`
//! ([`GemmaTokenizer::from_tokenizer_json`]) and encodes text in three steps, as
//! llama.cpp's `llama_tokenize` does for SentencePiece (`tokenizer.ggml.model = llama`)
//! vocabularies:
//!
//! 1. Special-token text is split out: user-defined tokens (Gemma's runs of spaces, tabs
//!    and newlines, HTML tags) always, control tokens (`<bos>`, `<start_of_turn>`) only when
//!    `parse_special` is set. Longer tokens claim their text first.
//! 2. In the remaining text each space becomes U+2581 `▁` (no space is prepended for
//!    Gemma, whose `add_space_prefix` is false).
//! 3. A byte-fallback BPE model from the `tokenizers` crate merges characters into pieces.
//!    Its merges are derived from the SentencePiece scores, so it picks the pieces
//!    llama.cpp's score-ordered merging picks. Characters without a piece become `<0xXX>`
//!    byte tokens.
//!
//! llama-tokenize parses special-token text by default; llama-perplexity and llama-imatrix
//! do not, so pass `parse_special = false` to reproduce their token streams.
//!
//! ```no_run
//! use gemma2_model::tokenizer::GemmaTokenizer;
//!
//! let file = gguf_format::GgufFile::open("gemma-3-270m-q4_k_m.gguf")?;
//! let tokenizer = GemmaTokenizer::from_gguf_metadata(file.metadata())?;
//! let ids = tokenizer.encode("Hello world", tokenizer.add_bos(), false)?;
//! assert_eq!(ids, [2, 9259, 1902]);
//! assert_eq!(tokenizer.decode(&ids[1..])?, "Hello world");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod attr;
mod error;
mod gguf;
mod hf_json;
mod merges;
mod partition;
mod vocab;

use std::path::Path;

use tokenizers::models::bpe::BPE;
use tokenizers::Model;

pub use error::TokenizerError;
pub use gguf::{gguf_metadata_from_tokenizer_json, TOKENIZER_GGUF_KEYS};
pub use hf_json::{
    spm_vocab_from_tokenizer_json, tokenizer_config_json_from_vocab, tokenizer_json_from_vocab,
};
pub use vocab::{SpmVocab, TokenType, MAX_VOCAB};

use attr::TokenAttr;
use partition::{Fragment, SpecialTokenMatcher};

/// The SentencePiece escape for a space, U+2581 LOWER ONE EIGHTH BLOCK.
pub const SPACE_ESCAPE: &str = "\u{2581}";

/// A Gemma tokenizer that produces llama.cpp's token ids.
///
/// Building one from the 262,144-token Gemma 3 vocabulary took 2 to 3 s, and encoding the
/// 1.3 MB `wiki.test.raw` about 1.3 s, on a shared 2-core x86-64 development machine under
/// heavy load (`tokenizer_gguf.rs` prints both times). Encoding takes `&self`, and the type
/// is `Send` and `Sync`.
#[derive(Debug, Clone)]
pub struct GemmaTokenizer {
    vocab: SpmVocab,
    /// llama.cpp's attributes of each token, which decide matching and decoding.
    attrs: Vec<TokenAttr>,
    bpe: BPE,
    specials: SpecialTokenMatcher,
    /// Token id of each `<0xXX>` byte piece.
    byte_ids: [u32; 256],
}

impl GemmaTokenizer {
    /// Builds a tokenizer from a SentencePiece vocabulary given as plain data.
    ///
    /// # Errors
    ///
    /// Any error of [`SpmVocab::validate`], [`TokenizerError::MissingByteToken`] when one of
    /// the 256 `<0xXX>` pieces is absent, [`TokenizerError::SpecialTokenMatcher`], and
    /// [`TokenizerError::Hf`] when `tokenizers` rejects the derived BPE model.
    ///
    /// # Examples
    ///
    /// ```
    /// use gemma2_model::tokenizer::{GemmaTokenizer, SpmVocab, TokenType};
    ///
    /// let mut tokens = vec!["<bos>".to_string(), "a".into(), "b".into(), "ab".into()];
    /// let mut scores = vec![-1000.0, -2.0, -3.0, -1.0];
    /// let mut token_types = vec![TokenType::Control, TokenType::Normal, TokenType::Normal, TokenType::Normal];
    /// for byte in 0..=255u8 {
    ///     tokens.push(format!("<0x{byte:02X}>"));
    ///     scores.push(0.0);
    ///     token_types.push(TokenType::Byte);
    /// }
    /// let vocab = SpmVocab {
    ///     tokens,
    ///     scores,
    ///     token_types,
    ///     bos_id: Some(0),
    ///     eos_id: None,
    ///     unk_id: None,
    ///     pad_id: None,
    ///     add_bos: true,
    ///     add_eos: false,
    ///     add_space_prefix: false,
    /// };
    /// let tokenizer = GemmaTokenizer::from_vocab(vocab)?;
    ///
    /// // "ab" merges; "c" has no piece and falls back to its byte token <0x63>.
    /// let byte_c = 4 + 0x63;
    /// assert_eq!(tokenizer.encode("abc", true, false)?, [0, 3, byte_c]);
    /// assert_eq!(tokenizer.decode(&[3, byte_c])?, "abc");
    /// # Ok::<(), gemma2_model::tokenizer::TokenizerError>(())
    /// ```
    pub fn from_vocab(vocab: SpmVocab) -> Result<Self, TokenizerError> {
        vocab.validate()?;
        let token_to_id = merges::token_to_id(&vocab);
        let attrs = attr::token_attrs(&vocab, &token_to_id);
        let specials = SpecialTokenMatcher::new(&vocab, &attrs)?;
        let (bpe, byte_ids) = merges::build_bpe(&vocab, token_to_id)?;
        Ok(GemmaTokenizer {
            vocab,
            attrs,
            bpe,
            specials,
            byte_ids,
        })
    }

    /// Builds a tokenizer from the `tokenizer.ggml.*` keys of GGUF metadata.
    ///
    /// Missing optional keys take llama.cpp's defaults for SentencePiece vocabularies:
    /// scores 0, token type normal, BOS 1, EOS 2, unknown 0, no padding, `add_bos_token`
    /// true, `add_eos_token` false, `add_space_prefix` true.
    ///
    /// # Errors
    ///
    /// [`TokenizerError::UnsupportedModel`] unless `tokenizer.ggml.model` is `llama`,
    /// [`TokenizerError::Metadata`] for a missing or mistyped key,
    /// [`TokenizerError::InvalidTokenType`], and the errors of [`GemmaTokenizer::from_vocab`].
    pub fn from_gguf_metadata(metadata: &gguf_format::Metadata) -> Result<Self, TokenizerError> {
        Self::from_vocab(gguf::spm_vocab_from_metadata(metadata)?)
    }

    /// Builds a tokenizer from a Hugging Face `tokenizer.json`, reading
    /// `tokenizer_config.json` beside it when present for `add_bos_token`,
    /// `add_eos_token` and the special tokens.
    ///
    /// The vocabulary is first converted to the form llama.cpp's converter writes to GGUF
    /// (see [`spm_vocab_from_tokenizer_json`]), so the ids equal llama.cpp's on the
    /// converted model.
    ///
    /// # Errors
    ///
    /// [`TokenizerError::Io`] and [`TokenizerError::InvalidJson`] for unreadable files,
    /// [`TokenizerError::UnsupportedTokenizerJson`] for a model other than BPE, and the
    /// errors of [`GemmaTokenizer::from_vocab`].
    pub fn from_tokenizer_json(path: &Path) -> Result<Self, TokenizerError> {
        Self::from_vocab(spm_vocab_from_tokenizer_json(path, None)?)
    }

    /// Encodes UTF-8 text; see [`GemmaTokenizer::encode_bytes`].
    ///
    /// # Errors
    ///
    /// As [`GemmaTokenizer::encode_bytes`].
    pub fn encode(
        &self,
        text: &str,
        add_bos: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        self.encode_bytes(text.as_bytes(), add_bos, parse_special)
    }

    /// Encodes raw bytes into token ids as llama.cpp's `llama_tokenize` does.
    ///
    /// `add_bos` prepends BOS; it plays the part of llama.cpp's `add_special`, so when the
    /// vocabulary sets `add_eos_token` it also appends EOS. `parse_special` turns control-token
    /// text such as `<start_of_turn>` into that token; user-defined tokens are matched either
    /// way.
    ///
    /// Invalid UTF-8 is kept, as llama.cpp keeps it. The input is cut into characters by
    /// their lead byte. A character that is not valid UTF-8 becomes one `<0xXX>` byte token
    /// per byte, as does any valid character without a piece.
    ///
    /// # Errors
    ///
    /// [`TokenizerError::NoBosToken`] or [`TokenizerError::NoEosToken`] when a token to add
    /// is undefined, and [`TokenizerError::Hf`] if the BPE model fails.
    pub fn encode_bytes(
        &self,
        bytes: &[u8],
        add_bos: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::with_capacity(bytes.len() / 3 + 2);
        if add_bos {
            ids.push(self.vocab.bos_id.ok_or(TokenizerError::NoBosToken)?);
        }

        // llama.cpp puts the space prefix before text at the start or after a special token.
        let mut after_special = true;
        let mut fragments = Vec::new();
        for fragment in self.specials.partition(bytes, parse_special) {
            let prefix = self.vocab.add_space_prefix && after_special;
            after_special = matches!(fragment, Fragment::Token(_));
            fragments.push((fragment, prefix));
        }

        self.encode_fragments(bytes, &fragments, &mut ids)?;

        if add_bos && self.vocab.add_eos {
            ids.push(self.vocab.eos_id.ok_or(TokenizerError::NoEosToken)?);
        }
        Ok(ids)
    }

    /// Appends the ids of `fragments`, each with its space-prefix flag, to `ids`.
    fn encode_fragments(
        &self,
        bytes: &[u8],
        fragments: &[(Fragment, bool)],
        ids: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        for (fragment, space_prefix) in fragments {
            match fragment {
                Fragment::Token(id) => ids.push(*id),
                Fragment::Text(range) => {
                    self.encode_text(&bytes[range.clone()], *space_prefix, ids)?;
                }
            }
        }
        Ok(())
    }

    /// Encodes one fragment of ordinary text: escapes spaces, then merges.
    fn encode_text(
        &self,
        bytes: &[u8],
        space_prefix: bool,
        ids: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let mut escaped = Vec::with_capacity(bytes.len() + bytes.len() / 2 + 3);
        if space_prefix {
            escaped.extend_from_slice(SPACE_ESCAPE.as_bytes());
        }
        for &byte in bytes {
            if byte == b' ' {
                escaped.extend_from_slice(SPACE_ESCAPE.as_bytes());
            } else {
                escaped.push(byte);
            }
        }

        if let Ok(text) = std::str::from_utf8(&escaped) {
            return self.merge(text, ids);
        }

        // Cut characters by lead byte as llama.cpp does. No token contains invalid UTF-8, so
        // merges never cross an invalid character and each valid run is merged on its own.
        let mut run_start = 0;
        let mut pos = 0;
        while pos < escaped.len() {
            let len = utf8_len(escaped[pos]).min(escaped.len() - pos);
            let character = &escaped[pos..pos + len];
            if std::str::from_utf8(character).is_err() {
                self.merge_bytes(&escaped[run_start..pos], ids)?;
                ids.extend(character.iter().map(|&b| self.byte_ids[usize::from(b)]));
                run_start = pos + len;
            }
            pos += len;
        }
        self.merge_bytes(&escaped[run_start..], ids)
    }

    /// Merges a run that is valid UTF-8 by construction; falls back to byte tokens if not.
    fn merge_bytes(&self, run: &[u8], ids: &mut Vec<u32>) -> Result<(), TokenizerError> {
        match std::str::from_utf8(run) {
            Ok(text) => self.merge(text, ids),
            Err(_) => {
                ids.extend(run.iter().map(|&b| self.byte_ids[usize::from(b)]));
                Ok(())
            }
        }
    }

    /// Runs the BPE merges over escaped text.
    fn merge(&self, text: &str, ids: &mut Vec<u32>) -> Result<(), TokenizerError> {
        if text.is_empty() {
            return Ok(());
        }
        let tokens = self.bpe.tokenize(text).map_err(TokenizerError::hf)?;
        ids.extend(tokens.iter().map(|t| t.id));
        Ok(())
    }

    /// Decodes token ids into the bytes they stand for, as llama.cpp's `llama_detokenize`
    /// with `unparse_special` does.
    ///
    /// Control, unknown and user-defined tokens give their text, normal pieces have `▁` turned
    /// back into spaces, byte tokens give their byte, and unused or undefined tokens give
    /// nothing. The types are llama.cpp's after its by-text fixes, so Gemma's `</s>` counts
    /// as control.
    ///
    /// # Errors
    ///
    /// [`TokenizerError::IdOutOfRange`] for an id past the end of the vocabulary.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>, TokenizerError> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let index = id as usize;
            let piece = self
                .vocab
                .tokens
                .get(index)
                .ok_or(TokenizerError::IdOutOfRange {
                    id,
                    n_vocab: self.vocab.n_vocab(),
                })?;
            let attr = self.attrs[index];
            let verbatim = TokenAttr::CONTROL | TokenAttr::UNKNOWN | TokenAttr::USER_DEFINED;
            if attr.intersects(verbatim) {
                out.extend_from_slice(piece.as_bytes());
            } else if attr.intersects(TokenAttr::NORMAL) {
                out.extend_from_slice(piece.replace(SPACE_ESCAPE, " ").as_bytes());
            } else if attr.intersects(TokenAttr::BYTE) {
                match vocab::parse_byte_piece(piece) {
                    Some(byte) => out.push(byte),
                    None => out.extend_from_slice(piece.as_bytes()),
                }
            }
        }
        Ok(out)
    }

    /// Decodes token ids into text; see [`GemmaTokenizer::decode_bytes`].
    ///
    /// Byte tokens that do not form valid UTF-8 become U+FFFD, as in `String::from_utf8_lossy`;
    /// use [`GemmaTokenizer::decode_bytes`] to keep them.
    ///
    /// # Errors
    ///
    /// [`TokenizerError::IdOutOfRange`] for an id past the end of the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let bytes = self.decode_bytes(ids)?;
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
        })
    }

    /// Returns the piece text of a token as the vocabulary stores it (`▁` for spaces), or
    /// `None` for an id past the end.
    pub fn token_to_piece(&self, id: u32) -> Option<&str> {
        self.vocab.tokens.get(id as usize).map(String::as_str)
    }

    /// Returns the type of a token, or `None` for an id past the end.
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.vocab.token_types.get(id as usize).copied()
    }

    /// Returns the BOS token id, if the vocabulary defines one.
    pub fn bos_id(&self) -> Option<u32> {
        self.vocab.bos_id
    }

    /// Returns the EOS token id, if the vocabulary defines one.
    pub fn eos_id(&self) -> Option<u32> {
        self.vocab.eos_id
    }

    /// Returns the vocabulary's `add_bos_token` flag. Pass it as `add_bos` to tokenize as
    /// llama.cpp's tools do.
    pub fn add_bos(&self) -> bool {
        self.vocab.add_bos
    }

    /// Returns the number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.vocab.n_vocab()
    }

    /// Returns the vocabulary.
    pub fn vocab(&self) -> &SpmVocab {
        &self.vocab
    }

    /// Returns the `tokenizer.ggml.*` metadata llama.cpp's converter writes for this
    /// vocabulary, in its order; see [`SpmVocab::to_gguf_metadata`].
    pub fn gguf_metadata(&self) -> Vec<(String, gguf_format::Value)> {
        self.vocab.to_gguf_metadata()
    }
}

/// Removes one trailing `\n` from the text of a prompt file, as llama.cpp's `-f/--file`
/// option does before llama-perplexity or llama-imatrix tokenizes it.
///
/// `wiki.test.raw` ends in `" \n \n"`, so without this step it tokenizes to one token more
/// than llama-perplexity counts. Both tools turn llama.cpp's escape processing off, so the
/// rest of the text is used as it is.
pub fn trim_prompt_file(text: &[u8]) -> &[u8] {
    text.strip_suffix(b"\n").unwrap_or(text)
}

/// Returns the length of the UTF-8 sequence a lead byte starts, read from its high nibble
/// as llama.cpp's `unicode_len_utf8` does. A stray continuation byte counts as one.
fn utf8_len(lead: u8) -> usize {
    const LEN_BY_HIGH_NIBBLE: [u8; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    usize::from(LEN_BY_HIGH_NIBBLE[usize::from(lead >> 4)])
}
