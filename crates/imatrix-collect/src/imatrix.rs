//! The in-memory importance matrix: per weight tensor, sums of squared activations and counts.

use std::collections::BTreeMap;

use crate::error::ImatrixError;

/// Chunk size (n_ctx) that llama-imatrix uses by default, and that legacy `.dat` files imply
/// because they do not store it.
pub const DEFAULT_CHUNK_SIZE: u32 = 512;

/// Largest activation-row count accepted per matrix, 2^50 (about 10^15 tokens).
///
/// Far above any calibration run, and it keeps sums of counts exact in `u64` and `f64`.
pub const MAX_COUNT: u64 = 1 << 50;

/// Statistics of one weight tensor: `in_sum2` (Σx² per input column) and row counts.
///
/// A 2-D weight has one matrix (`n_mat = 1`); a 3-D expert weight has `n_mat` matrices, each
/// with its own count, and `in_sum2` contains `n_mat` consecutive slices of `n_cols` values.
#[derive(Debug, Clone, PartialEq)]
pub struct ImatrixEntry {
    n_cols: usize,
    in_sum2: Vec<f32>,
    counts: Vec<u64>,
}

impl ImatrixEntry {
    /// Creates an entry of `n_mat` matrices with `n_cols` columns each, all zero.
    pub fn zeros(n_cols: usize, n_mat: usize) -> Self {
        Self {
            n_cols,
            in_sum2: vec![0.0; n_cols * n_mat],
            counts: vec![0; n_mat],
        }
    }

    /// Creates an entry from raw sums of squares and per-matrix counts.
    ///
    /// # Errors
    /// [`ImatrixError::ShapeMismatch`] when `in_sum2.len() != n_cols * counts.len()` or either is
    /// empty, [`ImatrixError::InvalidValue`] for a NaN, infinite or negative sum, and
    /// [`ImatrixError::OutOfRange`] for a count above [`MAX_COUNT`].
    pub fn new(
        tensor: &str,
        n_cols: usize,
        in_sum2: Vec<f32>,
        counts: Vec<u64>,
    ) -> Result<Self, ImatrixError> {
        let n_mat = counts.len();
        if n_cols == 0 || n_mat == 0 || in_sum2.len() != n_cols * n_mat {
            return Err(ImatrixError::ShapeMismatch {
                tensor: tensor.to_owned(),
                detail: format!(
                    "in_sum2 has {} values, expected n_cols {n_cols} x n_mat {n_mat} (both non-zero)",
                    in_sum2.len()
                ),
            });
        }

        check_sums(tensor, &in_sum2)?;
        for &count in &counts {
            check_count(tensor, count)?;
        }

        Ok(Self {
            n_cols,
            in_sum2,
            counts,
        })
    }

    /// Returns the number of input columns (ne\[0\] of the weight).
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Returns the number of matrices (1, or the expert count of a 3-D weight).
    pub fn n_mat(&self) -> usize {
        self.counts.len()
    }

    /// Returns the raw sums of squared activations, `n_mat` slices of `n_cols` values.
    pub fn in_sum2(&self) -> &[f32] {
        &self.in_sum2
    }

    /// Returns the activation-row count of each matrix.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Returns mutable sums and counts for accumulation inside the crate.
    pub(crate) fn parts_mut(&mut self) -> (&mut [f32], &mut [u64]) {
        (&mut self.in_sum2, &mut self.counts)
    }

    /// Computes the mean squared activation per column, `in_sum2 / count`, as quantizers use it.
    ///
    /// A matrix whose count is 0 gets 1.0 in every column, as in llama-quantize, so that it
    /// weighs every column equally.
    pub fn mean_squares(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.in_sum2.len());
        for (slice, &count) in self.in_sum2.chunks_exact(self.n_cols).zip(&self.counts) {
            if count == 0 {
                out.extend(std::iter::repeat(1.0).take(self.n_cols));
            } else {
                let count = count as f32;
                out.extend(slice.iter().map(|&sum| sum / count));
            }
        }
        out
    }

    /// Adds the sums and counts of `other` into this entry.
    ///
    /// # Errors
    /// [`ImatrixError::ShapeMismatch`] when the shapes differ and
    /// [`ImatrixError::InvalidValue`] when a sum overflows to infinity.
    pub fn add(&mut self, tensor: &str, other: &ImatrixEntry) -> Result<(), ImatrixError> {
        if self.n_cols != other.n_cols || self.n_mat() != other.n_mat() {
            return Err(ImatrixError::ShapeMismatch {
                tensor: tensor.to_owned(),
                detail: format!(
                    "cannot add [{} x {}] to [{} x {}] (n_cols x n_mat)",
                    other.n_cols,
                    other.n_mat(),
                    self.n_cols,
                    self.n_mat()
                ),
            });
        }

        for (sum, &add) in self.in_sum2.iter_mut().zip(&other.in_sum2) {
            *sum += add;
        }
        for (count, &add) in self.counts.iter_mut().zip(&other.counts) {
            *count += add;
        }

        check_sums(tensor, &self.in_sum2)?;
        for &count in &self.counts {
            check_count(tensor, count)?;
        }
        Ok(())
    }
}

