//! llama-quantize's per-tensor type plans: which type every tensor of a model gets for a
//! file type such as `Q4_K_M`.
//!
//! [`plan_quantization`] reproduces `llama_tensor_get_type` of llama.cpp's
//! `src/llama-quant.cpp` (b-series of 2025-2026): which tensors are eligible at all, the
//! `attn_v` / `ffn_down` "more bits" layer rule, the output head and tied-embedding rule, the
//! fallback when a row length `ne[0]` is not a multiple of the block size, and the options
//! `--output-tensor-type`, `--token-embedding-type`, `--pure`, `--leave-output-tensor` and
//! `--tensor-type REGEX=TYPE`. The result is plain data that a caller can print, edit and
//! apply.
//!
//! ```
//! use kquant::plan::{plan_quantization, FileType, ModelInfo, PlanOptions, TensorSpec};
//! use gguf_format::GgmlType;
//!
//! let model = ModelInfo { arch: "gemma2".into(), n_layer: 1, n_head: 8, n_head_kv: 4, n_expert: 0 };
//! let tensors = [
//!     TensorSpec::new("token_embd.weight", &[2304, 256000], GgmlType::F32),
//!     TensorSpec::new("blk.0.attn_v.weight", &[2304, 1024], GgmlType::F32),
//!     TensorSpec::new("blk.0.attn_norm.weight", &[2304], GgmlType::F32),
//! ];
//! let plan = plan_quantization(FileType::Q4_K_M, &model, &tensors, &PlanOptions::default())?;
//! assert_eq!(plan.target("token_embd.weight"), Some(GgmlType::Q6_K));
//! assert_eq!(plan.target("blk.0.attn_v.weight"), Some(GgmlType::Q6_K));
//! assert_eq!(plan.target("blk.0.attn_norm.weight"), Some(GgmlType::F32));
//! # Ok::<(), kquant::plan::PlanError>(())
//! ```

mod category;
mod file_type;
mod mix;

use std::fmt;

use gguf_format::GgmlType;

pub use category::{allows_quantization, layer_index, loader_order, TensorCategory};
pub use file_type::{FileType, UnknownFileType};

/// The model facts the mixes depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// `general.architecture` (`"gemma2"`, `"gemma3"`, `"llama"`, ...).
    pub arch: String,
    /// Number of transformer blocks (`{arch}.block_count`).
    pub n_layer: usize,
    /// Attention heads (`{arch}.attention.head_count`).
    pub n_head: usize,
    /// Key/value heads (`{arch}.attention.head_count_kv`).
    pub n_head_kv: usize,
    /// Experts per MoE layer; 0 or 1 for dense models.
    pub n_expert: usize,
}

impl ModelInfo {
    /// Returns query heads per key/value head, 0 when `n_head_kv` is 0.
    pub fn n_gqa(&self) -> usize {
        if self.n_head_kv == 0 {
            0
        } else {
            self.n_head / self.n_head_kv
        }
    }

    /// Returns true for LLaMA 70B (80 layers with grouped-query attention), which llama.cpp
    /// gives a larger attn_v.
    fn is_llama_70b(&self) -> bool {
        self.arch == "llama" && self.n_layer == 80 && self.n_head != self.n_head_kv
    }

    /// Returns the layer of the `counter`-th ffn_down tensor: the counter itself for dense
    /// models, the index parsed from the name for MoE models, whose expert tensors need not
    /// come in layer order.
    fn ffn_layer(&self, counter: usize, name: &str) -> usize {
        if self.n_expert > 1 {
            layer_index(name).unwrap_or(counter)
        } else {
            counter
        }
    }
}

/// One tensor of the input model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// GGUF name (`blk.3.ffn_down.weight`).
    pub name: String,
    /// Dimensions in GGUF order: `dims[0]` (`ne[0]`) is the row length.
    pub dims: Vec<u64>,
    /// The tensor's type in the input file.
    pub ggml_type: GgmlType,
}

