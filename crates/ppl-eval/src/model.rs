//! The model-independent interface that every evaluation in this crate drives.

use crate::error::BoxError;

/// A causal language model that returns next-token logits for a fresh context.
///
/// Implementations evaluate `tokens` at positions `0..tokens.len()` with an empty
/// KV cache on every call, like llama-perplexity after it clears the cache for
/// each chunk.
///
/// # Examples
///
/// A model that predicts every token with equal probability has perplexity
/// `n_vocab`:
///
/// ```
/// use ppl_eval::{BoxError, LogitsModel};
///
/// struct Uniform;
///
/// impl LogitsModel for Uniform {
///     fn n_vocab(&self) -> usize { 8 }
///     fn bos_token(&self) -> Option<u32> { Some(0) }
///     fn eval_chunk(&mut self, tokens: &[u32], first_output: usize) -> Result<Vec<f32>, BoxError> {
///         Ok(vec![0.0; (tokens.len() - first_output) * self.n_vocab()])
///     }
/// }
///
/// let tokens: Vec<u32> = (0..64).map(|i| i % 8).collect();
/// let result = ppl_eval::perplexity(&mut Uniform, &tokens, &ppl_eval::PerplexityConfig::new(16), |_| {})?;
/// assert!((result.ppl - 8.0).abs() < 1e-9);
/// # Ok::<(), ppl_eval::PplError>(())
/// ```
pub trait LogitsModel {
    /// Returns the vocabulary size, the length of one logits row.
    fn n_vocab(&self) -> usize;

    /// Returns the token that replaces the first token of every chunk, or `None`
    /// for a vocabulary that adds no BOS (`tokenizer.ggml.add_bos_token = false`).
    fn bos_token(&self) -> Option<u32>;

    /// Evaluates `tokens` from position 0 and returns the logits of positions
    /// `first_output..tokens.len()`, row-major, `n_vocab` values per row.
    ///
    /// # Errors
    ///
    /// Returns the model's own error, which callers wrap with the chunk number.
    fn eval_chunk(&mut self, tokens: &[u32], first_output: usize) -> Result<Vec<f32>, BoxError>;
}

impl<M: LogitsModel + ?Sized> LogitsModel for &mut M {
    fn n_vocab(&self) -> usize {
        (**self).n_vocab()
    }

    fn bos_token(&self) -> Option<u32> {
        (**self).bos_token()
    }

    fn eval_chunk(&mut self, tokens: &[u32], first_output: usize) -> Result<Vec<f32>, BoxError> {
        (**self).eval_chunk(tokens, first_output)
    }
}