/// Rejects NaN, infinite and negative sums of squares.
pub(crate) fn check_sums(tensor: &str, values: &[f32]) -> Result<(), ImatrixError> {
    match values.iter().position(|v| !v.is_finite() || *v < 0.0) {
        None => Ok(()),
        Some(index) => Err(ImatrixError::InvalidValue {
            tensor: tensor.to_owned(),
            what: "in_sum2",
            index,
            value: f64::from(values[index]),
        }),
    }
}

/// Rejects a count above [`MAX_COUNT`].
pub(crate) fn check_count(tensor: &str, count: u64) -> Result<(), ImatrixError> {
    if count > MAX_COUNT {
        return Err(ImatrixError::OutOfRange {
            context: format!("tensor {tensor}"),
            field: "count",
            value: i64::try_from(count).unwrap_or(i64::MAX),
            max: MAX_COUNT as i64,
        });
    }
    Ok(())
}

/// An importance matrix: statistics per weight tensor plus the provenance llama.cpp stores.
///
/// Entries are kept sorted by tensor name, the order both llama.cpp file formats use.
#[derive(Debug, Clone, PartialEq)]
pub struct Imatrix {
    entries: BTreeMap<String, ImatrixEntry>,
    datasets: Vec<String>,
    chunk_count: u32,
    chunk_size: u32,
}

impl Imatrix {
    /// Creates an empty imatrix for chunks of `chunk_size` tokens.
    pub fn new(chunk_size: u32) -> Self {
        Self {
            entries: BTreeMap::new(),
            datasets: Vec::new(),
            chunk_count: 0,
            chunk_size,
        }
    }

    /// Returns the entries, sorted by weight tensor name.
    pub fn entries(&self) -> &BTreeMap<String, ImatrixEntry> {
        &self.entries
    }

    /// Returns the entry of weight `tensor` (e.g. `blk.3.ffn_down.weight`), if any.
    pub fn entry(&self, tensor: &str) -> Option<&ImatrixEntry> {
        self.entries.get(tensor)
    }

    /// Inserts or replaces the entry of `tensor`.
    pub fn insert(&mut self, tensor: impl Into<String>, entry: ImatrixEntry) {
        self.entries.insert(tensor.into(), entry);
    }

    /// Returns a mutable entry, creating a zero one of `n_cols` x `n_mat` when absent.
    pub(crate) fn entry_or_zeros(
        &mut self,
        tensor: &str,
        n_cols: usize,
        n_mat: usize,
    ) -> &mut ImatrixEntry {
        if !self.entries.contains_key(tensor) {
            self.entries
                .insert(tensor.to_owned(), ImatrixEntry::zeros(n_cols, n_mat));
        }
        self.entries.get_mut(tensor).expect("entry inserted above")
    }

    /// Returns the calibration text names (paths) this imatrix was collected on.
    pub fn datasets(&self) -> &[String] {
        &self.datasets
    }

    /// Appends a dataset name.
    pub fn push_dataset(&mut self, dataset: impl Into<String>) {
        self.datasets.push(dataset.into());
    }

    /// Returns the number of chunks collected (`imatrix.chunk_count`).
    pub fn chunk_count(&self) -> u32 {
        self.chunk_count
    }

    /// Sets the number of chunks collected.
    pub fn set_chunk_count(&mut self, chunk_count: u32) {
        self.chunk_count = chunk_count;
    }

    /// Returns the tokens per chunk (`imatrix.chunk_size`, the n_ctx of collection).
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Returns the activation rows seen: the largest single-matrix count over all entries.
    ///
    /// For a dense model every `blk.*` entry counts every token once, so this is the token count.
    pub fn token_count(&self) -> u64 {
        self.entries
            .values()
            .flat_map(|entry| entry.counts.iter().copied())
            .max()
            .unwrap_or(0)
    }

