//! Derives BPE merges from SentencePiece scores and builds the `tokenizers` BPE model.
//!
//! llama.cpp's SentencePiece tokenizer (`llm_tokenizer_spm`) starts from single characters
//! and repeatedly joins the adjacent pair whose concatenation is a token with the highest
//! score, leftmost first on ties. A BPE model whose merges are every split `(left, right)`
//! of every token into two tokens, ranked by the joined token's score, makes the same
//! choices. This is the construction Hugging Face's converters use for SentencePiece BPE
//! models.

use ahash::AHashMap;
use tokenizers::models::bpe::BPE;

use super::error::TokenizerError;
use super::vocab::{byte_piece, SpmVocab};

/// Maps each token text to its id; when two ids share a text the later id wins, as in
/// llama.cpp's `token_to_id` map.
pub(crate) fn token_to_id(vocab: &SpmVocab) -> AHashMap<String, u32> {
    let mut map = AHashMap::with_capacity(vocab.tokens.len());
    for (id, piece) in vocab.tokens.iter().enumerate() {
        map.insert(piece.clone(), id as u32);
    }
    map
}

/// Lists every split of a token into two tokens, best merge first.
///
/// Merges are ordered by the joined token's score (higher first), then by its id, then by
/// the split position. The work is linear in the total length of the pieces.
// NOTE: llama.cpp breaks a score tie between two different tokens by text position, BPE by
// rank. Only the -1000 control and user-defined tokens share scores in Gemma's vocabulary,
// and their text is split out before merging, so the two orders agree on Gemma.
pub(crate) fn derive_merges(
    vocab: &SpmVocab,
    token_to_id: &AHashMap<String, u32>,
) -> Vec<(String, String)> {
    let mut ranked: Vec<(f32, u32, usize)> = Vec::new();
    for (piece, &id) in token_to_id {
        for (split, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(split);
            if token_to_id.contains_key(left) && token_to_id.contains_key(right) {
                ranked.push((vocab.scores[id as usize], id, split));
            }
        }
    }

    ranked.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));

    ranked
        .into_iter()
        .map(|(_, id, split)| {
            let (left, right) = vocab.tokens[id as usize].split_at(split);
            (left.to_string(), right.to_string())
        })
        .collect()
}

/// Builds the byte-fallback BPE model for `vocab`, given its text-to-id map, and returns it
/// with the id of each `<0xXX>` byte token.
///
/// # Errors
///
/// [`TokenizerError::MissingByteToken`] when a byte has no `<0xXX>` piece, and
/// [`TokenizerError::Hf`] when `tokenizers` rejects the model.
pub(crate) fn build_bpe(
    vocab: &SpmVocab,
    token_to_id: AHashMap<String, u32>,
) -> Result<(BPE, [u32; 256]), TokenizerError> {
    let mut byte_ids = [0u32; 256];
    for (byte, slot) in byte_ids.iter_mut().enumerate() {
        let byte = byte as u8;
        *slot = *token_to_id
            .get(&byte_piece(byte))
            .ok_or(TokenizerError::MissingByteToken { byte })?;
    }

    let merges = derive_merges(vocab, &token_to_id);
    let bpe = BPE::builder()
        .vocab_and_merges(token_to_id, merges)
        .byte_fallback(true)
        .build()
        .map_err(TokenizerError::hf)?;
    Ok((bpe, byte_ids))
}