impl TensorSpec {
    /// Creates a spec from a name, GGUF-order dims and the current type.
    pub fn new(name: impl Into<String>, dims: &[u64], ggml_type: GgmlType) -> TensorSpec {
        TensorSpec { name: name.into(), dims: dims.to_vec(), ggml_type }
    }
}

/// The options of llama-quantize that change the plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--output-tensor-type`: the type of `output.weight`, and of a tied `token_embd.weight`
    /// unless `token_embedding_type` is set.
    pub output_tensor_type: Option<GgmlType>,
    /// `--token-embedding-type`: the type of `token_embd.weight`.
    pub token_embedding_type: Option<GgmlType>,
    /// `--pure`: every eligible tensor gets the file type's default type, with no mix.
    pub pure: bool,
    /// `--leave-output-tensor`: keep `output.weight` in its current type.
    pub leave_output_tensor: bool,
    /// `--tensor-type REGEX=TYPE`, in command-line order. A tensor takes the type of the first
    /// pattern found in its name whose type differs from the default (as llama.cpp does).
    pub tensor_type_overrides: Vec<TensorTypeOverride>,
    /// Whether an importance matrix is given: a few mixes (IQ4_XS, Q4_0 and Q5_0 ffn_down)
    /// differ with one.
    pub has_imatrix: bool,
}

/// A `--tensor-type REGEX=TYPE` rule.
#[derive(Debug, Clone)]
pub struct TensorTypeOverride {
    /// Searched in the tensor name (not anchored), as `std::regex_search` does.
    pub pattern: regex::Regex,
    pub ggml_type: GgmlType,
}

impl TensorTypeOverride {
    /// Parses `REGEX=TYPE` as llama-quantize's `--tensor-type` takes it
    /// (`attn_v=q8_0`, `blk\.1[0-9]\.ffn_down=Q6_K`): split at the first `=`, the pattern
    /// lower-cased, the type name in any case.
    ///
    /// # Errors
    /// [`PlanError::InvalidOverride`] when there is no `=`, the regex does not compile or the
    /// type is unknown.
    pub fn parse(rule: &str) -> Result<TensorTypeOverride, PlanError> {
        let invalid = |reason: String| PlanError::InvalidOverride { rule: rule.to_string(), reason };

        // llama-quantize splits at the first '=' and lower-cases the pattern.
        let (pattern, type_name) = rule
            .split_once('=')
            .ok_or_else(|| invalid("expected REGEX=TYPE, e.g. attn_v=q8_0".to_string()))?;
        if pattern.is_empty() {
            return Err(invalid("the pattern before '=' is empty".to_string()));
        }
        let ggml_type: GgmlType = type_name.parse().map_err(|e: gguf_format::UnknownTypeName| invalid(e.to_string()))?;
        let pattern = regex::Regex::new(&pattern.to_lowercase()).map_err(|e| invalid(format!("invalid regex: {e}")))?;
        Ok(TensorTypeOverride { pattern, ggml_type })
    }
}

/// Reason a tensor gets its planned type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanReason {
    /// Not a quantizable matrix (norms, 1-D tensors, routers, ...): kept as it is.
    NotQuantizable,
    /// The file type's mix (or its default type).
    Mix,
    /// `--pure`.
    Pure,
    /// `--token-embedding-type`.
    TokenEmbeddingType,
    /// `--output-tensor-type`.
    OutputTensorType,
    /// The `--tensor-type` rule with this pattern.
    Override(String),
}

/// The planned type of one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorPlan {
    pub name: String,
    /// GGUF-order dims; `dims[0]` is the row length.
    pub dims: Vec<u64>,
    /// The type in the input file.
    pub source_type: GgmlType,
    /// The type to write.
    pub target_type: GgmlType,
    pub category: TensorCategory,
    pub reason: PlanReason,
    /// The type the mix wanted when the row length forced [`TensorPlan::target_type`] instead.
    pub fallback_from: Option<GgmlType>,
}

