//! Mock models shared by the integration tests.

#![allow(dead_code)]

use ppl_eval::{BoxError, LogitsModel};

/// Returns a deterministic pseudo-random value in [0, 1) for `key` (SplitMix64).
pub fn unit_hash(key: u64) -> f32 {
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32
}

/// Returns a deterministic pseudo-random token stream with ids in `1..n_vocab`.
pub fn token_stream(len: usize, n_vocab: usize, seed: u64) -> Vec<u32> {
    (0..len)
        .map(|i| {
            1 + (unit_hash(seed ^ (i as u64) << 8) * (n_vocab - 1) as f32) as u32
                % (n_vocab as u32 - 1)
        })
        .collect()
}

/// A causal model whose logits depend on the current token, the previous token
/// and the position, with an optional perturbation that imitates quantization noise.
pub struct HashModel {
    pub n_vocab: usize,
    pub bos: Option<u32>,
    /// Scale of the pseudo-random perturbation added to every logit.
    pub noise: f32,
    /// Scale of the logits: larger is more confident.
    pub sharpness: f32,
}

impl HashModel {
    pub fn new(n_vocab: usize) -> Self {
        Self {
            n_vocab,
            bos: Some(0),
            noise: 0.0,
            sharpness: 6.0,
        }
    }

    pub fn row(&self, previous: u32, current: u32, position: usize) -> Vec<f32> {
        (0..self.n_vocab)
            .map(|v| {
                let key = (u64::from(previous) << 40) ^ (u64::from(current) << 20) ^ v as u64;
                let base = self.sharpness * unit_hash(key);
                // The next token is often current + 1, so the model has something to learn.
                let bonus = if v as u32 == (current + 1) % self.n_vocab as u32 {
                    3.0
                } else {
                    0.0
                };
                let noise =
                    self.noise * (unit_hash(key ^ 0xABCD_EF01 ^ (position as u64) << 50) - 0.5);
                base + bonus + noise
            })
            .collect()
    }
}

impl LogitsModel for HashModel {
    fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    fn bos_token(&self) -> Option<u32> {
        self.bos
    }

    fn eval_chunk(&mut self, tokens: &[u32], first_output: usize) -> Result<Vec<f32>, BoxError> {
        let mut logits = Vec::with_capacity((tokens.len() - first_output) * self.n_vocab);
        for position in first_output..tokens.len() {
            let previous = if position == 0 {
                u32::MAX
            } else {
                tokens[position - 1]
            };
            logits.extend(self.row(previous, tokens[position], position));
        }
        Ok(logits)
    }
}

/// A model that returns the same logits row at every position.
pub struct FixedRowModel {
    pub row: Vec<f32>,
    pub bos: Option<u32>,
}

impl LogitsModel for FixedRowModel {
    fn n_vocab(&self) -> usize {
        self.row.len()
    }

    fn bos_token(&self) -> Option<u32> {
        self.bos
    }

    fn eval_chunk(&mut self, tokens: &[u32], first_output: usize) -> Result<Vec<f32>, BoxError> {
        Ok(self.row.repeat(tokens.len() - first_output))
    }
}

/// A model that records every chunk it is given and returns zero logits.
pub struct RecordingModel {
    pub n_vocab: usize,
    pub bos: Option<u32>,
    pub calls: Vec<(Vec<u32>, usize)>,
}

impl LogitsModel for RecordingModel {
    fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    fn bos_token(&self) -> Option<u32> {
        self.bos
    }

    fn eval_chunk(&mut self, tokens: &[u32], first_output: usize) -> Result<Vec<f32>, BoxError> {
        self.calls.push((tokens.to_vec(), first_output));
        Ok(vec![0.0; (tokens.len() - first_output) * self.n_vocab])
    }
}

/// A model that wraps another and writes `value` into one logit of one chunk.
pub struct CorruptingModel<M> {
    pub inner: M,
    /// 0-based chunk index to corrupt.
    pub chunk: usize,
    /// Row offset from `first_output`.
    pub row: usize,
    pub vocab_index: usize,
    pub value: f32,
    pub calls: usize,
}

impl<M: LogitsModel> LogitsModel for CorruptingModel<M> {
    fn n_vocab(&self) -> usize {
        self.inner.n_vocab()
    }

    fn bos_token(&self) -> Option<u32> {
        self.inner.bos_token()
    }

    fn eval_chunk(&mut self, tokens: &[u32], first_output: usize) -> Result<Vec<f32>, BoxError> {
        let mut logits = self.inner.eval_chunk(tokens, first_output)?;
        if self.calls == self.chunk {
            let n_vocab = self.inner.n_vocab();
            logits[self.row * n_vocab + self.vocab_index] = self.value;
        }
        self.calls += 1;
        Ok(logits)
    }
}
