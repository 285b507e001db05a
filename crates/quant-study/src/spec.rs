//! What a study measures: the model, calibration sets, imatrix modes, quantizations and texts.

use std::path::PathBuf;
use std::str::FromStr;

use gguf_format::GgmlType;
use kquant::pipeline::QuantizeOptions;
use kquant::plan::FileType;
use serde::{Deserialize, Serialize};

use crate::error::StudyError;

/// Tokens per chunk for collection and evaluation, as the published study used (`-c 512`).
pub const DEFAULT_N_CTX: usize = 512;

/// Evaluation chunks per text by default (`llama-perplexity --chunks 20`).
pub const DEFAULT_EVAL_CHUNKS: usize = 20;

/// KL-divergence chunks by default. A base file takes `n_ctx / 2` records of about
/// `2 * n_vocab` bytes per chunk (134 MB per chunk for Gemma's 262,144 tokens), so keep it small.
pub const DEFAULT_KLD_CHUNKS: usize = 5;

/// A named calibration text, collected on its own with its own chunk limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalibrationSet {
    /// Short name used in imatrix modes and file names, e.g. `en`.
    pub name: String,
    /// The text file.
    pub path: PathBuf,
    /// Maximum chunks of `n_ctx` tokens (`llama-imatrix --chunks`); `None` reads the whole text.
    pub chunks: Option<usize>,
}

/// How the imatrix of a cell is made from the calibration sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ImatrixMode {
    /// No imatrix.
    None,
    /// The named sets merged by summing `in_sum2` and counts (`llama-imatrix --in-file a,b`),
    /// so each set weighs by its token count.
    Merged {
        /// Mode name, e.g. `enja`.
        name: String,
        /// Calibration set names.
        sets: Vec<String>,
    },
    /// The named sets mixed by per-token means with the given weights
    /// ([`imatrix_collect::mix`]), so each set weighs by its weight whatever its length.
    Mixed {
        /// Mode name, e.g. `enja-mixed`.
        name: String,
        /// Calibration set names with their weights.
        sets: Vec<(String, f64)>,
    },
}

impl ImatrixMode {
    /// Returns the mode's name: `none`, or the name given to a merge or mix.
    pub fn name(&self) -> &str {
        match self {
            ImatrixMode::None => "none",
            ImatrixMode::Merged { name, .. } | ImatrixMode::Mixed { name, .. } => name,
        }
    }

    /// Lists the calibration sets the mode reads.
    pub fn set_names(&self) -> Vec<&str> {
        match self {
            ImatrixMode::None => Vec::new(),
            ImatrixMode::Merged { sets, .. } => sets.iter().map(String::as_str).collect(),
            ImatrixMode::Mixed { sets, .. } => sets.iter().map(|(s, _)| s.as_str()).collect(),
        }
    }

    /// Parses `none`, `NAME=SET+SET` (merge) or `NAME=SET:W+SET:W` (mix with weights).
    /// A bare set name `en` is the merge of that one set.
    ///
    /// # Errors
    /// [`StudyError::InvalidSpec`] for an empty part or a weight that is not a non-negative number.
    pub fn parse(text: &str) -> Result<ImatrixMode, StudyError> {
        if text == "none" {
            return Ok(ImatrixMode::None);
        }
        let (name, body) = text.split_once('=').unwrap_or((text, text));
        let invalid = |why: &str| StudyError::InvalidSpec(format!("imatrix mode '{text}': {why}; expected none, SET, NAME=SET+SET or NAME=SET:WEIGHT+SET:WEIGHT"));
        if name.is_empty() || body.is_empty() {
            return Err(invalid("empty name or set list"));
        }

        let parts: Vec<&str> = body.split('+').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(invalid("empty set name"));
        }
        if !parts.iter().any(|p| p.contains(':')) {
            let sets = parts.iter().map(|s| s.to_string()).collect();
            return Ok(ImatrixMode::Merged { name: name.to_owned(), sets });
        }

        let mut sets = Vec::new();
        for part in parts {
            let (set, weight) = part.split_once(':').ok_or_else(|| invalid("every set of a mix needs a weight"))?;
            let weight: f64 = weight.parse().map_err(|_| invalid("weight is not a number"))?;
            if !weight.is_finite() || weight < 0.0 {
                return Err(invalid("weight must be finite and non-negative"));
            }
            sets.push((set.to_owned(), weight));
        }
        Ok(ImatrixMode::Mixed { name: name.to_owned(), sets })
    }
}

/// The tensor-type variant of a quantization, as the published study named them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Variant {
    /// llama-quantize's plain mix.
    M,
    /// `--output-tensor-type q8_0 --token-embedding-type q8_0`.
    L,
    /// `--output-tensor-type f16 --token-embedding-type f16`.
    Fp16,
    /// `--pure`: every eligible tensor in the file type's default type.
    Pure,
}

impl Variant {
    /// Returns the variant's name as used in labels: `M`, `L`, `fp16` or `pure`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::M => "M",
            Variant::L => "L",
            Variant::Fp16 => "fp16",
            Variant::Pure => "pure",
        }
    }
}