impl TensorPlan {
    /// Returns true when the tensor's bytes change (its target type differs from its source type).
    pub fn converts(&self) -> bool {
        self.source_type != self.target_type
    }
}

/// A whole model's plan, in llama.cpp's processing order ([`loader_order`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantPlan {
    pub file_type: FileType,
    pub tensors: Vec<TensorPlan>,
}

impl QuantPlan {
    /// Returns the planned type of the named tensor.
    pub fn target(&self, name: &str) -> Option<GgmlType> {
        self.tensors.iter().find(|t| t.name == name).map(|t| t.target_type)
    }

    /// Returns the tensors whose row length forced a fallback type.
    pub fn fallbacks(&self) -> impl Iterator<Item = &TensorPlan> {
        self.tensors.iter().filter(|t| t.fallback_from.is_some())
    }

    /// Sets one tensor's target type by hand.
    ///
    /// # Errors
    /// [`PlanError::UnknownTensor`] for a name not in the plan, [`PlanError::RowLength`] when
    /// the row length is not a multiple of the type's block size.
    pub fn set_target(&mut self, name: &str, ggml_type: GgmlType) -> Result<(), PlanError> {
        let entry = self
            .tensors
            .iter_mut()
            .find(|t| t.name == name)
            .ok_or_else(|| PlanError::UnknownTensor(name.to_string()))?;
        check_row_length(&entry.name, &entry.dims, ggml_type)?;
        entry.target_type = ggml_type;
        entry.reason = PlanReason::Override("set by hand".to_string());
        entry.fallback_from = None;
        Ok(())
    }
}

