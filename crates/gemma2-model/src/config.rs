//! Model hyperparameters, read from GGUF metadata or a Hugging Face `config.json`.

use crate::error::ModelError;

/// The model family, which decides the graph details listed on [`Config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// Gemma 2: attention and final logit soft-capping, every other layer local.
    Gemma2,
    /// Gemma 3 (text): RMSNorm on Q and K, five local layers to one global.
    Gemma3,
}

impl Arch {
    /// Parses a GGUF `general.architecture` value.
    ///
    /// # Errors
    /// [`ModelError::UnsupportedArchitecture`] for anything but `gemma2` and `gemma3`.
    pub fn from_gguf_name(name: &str) -> Result<Arch, ModelError> {
        match name {
            "gemma2" => Ok(Arch::Gemma2),
            "gemma3" => Ok(Arch::Gemma3),
            other => Err(ModelError::UnsupportedArchitecture(other.to_owned())),
        }
    }

    /// Returns the GGUF architecture name, which is also the prefix of its metadata keys.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Arch::Gemma2 => "gemma2",
            Arch::Gemma3 => "gemma3",
        }
    }

    /// Returns llama.cpp's sliding-window layer pattern: layer `il` is local when
    /// `il % pattern < pattern - 1`.
    pub fn default_swa_pattern(self) -> usize {
        match self {
            Arch::Gemma2 => GEMMA2_SWA_PATTERN,
            Arch::Gemma3 => GEMMA3_SWA_PATTERN,
        }
    }

    /// Returns the layer count of this family's 27B size, whose query scale llama.cpp
    /// derives from `n_embd / n_head` instead of the head size.
    fn layer_count_27b(self) -> usize {
        match self {
            Arch::Gemma2 => 46,
            Arch::Gemma3 => 62,
        }
    }
}

/// Gemma 2 alternates local and global layers, starting with a local one.
pub const GEMMA2_SWA_PATTERN: usize = 2;

/// Gemma 3 has five local layers, then one global (layers 5, 11, 17, ... are global).
pub const GEMMA3_SWA_PATTERN: usize = 6;

/// llama.cpp's Gemma 2 attention soft-cap when `gemma2.attn_logit_softcapping` is absent.
pub const GEMMA2_DEFAULT_ATTN_SOFTCAP: f32 = 50.0;

/// llama.cpp's Gemma 2 final soft-cap when `gemma2.final_logit_softcapping` is absent.
pub const GEMMA2_DEFAULT_FINAL_SOFTCAP: f32 = 30.0;

/// llama.cpp's Gemma 2 sliding window (tokens) when `gemma2.attention.sliding_window` is
/// absent.
pub const GEMMA2_DEFAULT_SLIDING_WINDOW: usize = 4096;

/// RoPE base of Gemma 3's local layers, hard-coded in llama.cpp (GGUF files do not store it).
pub const GEMMA3_LOCAL_ROPE_BASE: f32 = 10_000.0;

/// RoPE base when `{arch}.rope.freq_base` is absent (llama.cpp's default).
pub const DEFAULT_ROPE_BASE: f32 = 10_000.0;

/// The hyperparameters of a Gemma 2 or Gemma 3 model.
///
/// Both loaders fill every field, applying llama.cpp's defaults where the file is silent, so
/// the forward pass reads only this struct.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Model family.
    pub arch: Arch,
    /// Width of the residual stream (`embedding_length`).
    pub n_embd: usize,
    /// Number of transformer blocks (`block_count`).
    pub n_layer: usize,
    /// Number of query heads (`attention.head_count`).
    pub n_head: usize,
    /// Number of key/value heads (`attention.head_count_kv`); each serves
    /// `n_head / n_head_kv` query heads.
    pub n_head_kv: usize,
    /// Size of one head for Q, K and V (`attention.key_length`, equal to `value_length`).
    pub head_dim: usize,
    /// Hidden width of the feed-forward network (`feed_forward_length`).
    pub n_ff: usize,
    /// Vocabulary size: the number of rows of `token_embd.weight`.
    pub n_vocab: usize,
    /// Context length the model was trained with (`context_length`), in tokens.
    pub n_ctx_train: usize,
    /// Epsilon of every RMSNorm (`attention.layer_norm_rms_epsilon`).
    pub rms_eps: f32,
    /// Sliding window of local layers, in tokens: a key at position `p0` is hidden from a
    /// query at `p1` when `p1 - p0 >= sliding_window`.
    pub sliding_window: usize,
    /// Layer `il` is local (sliding window) when `il % swa_pattern < swa_pattern - 1`.
    pub swa_pattern: usize,
    /// Attention logits become `c * tanh(s / c)` before the mask when set (Gemma 2).
    pub attn_softcap: Option<f32>,
    /// Output logits become `c * tanh(l / c)` when set (Gemma 2).
    pub final_softcap: Option<f32>,
    /// RoPE base of global layers (`rope.freq_base`).
    pub rope_base_global: f32,
    /// RoPE base of local layers (Gemma 2: the same as global; Gemma 3: 10000).
    pub rope_base_local: f32,
    /// Linear RoPE scaling factor of global layers (`rope.scaling.factor`): positions are
    /// divided by it. 1.0 means no scaling. Local layers never scale.
    pub rope_scale: f32,
    /// Factor applied to Q before the dot products with K.
    pub query_scale: f32,
}

