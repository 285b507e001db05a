//! Mapping from Hugging Face tensor names to GGUF tensor names, as llama.cpp's converter does.

/// Per-layer suffixes: Hugging Face name after `model.layers.N.`, GGUF name after `blk.N.`.
const LAYER_NAMES: [(&str, &str); 13] = [
    ("input_layernorm.weight", "attn_norm.weight"),
    ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("self_attn.q_norm.weight", "attn_q_norm.weight"),
    ("self_attn.k_norm.weight", "attn_k_norm.weight"),
    ("post_attention_layernorm.weight", "post_attention_norm.weight"),
    ("pre_feedforward_layernorm.weight", "ffn_norm.weight"),
    ("post_feedforward_layernorm.weight", "post_ffw_norm.weight"),
    ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"),
];

/// What to do with one Hugging Face tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mapped {
    /// Store under this GGUF name.
    Keep(String),
    /// Drop it: the tied `lm_head`, or a vision-tower tensor of a multimodal checkpoint.
    Skip,
    /// The name belongs to no known Gemma text tensor.
    Unknown,
}

/// Maps a Hugging Face tensor name to its GGUF name.
///
/// `multimodal` strips the `language_model.` prefix of multimodal Gemma 3 checkpoints and
/// skips their vision tensors.
pub(crate) fn hf_to_gguf(name: &str, multimodal: bool) -> Mapped {
    let name = if multimodal {
        match name.strip_prefix("language_model.") {
            Some(text) => text,
            None => return Mapped::Skip,
        }
    } else {
        name
    };

    match name {
        "model.embed_tokens.weight" => return Mapped::Keep("token_embd.weight".into()),
        "model.norm.weight" => return Mapped::Keep("output_norm.weight".into()),
        "lm_head.weight" => return Mapped::Skip,
        _ => {}
    }

    let Some(rest) = name.strip_prefix("model.layers.") else {
        return Mapped::Unknown;
    };
    let Some((index, suffix)) = rest.split_once('.') else {
        return Mapped::Unknown;
    };
    let Ok(layer) = index.parse::<usize>() else {
        return Mapped::Unknown;
    };
    LAYER_NAMES
        .iter()
        .find(|(hf, _)| *hf == suffix)
        .map_or(Mapped::Unknown, |(_, gguf)| Mapped::Keep(format!("blk.{layer}.{gguf}")))
}

/// Reports whether a Hugging Face tensor is a Gemma RMSNorm weight, which the model applies
/// as `(1 + w)`; llama.cpp's converter stores `w + 1` so that the runtime multiplies by it
/// directly.
pub(crate) fn is_norm_weight(hf_name: &str) -> bool {
    hf_name.ends_with("norm.weight")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_layer_tensors() {
        assert_eq!(
            hf_to_gguf("model.layers.12.mlp.down_proj.weight", false),
            Mapped::Keep("blk.12.ffn_down.weight".into())
        );
        assert_eq!(
            hf_to_gguf("model.layers.0.self_attn.k_norm.weight", false),
            Mapped::Keep("blk.0.attn_k_norm.weight".into())
        );
    }

    #[test]
    fn skips_lm_head_and_vision() {
        assert_eq!(hf_to_gguf("lm_head.weight", false), Mapped::Skip);
        assert_eq!(hf_to_gguf("vision_tower.encoder.x.weight", true), Mapped::Skip);
        assert_eq!(
            hf_to_gguf("language_model.model.norm.weight", true),
            Mapped::Keep("output_norm.weight".into())
        );
    }

    #[test]
    fn rejects_unknown_names() {
        assert_eq!(hf_to_gguf("model.layers.x.mlp.up_proj.weight", false), Mapped::Unknown);
        assert_eq!(hf_to_gguf("model.layers.1.mlp.fc1.weight", false), Mapped::Unknown);
    }
}
