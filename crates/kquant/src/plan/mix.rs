//! The per-tensor rules of llama-quantize's mixes (`llama_tensor_get_type_impl` in
//! llama.cpp's `src/llama-quant.cpp`), restricted to the file types of [`FileType`].

use gguf_format::GgmlType;

use super::category::TensorCategory;
use super::file_type::FileType;
use super::ModelInfo;

/// Running counters over the tensors in loader order, as llama.cpp keeps them.
#[derive(Debug, Default)]
pub(crate) struct MixState {
    /// Number of value-projection-like tensors in the model.
    pub n_attention_v: usize,
    /// Index of the next value-projection-like tensor.
    pub i_attention_v: usize,
    /// Index of the next `ffn_down` tensor.
    pub i_ffn_down: usize,
    pub has_imatrix: bool,
    /// True when the model has no `output.weight`, so `token_embd.weight` is the output head.
    pub tied_embeddings: bool,
}

/// Returns llama.cpp's "more bits" layer rule: the first and last eighth of the layers and
/// every third layer in between.
pub(crate) fn use_more_bits(i_layer: usize, n_layers: usize) -> bool {
    let (i, n) = (i_layer as i64, n_layers as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// Chooses the type of one eligible tensor before the row-length fallback.
///
/// `default` is the file type's default type; `ne0` the row length. Advances the counters
/// in `state` exactly where llama.cpp does, so call it once per tensor in loader order.
pub(crate) fn choose_type(
    state: &mut MixState,
    model: &ModelInfo,
    file_type: FileType,
    category: TensorCategory,
    name: &str,
    ne0: u64,
    default: GgmlType,
    output_tensor_type: Option<GgmlType>,
) -> GgmlType {
    use FileType as F;
    use GgmlType as T;

    let falcon = model.arch == "falcon";
    let n_gqa = model.n_gqa();
    let n_layer = model.n_layer;

    if category == TensorCategory::Output || (state.tied_embeddings && category == TensorCategory::TokenEmbedding) {
        if let Some(forced) = output_tensor_type {
            return forced;
        }
        // The output head keeps 6 bits unless its rows do not fit the default's blocks.
        let block = default.block_size() as u64;
        if falcon || ne0 % block != 0 {
            return T::Q8_0;
        }
        if default != T::Q8_0 {
            return T::Q6_K;
        }
        return default;
    }

    if category == TensorCategory::TokenEmbedding {
        // Only the IQ1/IQ2/IQ3 and TQ file types change an untied embedding; none is supported here.
        return default;
    }

    if category.is_attention_v() {
        let mut chosen = default;
        if file_type == F::Q2_K {
            chosen = if n_gqa >= 4 { T::Q4_K } else { T::Q3_K };
        } else if file_type == F::Q3_K_M {
            chosen = if state.i_attention_v < 2 { T::Q5_K } else { T::Q4_K };
        } else if file_type == F::Q3_K_L {
            chosen = T::Q5_K;
        } else if matches!(file_type, F::IQ4_NL | F::IQ4_XS) && n_gqa >= 4 {
            chosen = T::Q5_K;
        } else if matches!(file_type, F::Q4_K_M | F::Q5_K_M) && use_more_bits(state.i_attention_v, state.n_attention_v) {
            chosen = T::Q6_K;
        } else if file_type == F::Q4_K_S && state.i_attention_v < 4 {
            chosen = T::Q5_K;
        }

        // A 70B LLaMA shares each attn_v among 8 heads, so more bits cost little there.
        if model.is_llama_70b() && matches!(chosen, T::Q3_K | T::Q4_K) {
            chosen = T::Q5_K;
        }
        if model.n_expert == 8 {
            chosen = T::Q8_0;
        }
        state.i_attention_v += 1;
        return chosen;
    }

    if category == TensorCategory::AttentionK {
        return if model.n_expert == 8 { T::Q8_0 } else { default };
    }

    if category == TensorCategory::FfnDown {
        let i_layer = model.ffn_layer(state.i_ffn_down, name);
        state.i_ffn_down += 1;
        return match file_type {
            F::Q2_K => T::Q3_K,
            F::Q3_K_M if i_layer < n_layer / 16 => T::Q5_K,
            F::Q3_K_M if !falcon || use_more_bits(i_layer, n_layer) => T::Q4_K,
            F::Q3_K_M => T::Q3_K,
            F::Q3_K_L if falcon => T::Q4_K,
            F::Q3_K_L => T::Q5_K,
            F::Q4_K_M if falcon && i_layer < n_layer / 16 => T::Q6_K,
            F::Q4_K_M if falcon && use_more_bits(i_layer, n_layer) => T::Q5_K,
            F::Q4_K_M if falcon => T::Q4_K,
            F::Q4_K_M if use_more_bits(i_layer, n_layer) => T::Q6_K,
            F::Q4_K_M => default,
            F::IQ4_NL | F::IQ4_XS if i_layer < n_layer / 8 && !state.has_imatrix => T::Q5_K,
            F::Q5_K_M if use_more_bits(i_layer, n_layer) => T::Q6_K,
            F::Q4_K_S if !falcon && i_layer < n_layer / 8 => T::Q5_K,
            // Only with an imatrix, so that a file made without one stays as before; the
            // first ffn_down layers are the ones that go wrong most easily at 4 and 5 bits.
            F::Q4_0 if state.has_imatrix && i_layer < n_layer / 8 => T::Q4_1,
            F::Q5_0 if state.has_imatrix && i_layer < n_layer / 8 => T::Q5_1,
            _ => default,
        };
    }

    if category == TensorCategory::AttentionOutput {
        if falcon {
            return if file_type == F::Q3_K_L { T::Q4_K } else { default };
        }
        if model.n_expert == 8 {
            let bumped = matches!(file_type, F::Q2_K | F::Q3_K_S | F::Q3_K_M | F::IQ4_NL | F::Q4_K_S | F::Q4_K_M | F::IQ4_XS);
            return if bumped { T::Q5_K } else { default };
        }
        return match file_type {
            F::Q2_K => T::Q3_K,
            F::Q3_K_M => T::Q4_K,
            F::Q3_K_L => T::Q5_K,
            _ => default,
        };
    }

    if category == TensorCategory::AttentionQkv {
        return match file_type {
            F::Q3_K_M | F::Q3_K_L => T::Q4_K,
            F::Q4_K_M => T::Q5_K,
            F::Q5_K_M => T::Q6_K,
            _ => default,
        };
    }

    default
}

/// Returns the type llama.cpp substitutes when `ne0` is not a multiple of `wanted`'s block
/// size (`tensor_type_fallback`), or `None` when `wanted` fits or has no fallback.
///
/// A fallback whose block still does not divide `ne0` becomes F16.
pub(crate) fn fallback_type(wanted: GgmlType, ne0: u64) -> Option<GgmlType> {
    use GgmlType as T;

    if ne0 % wanted.block_size() as u64 == 0 {
        return None;
    }
    let substitute = match wanted {
        T::IQ1_S | T::IQ1_M | T::IQ2_XXS | T::IQ2_XS | T::IQ2_S | T::IQ3_XXS | T::IQ3_S | T::IQ4_XS => T::IQ4_NL,
        T::Q2_K | T::Q3_K | T::TQ1_0 | T::TQ2_0 => T::Q4_0,
        T::Q4_K => T::Q5_0,
        T::Q5_K => T::Q5_1,
        T::Q6_K => T::Q8_0,
        _ => return None,
    };
    if ne0 % substitute.block_size() as u64 != 0 {
        return Some(T::F16);
    }
    Some(substitute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_layers_of_gemma2_9b() {
        let layers: Vec<usize> = (0..42).filter(|&i| use_more_bits(i, 42)).collect();
        let expected: Vec<usize> = [0, 1, 2, 3, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 36, 37, 38, 39, 40, 41].to_vec();
        assert_eq!(layers, expected);
    }

    #[test]
    fn fallback_table() {
        assert_eq!(fallback_type(GgmlType::Q4_K, 640), Some(GgmlType::Q5_0));
        assert_eq!(fallback_type(GgmlType::Q5_K, 640), Some(GgmlType::Q5_1));
        assert_eq!(fallback_type(GgmlType::Q6_K, 640), Some(GgmlType::Q8_0));
        assert_eq!(fallback_type(GgmlType::Q3_K, 1152), Some(GgmlType::Q4_0));
        assert_eq!(fallback_type(GgmlType::IQ4_XS, 1152), Some(GgmlType::IQ4_NL));
        assert_eq!(fallback_type(GgmlType::Q4_K, 1000), Some(GgmlType::F16));
        assert_eq!(fallback_type(GgmlType::Q4_K, 512), None);
        assert_eq!(fallback_type(GgmlType::Q8_0, 1000), None);
    }
}
