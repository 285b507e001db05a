//! llama.cpp's per-token attributes, which can differ from the token types in the file.
//!
//! When llama.cpp loads a vocabulary it looks tokens up by text. It marks end-of-generation,
//! end-of-turn and fill-in-the-middle tokens as control tokens whatever type the file gives
//! them, and it applies a few model-specific fixes. A control token is split out of the
//! text only when special-token parsing is on, so these marks change token ids: Gemma 3 stores
//! `</s>` as user-defined, yet llama.cpp tokenizes `</s>` as plain text unless special tokens
//! are parsed. The lists below are those of llama.cpp b11312 (`llama_vocab::impl::load`).

use ahash::AHashMap;

use super::vocab::{SpmVocab, TokenType};

/// Texts llama.cpp treats as end-of-generation tokens and marks as control.
const END_OF_GENERATION_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>",
    "[e~[",
];

/// Texts llama.cpp looks for as end-of-turn and fill-in-the-middle tokens and marks as
/// control (those not already in [`END_OF_GENERATION_TEXTS`]).
// NOTE: llama.cpp marks only the first match per role, in hash-map order, and none when the
// file names the token through a key such as tokenizer.ggml.eot_token_id. This marks every
// match, so the two differ for a vocabulary with two candidates for one role.
const ROLE_TEXTS: &[&str] = &[
    "<\u{ff5c}fim\u{2581}begin\u{ff5c}>",
    "<\u{ff5c}fim\u{2581}hole\u{ff5c}>",
    "<\u{ff5c}fim\u{2581}end\u{ff5c}>",
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<PRE>",
    "\u{2581}<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<SUF>",
    "\u{2581}<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<MID>",
    "\u{2581}<MID>",
    "<|code_middle|>",
    "<|middle|>",
    "<|fim_pad|>",
    "<fim-pad>",
    "<fim_pad>",
    "<PAD>",
    "[PAD]",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
    "<|file_sep|>",
];

/// Texts llama.cpp forces to plain user-defined tokens (gpt-oss), so they are always matched.
const FORCED_USER_DEFINED_TEXTS: &[&str] =
    &["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"];

/// The attribute bits of llama.cpp's `llama_token_attr` that tokenization depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TokenAttr(u8);

impl TokenAttr {
    pub(crate) const NORMAL: TokenAttr = TokenAttr(1);
    pub(crate) const UNKNOWN: TokenAttr = TokenAttr(1 << 1);
    pub(crate) const CONTROL: TokenAttr = TokenAttr(1 << 2);
    pub(crate) const USER_DEFINED: TokenAttr = TokenAttr(1 << 3);
    pub(crate) const BYTE: TokenAttr = TokenAttr(1 << 4);
    pub(crate) const UNUSED: TokenAttr = TokenAttr(1 << 5);

    fn from_type(token_type: TokenType) -> TokenAttr {
        match token_type {
            TokenType::Undefined => TokenAttr(0),
            TokenType::Normal => TokenAttr::NORMAL,
            TokenType::Unknown => TokenAttr::UNKNOWN,
            TokenType::Control => TokenAttr::CONTROL,
            TokenType::UserDefined => TokenAttr::USER_DEFINED,
            TokenType::Unused => TokenAttr::UNUSED,
            TokenType::Byte => TokenAttr::BYTE,
        }
    }

    /// Returns whether any bit of `other` is set.
    pub(crate) fn intersects(self, other: TokenAttr) -> bool {
        self.0 & other.0 != 0
    }

    fn insert(&mut self, other: TokenAttr) {
        self.0 |= other.0;
    }
}

impl std::ops::BitOr for TokenAttr {
    type Output = TokenAttr;

    fn bitor(self, other: TokenAttr) -> TokenAttr {
        TokenAttr(self.0 | other.0)
    }
}

/// Computes the attributes llama.cpp gives each token of `vocab` after its by-text fixes.
pub(crate) fn token_attrs(vocab: &SpmVocab, token_to_id: &AHashMap<String, u32>) -> Vec<TokenAttr> {
    let mut attrs: Vec<TokenAttr> = vocab
        .token_types
        .iter()
        .map(|&t| TokenAttr::from_type(t))
        .collect();
    let id_of = |text: &str| token_to_id.get(text).map(|&id| id as usize);

    for text in END_OF_GENERATION_TEXTS.iter().chain(ROLE_TEXTS) {
        if let Some(id) = id_of(text) {
            attrs[id].insert(TokenAttr::CONTROL);
        }
    }
    for text in FORCED_USER_DEFINED_TEXTS {
        if let Some(id) = id_of(text) {
            attrs[id] = TokenAttr::USER_DEFINED;
        }
    }

    // gpt-oss and solar-open use `<|end|>` inside a turn, so llama.cpp demotes it when their
    // end tokens are present.
    let has = |text: &str| id_of(text).is_some();
    let harmony = has("<|return|>") && has("<|call|>");
    let solar = (has("<|call|>") || has("<|calls|>")) && has("<|flush|>");
    if let Some(end) = id_of("<|end|>").filter(|_| harmony || solar) {
        attrs[end] = TokenAttr::USER_DEFINED;
    }

    // Gemma 4 and PLaMo use `</s>` as ordinary text. The PLaMo marker counts only as the
    // EOS token, the one way it joins llama.cpp's end-of-generation list.
    let eos_text = vocab.eos_id.map(|id| vocab.tokens[id as usize].as_str());
    if has("<|tool_response>") || eos_text == Some("<|plamo:eos|>") {
        if let Some(s) = id_of("</s>") {
            attrs[s] = TokenAttr::NORMAL;
        }
    }
    attrs
}
