//! [`ActivationModel`] for the Gemma 2 / Gemma 3 forward pass of `gemma2-model`.

use gemma2_model::{MatmulHook, Model, ModelError};

use crate::collect::{
    collect_imatrix_with_progress, ActivationModel, ChunkReport, CollectOutcome, CollectParams,
};
use crate::collector::MatmulObserver;
use crate::error::ImatrixError;

/// Forwards `gemma2-model`'s matmul hook calls to a [`MatmulObserver`].
struct HookAdapter<'a> {
    observer: &'a mut dyn MatmulObserver,
}

impl MatmulHook for HookAdapter<'_> {
    fn on_matmul_input(&mut self, weight_name: &str, x: &[f32], n_rows: usize, n_cols: usize) {
        self.observer
            .on_matmul_input(weight_name, x, n_rows, n_cols);
    }
}

impl ActivationModel for Model {
    type Error = ModelError;

    fn bos_token(&self) -> u32 {
        Model::bos_token(self)
    }

    fn n_vocab(&self) -> usize {
        self.config().n_vocab
    }

    /// Runs [`Model::forward_sequences`], which evaluates every layer on all positions and
    /// applies the LM head only from `logits_from`, so the per-layer counts match
    /// llama-imatrix.
    fn evaluate(
        &self,
        sequences: &[&[u32]],
        logits_from: usize,
        observer: &mut dyn MatmulObserver,
        on_logits: &mut dyn FnMut(usize, Vec<f32>),
    ) -> Result<(), ModelError> {
        let mut hook = HookAdapter { observer };
        self.forward_sequences(sequences, logits_from, Some(&mut hook), on_logits)
    }
}

/// Tokenizes a calibration text with the model's own tokenizer and collects an imatrix over
/// it, as `llama-imatrix -m MODEL -f FILE` does.
///
/// The text is read as llama.cpp's `-f` reads it (one trailing newline removed), tokenized
/// once with BOS and without parsing special-token text, then passed to
/// [`collect_imatrix_with_progress`].
///
/// # Errors
/// [`ImatrixError::Tokenizer`] when the model has no tokenizer or tokenization fails, and
/// the errors of [`collect_imatrix_with_progress`].
pub fn collect_from_text(
    model: &Model,
    text: &[u8],
    params: &CollectParams,
    progress: impl FnMut(&ChunkReport),
) -> Result<CollectOutcome, ImatrixError> {
    let tokenizer = model.tokenizer().ok_or_else(|| ImatrixError::Tokenizer {
        detail: "the model file has no tokenizer (tokenizer.ggml.* keys)".to_owned(),
    })?;

    let text = gemma2_model::tokenizer::trim_prompt_file(text);
    let tokens =
        tokenizer
            .encode_bytes(text, true, false)
            .map_err(|e| ImatrixError::Tokenizer {
                detail: e.to_string(),
            })?;
    tracing::info!(tokens = tokens.len(), "tokenized calibration text");

    collect_imatrix_with_progress(model, &tokens, params, progress)
}