    /// Adds `other` into `self` as llama-imatrix `--in-file` does: sums and counts are added
    /// per tensor, tensors only in `other` are copied, chunk counts are added and datasets
    /// appended.
    ///
    /// # Errors
    /// [`ImatrixError::ChunkSizeMismatch`] when the chunk sizes differ, and
    /// [`ImatrixError::ShapeMismatch`] when a tensor has another shape in `other`.
    /// On error `self` may hold a partial merge; merge into a clone to keep the original.
    pub fn merge(&mut self, other: &Imatrix) -> Result<(), ImatrixError> {
        if self.chunk_size != other.chunk_size {
            return Err(ImatrixError::ChunkSizeMismatch {
                first: self.chunk_size,
                second: other.chunk_size,
            });
        }

        for (name, entry) in &other.entries {
            match self.entries.get_mut(name) {
                Some(existing) => existing.add(name, entry)?,
                None => {
                    self.entries.insert(name.clone(), entry.clone());
                }
            }
        }

        self.chunk_count = self.chunk_count.saturating_add(other.chunk_count);
        self.datasets.extend(other.datasets.iter().cloned());
        Ok(())
    }

    /// Merges several imatrices into one (see [`Imatrix::merge`]).
    ///
    /// # Errors
    /// [`ImatrixError::NoInput`] for an empty list, otherwise as [`Imatrix::merge`].
    pub fn merge_all<'a>(
        sources: impl IntoIterator<Item = &'a Imatrix>,
    ) -> Result<Imatrix, ImatrixError> {
        let mut sources = sources.into_iter();
        let mut merged = sources.next().ok_or(ImatrixError::NoInput)?.clone();
        for source in sources {
            merged.merge(source)?;
        }
        Ok(merged)
    }

    /// Returns the importance vector for the 2-D weight `tensor` with `expected_ncols` columns,
    /// ready for `kquant`'s imatrix quantizers: the mean squares `in_sum2 / count`.
    ///
    /// Returns `Ok(None)` when the imatrix has no entry for `tensor`; llama-quantize then
    /// quantizes that tensor without an imatrix.
    ///
    /// # Errors
    /// [`ImatrixError::ColumnMismatch`] when the entry has another column count, and
    /// [`ImatrixError::MatrixCountMismatch`] when it belongs to a 3-D (expert) weight.
    pub fn importance_for(
        &self,
        tensor: &str,
        expected_ncols: usize,
    ) -> Result<Option<Vec<f32>>, ImatrixError> {
        self.expert_importance_for(tensor, expected_ncols, 1)
    }

    /// Returns the importance vectors of a weight with `n_mat` matrices (experts) of
    /// `expected_ncols` columns: `n_mat` consecutive slices of mean squares.
    ///
    /// An entry read from a legacy `.dat` file has no expert axis; one flat matrix of
    /// `n_mat * expected_ncols` columns is accepted in its place, as llama-quantize does.
    ///
    /// # Errors
    /// As [`Imatrix::importance_for`], with [`ImatrixError::MatrixCountMismatch`] when the
    /// entry has another matrix count.
    pub fn expert_importance_for(
        &self,
        tensor: &str,
        expected_ncols: usize,
        n_mat: usize,
    ) -> Result<Option<Vec<f32>>, ImatrixError> {
        let Some(entry) = self.entries.get(tensor) else {
            return Ok(None);
        };

        // A legacy .dat file stores an expert weight's matrices as one flat vector under a
        // single call count, so it reads back as one matrix of n_mat * n_cols columns.
        let legacy_flattened =
            n_mat > 1 && entry.n_mat() == 1 && entry.n_cols == expected_ncols * n_mat;
        if legacy_flattened {
            return Ok(Some(entry.mean_squares()));
        }

        if entry.n_cols != expected_ncols {
            return Err(ImatrixError::ColumnMismatch {
                tensor: tensor.to_owned(),
                found: entry.n_cols,
                expected: expected_ncols,
            });
        }
        if entry.n_mat() != n_mat {
            return Err(ImatrixError::MatrixCountMismatch {
                tensor: tensor.to_owned(),
                found: entry.n_mat(),
                expected: n_mat,
            });
        }

        Ok(Some(entry.mean_squares()))
    }

    /// Returns the importance vector of `tensor` like [`Imatrix::importance_for`], but fails when
    /// the entry is missing, for quantization types that cannot work without one (IQ1, IQ2 and
    /// Q2_K in llama-quantize's very-low-bit mixes).
    ///
    /// # Errors
    /// [`ImatrixError::MissingImportance`] when there is no entry, otherwise as
    /// [`Imatrix::importance_for`].
    pub fn require_importance(
        &self,
        tensor: &str,
        expected_ncols: usize,
    ) -> Result<Vec<f32>, ImatrixError> {
        self.importance_for(tensor, expected_ncols)?.ok_or_else(|| {
            ImatrixError::MissingImportance {
                tensor: tensor.to_owned(),
            }
        })
    }
}
