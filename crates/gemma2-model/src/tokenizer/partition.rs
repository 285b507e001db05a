//! Splits text around special-token text the way llama.cpp's `tokenizer_st_partition` does.
//!
//! llama.cpp takes the control, unknown and user-defined tokens, sorts them by text length
//! (longest first) and, token by token, splits every remaining text fragment at each
//! left-to-right occurrence of that token's text. User-defined tokens are always split out;
//! control and unknown tokens only when special-token parsing is on. The result is not the
//! leftmost-longest match of an ordinary multi-pattern search: a longer token claims its
//! occurrences before any shorter token is looked at, wherever they lie.
//!
//! This module finds every occurrence of every candidate at once with Aho-Corasick, then
//! accepts them in llama.cpp's token order, skipping any occurrence that overlaps text an
//! earlier one claimed. That gives llama.cpp's fragments in time linear in the text plus
//! the number of occurrences.

use std::ops::Range;

use aho_corasick::{AhoCorasick, MatchKind};

use super::attr::TokenAttr;
use super::error::TokenizerError;
use super::vocab::SpmVocab;

/// A piece of the input after special-token splitting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// Text matched to a special token.
    Token(u32),
    /// Ordinary text for the SentencePiece merges, as a byte range of the input.
    Text(Range<usize>),
}

/// One special token the matcher looks for.
#[derive(Debug, Clone)]
struct Candidate {
    id: u32,
    /// Position in llama.cpp's order: longer text first, then lower id.
    priority: u32,
    /// Whether the token is matched even when special-token parsing is off.
    always: bool,
}

/// The special-token splitter of one vocabulary.
#[derive(Debug, Clone)]
pub(crate) struct SpecialTokenMatcher {
    automaton: Option<AhoCorasick>,
    /// Indexed by Aho-Corasick pattern id.
    candidates: Vec<Candidate>,
}

impl SpecialTokenMatcher {
    /// Builds the matcher over the tokens whose llama.cpp attributes `attrs` include control,
    /// unknown or user-defined.
    ///
    /// # Errors
    ///
    /// [`TokenizerError::SpecialTokenMatcher`] when `aho-corasick` cannot build the automaton
    /// (the pattern set is too large).
    pub(crate) fn new(vocab: &SpmVocab, attrs: &[TokenAttr]) -> Result<Self, TokenizerError> {
        let special = TokenAttr::CONTROL | TokenAttr::UNKNOWN | TokenAttr::USER_DEFINED;
        let parse_special_only = TokenAttr::CONTROL | TokenAttr::UNKNOWN;
        // NOTE: llama.cpp orders tokens of equal length with an unstable std::sort, so their
        // order there is unspecified. This takes the lower id first. No two equal-length
        // special tokens of Gemma 3 overlap in text, so the choice cannot change its output.
        let mut order: Vec<u32> = (0..vocab.tokens.len() as u32)
            .filter(|&id| {
                // An empty text would match everywhere; llama.cpp cannot split on it either.
                attrs[id as usize].intersects(special) && !vocab.tokens[id as usize].is_empty()
            })
            .collect();
        order.sort_by(|&a, &b| {
            let (len_a, len_b) = (
                vocab.tokens[a as usize].len(),
                vocab.tokens[b as usize].len(),
            );
            len_b.cmp(&len_a).then(a.cmp(&b))
        });

        let mut candidates: Vec<Candidate> = order
            .iter()
            .enumerate()
            .map(|(priority, &id)| Candidate {
                id,
                priority: priority as u32,
                always: !attrs[id as usize].intersects(parse_special_only),
            })
            .collect();
        candidates.sort_by_key(|c| c.id);

        if candidates.is_empty() {
            return Ok(SpecialTokenMatcher {
                automaton: None,
                candidates,
            });
        }
        let patterns = candidates
            .iter()
            .map(|c| vocab.tokens[c.id as usize].as_bytes());
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(patterns)
            .map_err(|e| TokenizerError::SpecialTokenMatcher(e.to_string()))?;
        Ok(SpecialTokenMatcher {
            automaton: Some(automaton),
            candidates,
        })
    }

