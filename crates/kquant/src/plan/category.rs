//! Tensor eligibility for llama-quantize and the role each tensor plays in a mix.

/// The role of a tensor in llama-quantize's mixes, found from its GGUF name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorCategory {
    /// `token_embd.weight`, also the output head when the model has no `output.weight`.
    TokenEmbedding,
    /// `output.weight`, the untied output head.
    Output,
    AttentionQ,
    AttentionK,
    AttentionV,
    /// A fused Q/K/V projection (`attn_qkv.weight`).
    AttentionQkv,
    /// A fused K/V up-projection (`attn_kv_b.weight`, DeepSeek's MLA).
    AttentionKvB,
    AttentionOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

impl TensorCategory {
    /// Classifies a tensor by substring of its GGUF name, in the order llama.cpp tests them.
    pub fn of(name: &str) -> TensorCategory {
        if name == "output.weight" {
            return TensorCategory::Output;
        }
        if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
            return TensorCategory::TokenEmbedding;
        }

        // The first match decides, in the order llama.cpp tests the substrings.
        let by_substring = [
            ("attn_qkv.weight", TensorCategory::AttentionQkv),
            ("attn_kv_b.weight", TensorCategory::AttentionKvB),
            ("attn_v.weight", TensorCategory::AttentionV),
            ("attn_k.weight", TensorCategory::AttentionK),
            ("attn_q.weight", TensorCategory::AttentionQ),
            ("attn_output.weight", TensorCategory::AttentionOutput),
            ("ffn_up", TensorCategory::FfnUp),
            ("ffn_gate", TensorCategory::FfnGate),
            ("ffn_down", TensorCategory::FfnDown),
        ];
        by_substring
            .iter()
            .find(|(needle, _)| name.contains(needle))
            .map(|(_, category)| *category)
            .unwrap_or(TensorCategory::Other)
    }

    /// Returns true for the value-projection-like tensors that the mixes give more bits.
    pub fn is_attention_v(self) -> bool {
        matches!(
            self,
            TensorCategory::AttentionV | TensorCategory::AttentionQkv | TensorCategory::AttentionKvB
        )
    }
}

/// Name fragments of small or sensitive tensors that llama-quantize never quantizes
/// (`tensor_allows_quantization`): MoE routers, Gemma 3n's altup/laurel and per-layer
/// projections, Mamba and LFM convolutions, RWKV's small time-mix matrices, T5's relative
/// position bias and multimodal position embeddings.
const NEVER_QUANTIZED: [&str; 22] = [
    "_norm.weight",
    "ffn_gate_inp.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
];

/// Returns true when llama-quantize would change this tensor's type at all: a matrix (2 or
/// more dims) whose name ends in `weight`, minus norms and the tensors in [`NEVER_QUANTIZED`],
/// and minus `output.weight` when `leave_output_tensor` is set.
pub fn allows_quantization(name: &str, n_dims: usize, leave_output_tensor: bool) -> bool {
    if n_dims < 2 || !name.ends_with("weight") {
        return false;
    }
    if leave_output_tensor && name == "output.weight" {
        return false;
    }
    if name == "position_embd.weight" || name == "token_types.weight" || name.contains(".position_embd.") {
        return false;
    }
    if name.contains("attn_rel_b.weight") {
        return false;
    }
    !NEVER_QUANTIZED.iter().any(|fragment| name.contains(fragment))
}

/// Returns the layer index of a `blk.N.` tensor name, or `None` for tensors outside the blocks.
pub fn layer_index(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("blk.")?;
    let digits = rest.split('.').next()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Orders tensor names as llama.cpp's model loader does (`weight_name_comparer`): tensors
/// outside the blocks first, then by layer index, then by name. The mixes count
/// `attn_v` and `ffn_down` tensors in this order, so the counters equal layer indices.
pub fn loader_order(a: &str, b: &str) -> std::cmp::Ordering {
    let layer = |name: &str| layer_index(name).map_or(-1, |i| i as i64);
    layer(a).cmp(&layer(b)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_of_gemma_names() {
        assert_eq!(TensorCategory::of("token_embd.weight"), TensorCategory::TokenEmbedding);
        assert_eq!(TensorCategory::of("blk.3.attn_v.weight"), TensorCategory::AttentionV);
        assert_eq!(TensorCategory::of("blk.3.attn_k.weight"), TensorCategory::AttentionK);
        assert_eq!(TensorCategory::of("blk.3.attn_output.weight"), TensorCategory::AttentionOutput);
        assert_eq!(TensorCategory::of("blk.3.ffn_down.weight"), TensorCategory::FfnDown);
        assert_eq!(TensorCategory::of("blk.3.attn_k_norm.weight"), TensorCategory::Other);
    }

    #[test]
    fn norms_and_vectors_stay() {
        assert!(!allows_quantization("blk.0.attn_norm.weight", 1, false));
        assert!(!allows_quantization("blk.0.attn_q_norm.weight", 2, false));
        assert!(!allows_quantization("blk.0.post_ffw_norm.weight", 2, false));
        assert!(!allows_quantization("blk.0.attn_q.bias", 2, false));
        assert!(allows_quantization("blk.0.attn_q.weight", 2, false));
        assert!(allows_quantization("output.weight", 2, false));
        assert!(!allows_quantization("output.weight", 2, true));
    }

    #[test]
    fn loader_order_puts_layers_numerically() {
        let mut names = vec!["blk.10.attn_q.weight", "blk.2.attn_q.weight", "token_embd.weight", "blk.2.attn_k.weight", "output_norm.weight"];
        names.sort_by(|a, b| loader_order(a, b));
        assert_eq!(names, ["output_norm.weight", "token_embd.weight", "blk.2.attn_k.weight", "blk.2.attn_q.weight", "blk.10.attn_q.weight"]);
    }
}
