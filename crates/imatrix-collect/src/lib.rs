//! Collect, save, load, merge, mix and compare importance matrices (imatrix) compatible
//! with llama.cpp's `llama-imatrix`.
//!
//! An imatrix stores, per weight tensor, the sum of squared activations that reached each
//! input column (`in_sum2`) and how many activation rows were summed (`counts`). Quantizers
//! weigh each column's rounding error by the mean square `in_sum2 / count`
//! ([`Imatrix::importance_for`]).
//!
//! - Collection: [`collect_imatrix`] runs any [`ActivationModel`] over a tokenized text in
//!   chunks and accumulates with an [`ImatrixCollector`]; with the `gemma2` feature (on by
//!   default), `gemma2_model::Model` is such a model.
//! - Files: [`Imatrix::load`] reads llama.cpp's GGUF and legacy `.dat` files, telling them
//!   apart by their first bytes; [`Imatrix::save`] writes either, atomically. Both readers
//!   treat their input as untrusted.
//! - Combining: [`Imatrix::merge`] adds sums and counts (llama-imatrix `--in-file`);
//!   [`mix`] weighs sources by per-token means (e.g. 0.7 English + 0.3 Japanese).
//! - Comparing: [`compare`] reports cosine similarity, Spearman correlation and top-1%
//!   overlap per tensor, as a table ([`std::fmt::Display`]) or JSON.
//!
//! # Examples
//! ```
//! use imatrix_collect::{Imatrix, ImatrixEntry, ImatrixFormat};
//!
//! let mut imatrix = Imatrix::new(512);
//! let sums = vec![512.0, 1024.0];
//! imatrix.insert("blk.0.attn_q.weight", ImatrixEntry::new("blk.0.attn_q.weight", 2, sums, vec![512])?);
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("imatrix.gguf");
//! imatrix.save(&path, ImatrixFormat::Gguf)?;
//!
//! let loaded = Imatrix::load(&path)?;
//! assert_eq!(loaded.importance_for("blk.0.attn_q.weight", 2)?, Some(vec![1.0, 2.0]));
//! # Ok::<(), imatrix_collect::ImatrixError>(())
//! ```

mod collect;
mod collector;
mod compare;
mod dat;
mod error;
mod format;
#[cfg(feature = "gemma2")]
mod gemma2;
mod gguf;
mod imatrix;
mod mix;
mod ppl;

pub use collect::{
    collect_imatrix, collect_imatrix_with_progress, ActivationModel, ChunkReport, CollectOutcome,
    CollectParams, SaveSchedule, DEFAULT_N_CTX, DEFAULT_SAVE_EVERY,
};
pub use collector::{BatchLayout, ImatrixCollector, MatmulObserver, DEFAULT_N_BATCH, DEFAULT_N_UBATCH, MIN_ROWS};
pub use compare::{
    compare, cosine_similarity, spearman, top_overlap, ImatrixComparison, ShapeDifference,
    TensorComparison, TOP_FRACTION,
};
pub use dat::{read_dat, write_dat, MAX_DATASET_LEN, MAX_DAT_ENTRIES, MAX_NAME_LEN};
pub use error::ImatrixError;
pub use format::ImatrixFormat;
#[cfg(feature = "gemma2")]
pub use gemma2::collect_from_text;
pub use gguf::{read_gguf, write_gguf, write_gguf_bytes, GENERAL_TYPE};
pub use imatrix::{Imatrix, ImatrixEntry, DEFAULT_CHUNK_SIZE, MAX_COUNT};
pub use mix::mix;
pub use ppl::{NllAccumulator, PplEstimate};
