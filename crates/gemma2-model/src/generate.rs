//! Greedy text generation.

use crate::error::ModelError;
use crate::Model;

impl Model {
    /// Extends `prompt_tokens` by up to `n_new` tokens, each the argmax of the logits, and
    /// returns only the new tokens. Generation stops early after the end-of-sequence token
    /// (which is included).
    ///
    /// Each step re-evaluates the whole sequence with [`Model::forward`], asking only for the
    /// last row of logits, so a step costs a prompt-sized batch: meant for short prompts and
    /// checks, not for serving.
    ///
    /// # Errors
    /// The errors of [`Model::forward`]; an empty prompt is [`ModelError::InvalidInput`].
    pub fn generate_greedy(&self, prompt_tokens: &[u32], n_new: usize) -> Result<Vec<u32>, ModelError> {
        if prompt_tokens.is_empty() {
            return Err(ModelError::InvalidInput("the prompt has no tokens; start it with BOS".into()));
        }
        let mut tokens = prompt_tokens.to_vec();
        let mut generated = Vec::with_capacity(n_new);

        for _ in 0..n_new {
            let logits = self.forward(&tokens, tokens.len() - 1, None)?;
            let next = argmax(&logits);
            tokens.push(next);
            generated.push(next);
            if next == self.eos_token {
                break;
            }
        }
        Ok(generated)
    }
}

/// Returns the index of the largest value (the first one on ties).
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}
