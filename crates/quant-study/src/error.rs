//! The study's error type.

use std::path::PathBuf;

/// Everything that can stop a study, each variant naming the value at fault.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// A file or folder could not be read, written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// The study specification is inconsistent. The message names the value and the fix.
    #[error("invalid study specification: {0}")]
    InvalidSpec(String),

    /// A quantization type or variant could not be parsed.
    #[error("invalid quantization '{value}': {reason}")]
    InvalidQuant {
        /// The text given.
        value: String,
        /// The reason for the rejection, with the accepted forms.
        reason: String,
    },

    /// The model could not be loaded or converted.
    #[error("model {path}: {source}")]
    Model {
        /// The model file or folder.
        path: PathBuf,
        /// The loader's error.
        source: gemma2_model::ModelError,
    },

    /// Quantizing a cell failed.
    #[error("quantizing {cell}: {source}")]
    Quantize {
        /// The cell label, e.g. `Q4_K_M-M-en`.
        cell: String,
        /// The pipeline's error.
        source: kquant::pipeline::PipelineError,
    },

    /// Collecting, merging, mixing or saving an imatrix failed.
    #[error("imatrix {name}: {source}")]
    Imatrix {
        /// The calibration set or imatrix mode.
        name: String,
        /// The imatrix crate's error.
        source: imatrix_collect::ImatrixError,
    },

    /// A perplexity or KL-divergence evaluation failed.
    #[error("evaluating {what}: {source}")]
    Eval {
        /// The cell and text, e.g. `q4_0-pure-none on wiki`.
        what: String,
        /// The evaluation crate's error.
        source: ppl_eval::PplError,
    },

    /// A cached record or result file could not be encoded or decoded.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: serde_json::Error,
    },

    /// A chart could not be drawn.
    #[error("chart {path}: {message}")]
    Chart {
        /// The PNG file.
        path: PathBuf,
        /// The drawing backend's error.
        message: String,
    },

    /// No font file for the chart labels was found.
    #[error("no TrueType font found for the chart labels (looked in {searched}); install fonts-dejavu-core or set QUANT_STUDY_FONT to a .ttf file")]
    FontMissing {
        /// The paths searched, comma-separated.
        searched: String,
    },

    /// The cancel flag was set; finished steps stay cached for the next run.
    #[error("study interrupted; run the same command again to resume")]
    Cancelled,
}

impl StudyError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StudyError {
        StudyError::Io { path: path.into(), source }
    }
}
