//! [`LogitsModel`] for `gemma2_model::Model`, and text tokenization as
//! llama-perplexity does it.

use gemma2_model::Model;

use crate::error::{BoxError, PplError, Result};
use crate::model::LogitsModel;

impl LogitsModel for Model {
    fn n_vocab(&self) -> usize {
        self.config().n_vocab
    }

    /// Returns the model's BOS id: every Gemma vocabulary sets
    /// `tokenizer.ggml.add_bos_token`, so every chunk starts with BOS.
    fn bos_token(&self) -> Option<u32> {
        Some(Model::bos_token(self))
    }

    fn eval_chunk(&mut self, tokens: &[u32], first_output: usize) -> Result<Vec<f32>, BoxError> {
        Ok(self.forward(tokens, first_output, None)?)
    }
}

/// Tokenizes `text` once for a perplexity run, as llama-perplexity does: BOS
/// prepended and special-token text such as a literal `<bos>` kept as plain text.
///
/// # Errors
///
/// Returns [`PplError::MissingTokenizer`] when the model file has no
/// vocabulary and [`PplError::Tokenize`] when encoding fails.
pub fn tokenize_for_perplexity(model: &Model, text: &str) -> Result<Vec<u32>> {
    const ADD_BOS: bool = true;
    const PARSE_SPECIAL: bool = false;

    let tokenizer = model.tokenizer().ok_or(PplError::MissingTokenizer)?;
    tokenizer
        .encode(text, ADD_BOS, PARSE_SPECIAL)
        .map_err(|error| PplError::Tokenize {
            source: Box::new(error),
        })
}