impl FromStr for Variant {
    type Err = StudyError;

    fn from_str(text: &str) -> Result<Variant, StudyError> {
        match text.to_ascii_lowercase().as_str() {
            "m" => Ok(Variant::M),
            "l" => Ok(Variant::L),
            "fp16" | "f16" => Ok(Variant::Fp16),
            "pure" => Ok(Variant::Pure),
            _ => Err(StudyError::InvalidQuant { value: text.to_owned(), reason: "unknown variant; expected M, L, fp16 or pure".into() }),
        }
    }
}

/// One quantization of the study: a llama-quantize file type with a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantization {
    /// The llama-quantize file type, e.g. `Q4_K_M`.
    #[serde(with = "file_type_name")]
    pub file_type: FileType,
    /// The tensor-type variant.
    pub variant: Variant,
}

impl Quantization {
    /// Returns the label used in file names and tables, e.g. `Q4_K_M-L` or `Q4_0-pure`.
    pub fn label(&self) -> String {
        format!("{}-{}", self.file_type.name(), self.variant.name())
    }

    /// Parses `TYPE[:VARIANT[,VARIANT...]]`, e.g. `Q4_K_M:M,L,fp16` or `Q4_0:pure`, into one
    /// quantization per variant (`M` when none is given).
    ///
    /// # Errors
    /// [`StudyError::InvalidQuant`] for an unknown file type or variant.
    pub fn parse_list(text: &str) -> Result<Vec<Quantization>, StudyError> {
        let (type_name, variants) = text.split_once(':').unwrap_or((text, "M"));
        let file_type = FileType::from_str(type_name)
            .map_err(|e| StudyError::InvalidQuant { value: text.to_owned(), reason: e.to_string() })?;
        if file_type == FileType::F32 {
            return Err(StudyError::InvalidQuant { value: text.to_owned(), reason: "F32 is the base, which the study always evaluates".into() });
        }
        variants.split(',').map(|v| Ok(Quantization { file_type, variant: v.trim().parse()? })).collect()
    }

    /// Returns llama-quantize's options for this quantization, without an imatrix.
    pub fn options(&self) -> QuantizeOptions {
        let mut options = QuantizeOptions::new(self.file_type);
        match self.variant {
            Variant::M => {}
            Variant::L => {
                options.plan.output_tensor_type = Some(GgmlType::Q8_0);
                options.plan.token_embedding_type = Some(GgmlType::Q8_0);
            }
            Variant::Fp16 => {
                options.plan.output_tensor_type = Some(GgmlType::F16);
                options.plan.token_embedding_type = Some(GgmlType::F16);
            }
            Variant::Pure => options.plan.pure = true,
        }
        options
    }
}

/// Serializes a [`FileType`] as its llama-quantize name.
mod file_type_name {
    use std::str::FromStr;

    use kquant::plan::FileType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(file_type: &FileType, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(file_type.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<FileType, D::Error> {
        let name = String::deserialize(deserializer)?;
        FileType::from_str(&name).map_err(serde::de::Error::custom)
    }
}

/// An evaluation text with its short name, e.g. `wiki`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalText {
    /// Short name used in tables and file names.
    pub name: String,
    /// The text file.
    pub path: PathBuf,
}

/// Everything a study needs; [`crate::run_study`] runs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudySpec {
    /// The model: a GGUF file (quantized ones are dequantized to an F32 base first) or a
    /// Hugging Face folder (converted to an F32 GGUF base).
    pub model: PathBuf,
    /// Calibration sets by name.
    pub calibration: Vec<CalibrationSet>,
    /// Imatrix modes; every quantization is made once per mode.
    pub modes: Vec<ImatrixMode>,
    /// Quantizations to make.
    pub quantizations: Vec<Quantization>,
    /// Evaluation texts.
    pub texts: Vec<EvalText>,
    /// Tokens per chunk for collection and evaluation.
    pub n_ctx: usize,
    /// Evaluation chunks per text (`llama-perplexity --chunks`).
    pub eval_chunks: usize,
    /// KL-divergence chunks per text against the base; 0 turns KL divergence off.
    pub kld_chunks: usize,
    /// Output folder for results, models, imatrices and the cache.
    pub out: PathBuf,
    /// Keep the quantized GGUF files after they are evaluated (several hundred MB each).
    pub keep_models: bool,
}