impl Config {
    /// Reports whether layer `il` uses the sliding window.
    pub fn is_sliding(&self, il: usize) -> bool {
        il % self.swa_pattern < self.swa_pattern - 1
    }

    /// Returns the RoPE base and position divisor (linear scaling factor) of layer `il`.
    pub fn rope_params(&self, il: usize) -> (f32, f32) {
        if self.is_sliding(il) {
            (self.rope_base_local, 1.0)
        } else {
            (self.rope_base_global, self.rope_scale)
        }
    }

    /// Returns llama.cpp's query scale: `1/sqrt(n_embd / n_head)` for the 27B sizes (Gemma 2
    /// with 46 layers, Gemma 3 with 62), `1/sqrt(head_dim)` otherwise.
    ///
    /// llama.cpp stores no `query_pre_attn_scalar` in GGUF and infers it this way.
    pub fn llama_cpp_query_scale(arch: Arch, n_layer: usize, n_embd: usize, n_head: usize, head_dim: usize) -> f32 {
        if n_layer == arch.layer_count_27b() {
            1.0 / ((n_embd / n_head) as f32).sqrt()
        } else {
            1.0 / (head_dim as f32).sqrt()
        }
    }

    /// Checks that the sizes are non-zero and fit together.
    ///
    /// # Errors
    /// [`ModelError::InvalidKey`] naming the first inconsistent hyperparameter.
    pub fn validate(&self) -> Result<(), ModelError> {
        let prefix = self.arch.gguf_name();
        let invalid = |key: &str, message: String| ModelError::InvalidKey {
            key: format!("{prefix}.{key}"),
            message,
        };

        let sizes = [
            ("embedding_length", self.n_embd),
            ("block_count", self.n_layer),
            ("attention.head_count", self.n_head),
            ("attention.head_count_kv", self.n_head_kv),
            ("attention.key_length", self.head_dim),
            ("feed_forward_length", self.n_ff),
            ("attention.sliding_window", self.sliding_window),
        ];
        for (key, value) in sizes {
            if value == 0 {
                return Err(invalid(key, "must be positive, found 0".into()));
            }
        }
        if self.n_vocab == 0 {
            return Err(ModelError::InvalidInput("vocabulary size is 0".into()));
        }

        if self.n_head % self.n_head_kv != 0 {
            return Err(invalid(
                "attention.head_count_kv",
                format!("{} does not divide head_count {}", self.n_head_kv, self.n_head),
            ));
        }
        if self.head_dim % 2 != 0 {
            return Err(invalid(
                "attention.key_length",
                format!("{} is odd, but RoPE rotates pairs of dimensions", self.head_dim),
            ));
        }

        let floats = [
            ("attention.layer_norm_rms_epsilon", self.rms_eps),
            ("rope.freq_base", self.rope_base_global),
            ("rope.scaling.factor", self.rope_scale),
        ];
        for (key, value) in floats {
            if !(value.is_finite() && value > 0.0) {
                return Err(invalid(key, format!("must be a positive finite number, found {value}")));
            }
        }
        for (key, cap) in [
            ("attn_logit_softcapping", self.attn_softcap),
            ("final_logit_softcapping", self.final_softcap),
        ] {
            if let Some(cap) = cap {
                if !(cap.is_finite() && cap > 0.0) {
                    return Err(invalid(key, format!("must be a positive finite number, found {cap}")));
                }
            }
        }
        Ok(())
    }
}
