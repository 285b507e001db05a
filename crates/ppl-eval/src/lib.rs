//! Perplexity, KL divergence and paired comparisons, as llama-perplexity computes them.
//!
//! The crate drives any model that implements [`LogitsModel`]; the `gemma2`
//! feature implements it for `gemma2_model::Model`.
//!
//! - [`perplexity`] cuts a token stream into chunks of `n_ctx`, overwrites each
//!   chunk's first token with BOS and scores the second half of every chunk.
//!   It reports a running `[k]PPL` per chunk and `Final estimate: PPL = X +/- Y`,
//!   with llama.cpp's arithmetic (f32 logits, f64 sums of f32 exponentials).
//! - [`perplexity_with_kld_base`] also writes llama.cpp's `--kl-divergence-base`
//!   file, and [`kl_divergence`] reads one back ([`KldBaseReader`] validates it as
//!   untrusted input) to compute every statistic of llama.cpp's
//!   `--kl-divergence` report ([`KldStats`]).
//! - [`PairedComparison`] tells whether two models differ by more than noise,
//!   from per-token log-probabilities on the same tokens.
//!
//! # Examples
//!
//! ```
//! use ppl_eval::{BoxError, LogitsModel, PairedComparison, PerplexityConfig};
//!
//! /// Predicts token `(t + 1) % n` after token `t`, with confidence `sharpness`.
//! struct Counter { sharpness: f32 }
//!
//! impl LogitsModel for Counter {
//!     fn n_vocab(&self) -> usize { 16 }
//!     fn bos_token(&self) -> Option<u32> { Some(0) }
//!     fn eval_chunk(&mut self, tokens: &[u32], first_output: usize) -> Result<Vec<f32>, BoxError> {
//!         let mut logits = vec![0.0; (tokens.len() - first_output) * 16];
//!         for (row, &token) in logits.chunks_mut(16).zip(&tokens[first_output..]) {
//!             row[(token as usize + 1) % 16] = self.sharpness;
//!         }
//!         Ok(logits)
//!     }
//! }
//!
//! let tokens: Vec<u32> = (0..256).map(|i| i % 16).collect();
//! let config = PerplexityConfig::new(32);
//! let sharp = ppl_eval::perplexity(&mut Counter { sharpness: 4.0 }, &tokens, &config, |chunk| {
//!     print!("{chunk}");
//! })?;
//! let blunt = ppl_eval::perplexity(&mut Counter { sharpness: 3.0 }, &tokens, &config, |_| {})?;
//! println!("\n{sharp}");
//!
//! let comparison = PairedComparison::from_results(&sharp, &blunt)?;
//! assert!(comparison.ppl_ratio > 1.0);
//! # Ok::<(), ppl_eval::PplError>(())
//! ```

mod chunks;
mod error;
mod kl_divergence;
mod kld_file;
mod log_softmax;
mod model;
mod paired;
mod perplexity;
mod stats;

#[cfg(feature = "gemma2")]
pub mod gemma2;

pub use chunks::{ChunkPlan, MIN_N_CTX};
pub use error::{BoxError, PplError, Result};
pub use kl_divergence::{
    kl_divergence, KldChunkReport, KldResult, KldStats, Quantiles, MIN_TOKENS_FOR_STATISTICS,
};
pub use kld_file::{KldBaseHeader, KldBaseReader, KldBaseWriter, KLD_BASE_MAGIC};
pub use log_softmax::{exact_kl_divergence, token_nll};
pub use model::LogitsModel;
pub use paired::{Interval, PairedComparison, Z_95};
pub use perplexity::{
    perplexity, perplexity_with_kld_base, ChunkReport, PerplexityConfig, PerplexityResult,
};
pub use stats::Estimate;
