//! Reproducible imatrix quantization studies of Gemma models in one call.
//!
//! A study quantizes one model in several ways (e.g. Q4_K_M with the M, L and fp16 tensor
//! variants, Q4_0 `--pure`, Q3_K_M, IQ4_XS), each without an importance matrix and with
//! imatrices collected on several calibration texts, then measures every quantized model
//! on several evaluation texts. [`run_study`] does all of it, as llama.cpp's tools would:
//!
//! 1. Writes the F32 base (`models/base-f32.gguf`): a quantized GGUF input is dequantized
//!    exactly (`llama-quantize --allow-requantize MODEL base F32`), a Hugging Face folder is
//!    converted.
//! 2. Collects each calibration set's imatrix once on the base (`llama-imatrix -c n_ctx
//!    --chunks N`), and builds each imatrix mode from them: merged by summing
//!    (`--in-file a,b`) or mixed by per-token means ([`imatrix_collect::mix`]).
//! 3. Quantizes every cell (quantization x imatrix mode) from the base with
//!    [`kquant::pipeline::quantize_model`], byte-identical to llama-quantize.
//! 4. Evaluates the base and every cell on every text: perplexity over `eval_chunks` chunks
//!    of `n_ctx` tokens with llama.cpp's uncertainty, and KL divergence against the base over
//!    the first `kld_chunks` chunks ([`ppl_eval`]).
//! 5. Compares cells token by token ([`ppl_eval::PairedComparison`]): every imatrix mode
//!    against `none`, and every two imatrix modes against each other; compares the imatrices
//!    themselves ([`imatrix_collect::compare`]).
//! 6. Writes `results.md`, `results.json`, `results.csv`, one PNG chart per text under
//!    `charts/`, and `manifest.json` (sha256 of every input, parameters, timings).
//!
//! Every step's result is cached under `cache/` with the sha256 of its inputs and
//! parameters, and every file is written atomically. So an interrupted study resumes where
//! it stopped, and a rerun with the same inputs recomputes nothing
//! ([`StudyResults::recomputed`] lists what a run computed).
//!
//! # Example
//!
//! ```no_run
//! use quant_study::{run_study, StudySpec};
//!
//! let mut spec = StudySpec::reference("models/gemma-3-270m-q4_k_m.gguf", "data", "study-out");
//! spec.eval_chunks = 4;
//! let results = run_study(&spec, None, &mut |p| eprintln!("{}/{} {}", p.done, p.total, p.step))?;
//! for cell in &results.cells {
//!     println!("{}: PPL {:.4} on {}", cell.label, cell.evals[0].ppl, cell.evals[0].text);
//! }
//! # Ok::<(), quant_study::StudyError>(())
//! ```

mod base;
mod cache;
mod chart;
mod error;
mod evaluate;
mod imatrices;
mod manifest;
mod report;
mod results;
mod runner;
mod spec;
mod study;

pub use cache::{cache_key, sha256_file, write_atomic};
pub use chart::{find_font, FONT_ENV, FONT_SEARCH_PATHS};
pub use error::StudyError;
pub use report::{render_csv, render_markdown};
pub use results::{CellResult, ImatrixComparisonRow, PairedRow, StepTiming, StudyResults, TextEval};
pub use runner::{StudyProgress, QUANTIZE_UNITS};
pub use spec::{
    CalibrationSet, Cell, EvalText, ImatrixMode, Quantization, StudySpec, Variant, DEFAULT_EVAL_CHUNKS, DEFAULT_KLD_CHUNKS,
    DEFAULT_N_CTX,
};
pub use study::run_study;

/// The version recorded in results and cache keys, so that a new release recomputes.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