impl fmt::Display for QuantPlan {
    /// Prints one line per tensor: name, dims, source type, target type and the reason.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tensors {
            let dims: Vec<String> = t.dims.iter().map(u64::to_string).collect();
            write!(f, "{:<40} [{:>14}] {:>7} -> {:<7}", t.name, dims.join(", "), t.source_type, t.target_type)?;
            match (&t.reason, t.fallback_from) {
                (_, Some(wanted)) => write!(f, "  (fallback from {wanted}: ne[0] = {} is not a multiple of {})", t.dims[0], wanted.block_size())?,
                (PlanReason::Override(pattern), None) => write!(f, "  (--tensor-type {pattern})")?,
                (PlanReason::OutputTensorType, None) => write!(f, "  (--output-tensor-type)")?,
                (PlanReason::TokenEmbeddingType, None) => write!(f, "  (--token-embedding-type)")?,
                _ => {}
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Errors from building or editing a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A type chosen by an option or by hand does not fit the tensor's row length.
    #[error("tensor {name}: row length (ne0) {ne0} is not a multiple of {ggml_type}'s block size {block_size}; choose a type with a block size that divides {ne0}")]
    RowLength { name: String, ne0: u64, ggml_type: GgmlType, block_size: usize },
    /// A tensor has no dims.
    #[error("tensor {0} has no dimensions")]
    NoDimensions(String),
    /// A `--tensor-type` rule could not be parsed.
    #[error("invalid --tensor-type rule '{rule}': {reason}")]
    InvalidOverride { rule: String, reason: String },
    /// [`QuantPlan::set_target`] named a tensor that is not in the plan.
    #[error("tensor {0} is not in the plan")]
    UnknownTensor(String),
}

fn check_row_length(name: &str, dims: &[u64], ggml_type: GgmlType) -> Result<(), PlanError> {
    let ne0 = *dims.first().ok_or_else(|| PlanError::NoDimensions(name.to_string()))?;
    let block_size = ggml_type.block_size();
    if ne0 % block_size as u64 != 0 {
        return Err(PlanError::RowLength { name: name.to_string(), ne0, ggml_type, block_size });
    }
    Ok(())
}

/// Plans the type of every tensor for `file_type`, as llama-quantize does.
///
/// Tensors come back in llama.cpp's processing order ([`loader_order`]), which is also the
/// order llama-quantize writes them in.
///
/// # Errors
/// [`PlanError::RowLength`] when a type forced by `--output-tensor-type`,
/// `--token-embedding-type` or a `--tensor-type` rule does not fit a tensor's row length
/// (llama.cpp would fail in the middle of writing), and [`PlanError::NoDimensions`] for a
/// tensor without dims.
pub fn plan_quantization(
    file_type: FileType,
    model: &ModelInfo,
    tensors: &[TensorSpec],
    options: &PlanOptions,
) -> Result<QuantPlan, PlanError> {
    let mut ordered: Vec<&TensorSpec> = tensors.iter().collect();
    ordered.sort_by(|a, b| loader_order(&a.name, &b.name));

    let mut state = mix::MixState {
        n_attention_v: ordered.iter().filter(|t| TensorCategory::of(&t.name).is_attention_v()).count(),
        has_imatrix: options.has_imatrix,
        tied_embeddings: !ordered.iter().any(|t| t.name == "output.weight"),
        ..Default::default()
    };

    let default = file_type.default_type();
    let mut planned = Vec::with_capacity(ordered.len());
    for spec in ordered {
        let ne0 = *spec.dims.first().ok_or_else(|| PlanError::NoDimensions(spec.name.clone()))?;
        let category = TensorCategory::of(&spec.name);
        let mut entry = TensorPlan {
            name: spec.name.clone(),
            dims: spec.dims.clone(),
            source_type: spec.ggml_type,
            target_type: spec.ggml_type,
            category,
            reason: PlanReason::NotQuantizable,
            fallback_from: None,
        };

        if !allows_quantization(&spec.name, spec.dims.len(), options.leave_output_tensor) {
            planned.push(entry);
            continue;
        }

        // The explicit type options win over everything, as in llama.cpp's outer wrapper.
        if let (Some(forced), TensorCategory::TokenEmbedding) = (options.token_embedding_type, category) {
            check_row_length(&spec.name, &spec.dims, forced)?;
            entry.target_type = forced;
            entry.reason = PlanReason::TokenEmbeddingType;
            planned.push(entry);
            continue;
        }
        if let (Some(forced), TensorCategory::Output) = (options.output_tensor_type, category) {
            check_row_length(&spec.name, &spec.dims, forced)?;
            entry.target_type = forced;
            entry.reason = PlanReason::OutputTensorType;
            planned.push(entry);
            continue;
        }

        if options.pure || !default.is_quantized() {
            entry.target_type = default;
            entry.reason = if options.pure { PlanReason::Pure } else { PlanReason::Mix };
        } else {
            let manual = options
                .tensor_type_overrides
                .iter()
                .find(|rule| rule.ggml_type != default && rule.pattern.is_match(&spec.name));
            if let Some(rule) = manual {
                check_row_length(&spec.name, &spec.dims, rule.ggml_type)?;
                entry.target_type = rule.ggml_type;
                entry.reason = PlanReason::Override(rule.pattern.as_str().to_string());
            } else {
                let output_type = options.output_tensor_type.filter(|_| state.tied_embeddings);
                entry.target_type = mix::choose_type(&mut state, model, file_type, category, &spec.name, ne0, default, output_type);
                // A tied embedding takes `--output-tensor-type` through the mix, so unlike the
                // explicit options above it still goes through the row-length fallback.
                entry.reason = if output_type.is_some() && category == TensorCategory::TokenEmbedding {
                    PlanReason::OutputTensorType
                } else {
                    PlanReason::Mix
                };
            }
        }

        // NOTE: llama.cpp versions differ on whether `--pure` applies this fallback; the
        // newest do, older ones abort when the row length does not fit.
        if let Some(substitute) = mix::fallback_type(entry.target_type, ne0) {
            entry.fallback_from = Some(entry.target_type);
            entry.target_type = substitute;
        }
        planned.push(entry);
    }

    Ok(QuantPlan { file_type, tensors: planned })
}