impl StudySpec {
    /// Creates the published study's specification for `model`, with the default texts in
    /// `data_dir`.
    ///
    /// Calibration: `en` (calibration_datav3.txt, 40 chunks) and `ja`
    /// (ja-calib-jaquad-train.txt, 160 chunks). Modes: none, en, enja (merged) and enja-mixed
    /// (equal per-token weights). Quantizations: Q4_K_M M/L/fp16, Q4_0 pure, Q3_K_M and
    /// IQ4_XS. Texts: `wiki` and `ja-wiki`. 20 evaluation chunks and 5 KL-divergence chunks.
    pub fn reference(model: impl Into<PathBuf>, data_dir: impl Into<PathBuf>, out: impl Into<PathBuf>) -> StudySpec {
        let data: PathBuf = data_dir.into();
        let quant = |file_type, variant| Quantization { file_type, variant };
        StudySpec {
            model: model.into(),
            calibration: vec![
                CalibrationSet { name: "en".into(), path: data.join("calibration_datav3.txt"), chunks: Some(40) },
                CalibrationSet { name: "ja".into(), path: data.join("ja-calib-jaquad-train.txt"), chunks: Some(160) },
            ],
            modes: vec![
                ImatrixMode::None,
                ImatrixMode::Merged { name: "en".into(), sets: vec!["en".into()] },
                ImatrixMode::Merged { name: "enja".into(), sets: vec!["en".into(), "ja".into()] },
                ImatrixMode::Mixed { name: "enja-mixed".into(), sets: vec![("en".into(), 0.5), ("ja".into(), 0.5)] },
            ],
            quantizations: vec![
                quant(FileType::Q4_K_M, Variant::M),
                quant(FileType::Q4_K_M, Variant::L),
                quant(FileType::Q4_K_M, Variant::Fp16),
                quant(FileType::Q4_0, Variant::Pure),
                quant(FileType::Q3_K_M, Variant::M),
                quant(FileType::IQ4_XS, Variant::M),
            ],
            texts: vec![
                EvalText { name: "wiki".into(), path: data.join("wiki.test.raw") },
                EvalText { name: "ja-wiki".into(), path: data.join("ja-wiki.test.raw") },
            ],
            n_ctx: DEFAULT_N_CTX,
            eval_chunks: DEFAULT_EVAL_CHUNKS,
            kld_chunks: DEFAULT_KLD_CHUNKS,
            out: out.into(),
            keep_models: false,
        }
    }

    /// Checks that names are unique and usable in file names, that every mode's sets exist,
    /// and that the chunk counts are positive.
    ///
    /// # Errors
    /// [`StudyError::InvalidSpec`] naming the first problem found.
    pub fn validate(&self) -> Result<(), StudyError> {
        let invalid = |message: String| Err(StudyError::InvalidSpec(message));
        let names = self.calibration.iter().map(|c| &c.name).chain(self.texts.iter().map(|t| &t.name));
        for name in names.chain(self.modes.iter().filter_map(|m| match m {
            ImatrixMode::None => None,
            ImatrixMode::Merged { name, .. } | ImatrixMode::Mixed { name, .. } => Some(name),
        })) {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return invalid(format!("name '{name}' must be non-empty ASCII letters, digits, '-' or '_'"));
            }
        }

        for mode in &self.modes {
            for set in mode.set_names() {
                if !self.calibration.iter().any(|c| c.name == set) {
                    return invalid(format!("imatrix mode '{}' reads calibration set '{set}', which is not defined", mode.name()));
                }
            }
        }
        if let Some(name) = duplicate(self.modes.iter().map(|m| m.name().to_owned())) {
            return invalid(format!("imatrix mode '{name}' is given twice"));
        }
        if let Some(name) = duplicate(self.calibration.iter().map(|c| c.name.clone())) {
            return invalid(format!("calibration set '{name}' is given twice"));
        }
        if let Some(name) = duplicate(self.texts.iter().map(|t| t.name.clone())) {
            return invalid(format!("evaluation text '{name}' is given twice"));
        }
        if let Some(label) = duplicate(self.quantizations.iter().map(Quantization::label)) {
            return invalid(format!("quantization '{label}' is given twice"));
        }

        if self.quantizations.is_empty() || self.modes.is_empty() || self.texts.is_empty() {
            return invalid("a study needs at least one quantization, one imatrix mode and one evaluation text".into());
        }
        if self.eval_chunks == 0 {
            return invalid("--chunks must be at least 1".into());
        }
        if self.calibration.iter().any(|c| c.chunks == Some(0)) {
            return invalid("a calibration set's chunk count must be at least 1".into());
        }
        if self.kld_chunks > self.eval_chunks {
            return invalid(format!("--kld-chunks {} exceeds --chunks {}", self.kld_chunks, self.eval_chunks));
        }
        Ok(())
    }

    /// Lists every cell: each quantization under each imatrix mode, in table order.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for quantization in &self.quantizations {
            for mode in &self.modes {
                cells.push(Cell { quantization: *quantization, mode: mode.clone() });
            }
        }
        cells
    }
}

/// Returns the first value that occurs twice.
fn duplicate(values: impl Iterator<Item = String>) -> Option<String> {
    let mut seen = std::collections::BTreeSet::new();
    values.into_iter().find(|v| !seen.insert(v.clone()))
}

/// One quantized model of the study: a quantization under an imatrix mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The quantization.
    pub quantization: Quantization,
    /// The imatrix mode.
    pub mode: ImatrixMode,
}

impl Cell {
    /// Returns the cell label, e.g. `Q4_K_M-L-enja`.
    pub fn label(&self) -> String {
        format!("{}-{}", self.quantization.label(), self.mode.name())
    }
}