    /// Splits `text` into special tokens and ordinary text, in input order.
    pub(crate) fn partition(&self, text: &[u8], parse_special: bool) -> Vec<Fragment> {
        if text.is_empty() {
            return Vec::new();
        }
        let Some(automaton) = &self.automaton else {
            return vec![Fragment::Text(0..text.len())];
        };

        // Every occurrence of every eligible token, in llama.cpp's processing order.
        let mut occurrences: Vec<(u32, usize, usize, u32)> = automaton
            .find_overlapping_iter(text)
            .filter_map(|m| {
                let candidate = &self.candidates[m.pattern().as_usize()];
                (parse_special || candidate.always).then_some((
                    candidate.priority,
                    m.start(),
                    m.end(),
                    candidate.id,
                ))
            })
            .collect();
        occurrences.sort_unstable();

        // Claim text in that order; an occurrence touching claimed bytes lies across a
        // fragment boundary llama.cpp has already cut, so it is skipped.
        let mut claimed = vec![false; text.len()];
        let mut accepted: Vec<(usize, usize, u32)> = Vec::new();
        for (_, start, end, id) in occurrences {
            if claimed[start..end].iter().any(|&c| c) {
                continue;
            }
            claimed[start..end].fill(true);
            accepted.push((start, end, id));
        }
        accepted.sort_unstable();

        let mut fragments = Vec::with_capacity(2 * accepted.len() + 1);
        let mut cursor = 0;
        for (start, end, id) in accepted {
            if start > cursor {
                fragments.push(Fragment::Text(cursor..start));
            }
            fragments.push(Fragment::Token(id));
            cursor = end;
        }
        if cursor < text.len() {
            fragments.push(Fragment::Text(cursor..text.len()));
        }
        fragments
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::attr::token_attrs;
    use crate::tokenizer::merges::token_to_id;
    use crate::tokenizer::vocab::TokenType;

    fn matcher(v: &SpmVocab) -> SpecialTokenMatcher {
        SpecialTokenMatcher::new(v, &token_attrs(v, &token_to_id(v))).unwrap()
    }

    fn vocab(pieces: &[(&str, TokenType)]) -> SpmVocab {
        SpmVocab {
            tokens: pieces.iter().map(|(p, _)| p.to_string()).collect(),
            scores: vec![0.0; pieces.len()],
            token_types: pieces.iter().map(|(_, t)| *t).collect(),
            bos_id: None,
            eos_id: None,
            unk_id: None,
            pad_id: None,
            add_bos: false,
            add_eos: false,
            add_space_prefix: false,
        }
    }

    #[test]
    fn longer_token_claims_first_even_to_the_right() {
        // Leftmost-longest matching would take "ab" then "cd"; llama.cpp takes "bcd" first.
        let v = vocab(&[
            ("ab", TokenType::UserDefined),
            ("bcd", TokenType::UserDefined),
        ]);
        let matcher = matcher(&v);
        let fragments = matcher.partition(b"abcd", false);
        assert_eq!(fragments, vec![Fragment::Text(0..1), Fragment::Token(1)]);
    }

    #[test]
    fn control_tokens_need_parse_special() {
        let v = vocab(&[
            ("<bos>", TokenType::Control),
            ("\t", TokenType::UserDefined),
        ]);
        let matcher = matcher(&v);
        assert_eq!(
            matcher.partition(b"<bos>x\t", true),
            vec![Fragment::Token(0), Fragment::Text(5..6), Fragment::Token(1)]
        );
        assert_eq!(
            matcher.partition(b"<bos>x\t", false),
            vec![Fragment::Text(0..6), Fragment::Token(1)]
        );
    }

    #[test]
    fn repeated_token_splits_left_to_right() {
        // Five tabs with a 2-tab token: two matches and one leftover tab of text.
        let v = vocab(&[("\t\t", TokenType::UserDefined)]);
        let matcher = matcher(&v);
        assert_eq!(
            matcher.partition(b"\t\t\t\t\t", false),
            vec![Fragment::Token(0), Fragment::Token(0), Fragment::Text(4..5)]
        );
    }
}
