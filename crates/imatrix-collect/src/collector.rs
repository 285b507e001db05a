//! The accumulator behind collection: sums of squared matmul inputs per weight column.

use crate::error::ImatrixError;
use crate::imatrix::{check_count, Imatrix};

/// Minimum activation rows of a collected matmul. llama-imatrix skips smaller ones
/// (single-token decode steps and similar), so this collector does too to match its counts.
pub const MIN_ROWS: usize = 16;

/// Prefix of the per-layer weight names that llama-imatrix collects.
const BLOCK_PREFIX: &str = "blk.";

/// Name of the untied output head, collected only with `process_output`.
const OUTPUT_WEIGHT: &str = "output.weight";

/// Receives the inputs of a model's weight matmuls, one call per matmul.
///
/// A model that supports imatrix collection calls this for every matrix multiplication whose
/// left operand is a weight tensor, before or after computing it.
pub trait MatmulObserver {
    /// Observes `x`, the f32 input of the matmul with weight `weight_name` (its GGUF name,
    /// e.g. `blk.3.ffn_down.weight`): `n_rows` activation rows (tokens) of `n_cols` values,
    /// row-major, so `x.len() == n_rows * n_cols` and `n_cols` is the weight's ne\[0\].
    fn on_matmul_input(&mut self, weight_name: &str, x: &[f32], n_rows: usize, n_cols: usize);
}

/// Accumulates llama-imatrix statistics from matmul inputs.
///
/// For every weight whose name starts with `blk.` (and `output.weight` when
/// `process_output` is set) and every input of at least [`MIN_ROWS`] rows, it adds `x_j²` of
/// each row to column `j`'s sum and the row count to the entry's count. Sums are `f32`,
/// added row by row, as llama.cpp does. A tied output head reports `token_embd.weight` and is
/// therefore never collected, as in llama.cpp.
///
/// [`MatmulObserver`] cannot return errors, so the first inconsistent input is stored and
/// returned by [`ImatrixCollector::take_error`]; later inputs are ignored until then.
///
/// # Examples
/// ```
/// use imatrix_collect::{ImatrixCollector, MatmulObserver};
///
/// let mut collector = ImatrixCollector::new(512, false);
/// let x = vec![2.0f32; 16 * 4]; // 16 rows of 4 columns
/// collector.on_matmul_input("blk.0.attn_q.weight", &x, 16, 4);
/// collector.on_matmul_input("token_embd.weight", &x, 16, 4); // never collected
/// collector.take_error()?;
///
/// let imatrix = collector.into_imatrix();
/// let entry = imatrix.entry("blk.0.attn_q.weight").unwrap();
/// assert_eq!(entry.in_sum2(), &[64.0; 4]);
/// assert_eq!(entry.counts(), &[16]);
/// assert!(imatrix.entry("token_embd.weight").is_none());
/// # Ok::<(), imatrix_collect::ImatrixError>(())
/// ```
#[derive(Debug)]
pub struct ImatrixCollector {
    imatrix: Imatrix,
    process_output: bool,
    error: Option<ImatrixError>,
}

impl ImatrixCollector {
    /// Creates an empty collector for chunks of `chunk_size` tokens; `process_output` also
    /// collects an untied `output.weight`.
    pub fn new(chunk_size: u32, process_output: bool) -> Self {
        Self {
            imatrix: Imatrix::new(chunk_size),
            process_output,
            error: None,
        }
    }

    /// Continues from an existing imatrix (e.g. one loaded with llama-imatrix `--in-file`
    /// semantics) so that new chunks add to it.
    pub fn from_imatrix(imatrix: Imatrix, process_output: bool) -> Self {
        Self {
            imatrix,
            process_output,
            error: None,
        }
    }

    /// Returns whether matmuls of `weight_name` are collected.
    pub fn is_collected(&self, weight_name: &str) -> bool {
        weight_name.starts_with(BLOCK_PREFIX)
            || (self.process_output && weight_name == OUTPUT_WEIGHT)
    }

    /// Returns the statistics so far.
    pub fn imatrix(&self) -> &Imatrix {
        &self.imatrix
    }

    /// Counts one more finished chunk (`imatrix.chunk_count`).
    pub fn finish_chunk(&mut self) {
        let chunk_count = self.imatrix.chunk_count().saturating_add(1);
        self.imatrix.set_chunk_count(chunk_count);
    }

    /// Records the calibration text's name in the result.
    pub fn push_dataset(&mut self, dataset: impl Into<String>) {
        self.imatrix.push_dataset(dataset);
    }

    /// Returns and clears the first error met since the last call.
    ///
    /// # Errors
    /// [`ImatrixError::BadActivation`] for an input whose length or column count is
    /// inconsistent, [`ImatrixError::InvalidValue`] when a sum became NaN or infinite, and
    /// [`ImatrixError::OutOfRange`] when a count passed [`crate::MAX_COUNT`].
    pub fn take_error(&mut self) -> Result<(), ImatrixError> {
        match self.error.take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Consumes the collector and returns the imatrix.
    pub fn into_imatrix(self) -> Imatrix {
        self.imatrix
    }

    fn accumulate(
        &mut self,
        weight_name: &str,
        x: &[f32],
        n_rows: usize,
        n_cols: usize,
    ) -> Result<(), ImatrixError> {
        let expected_len = n_rows.checked_mul(n_cols);
        if n_cols == 0 || expected_len != Some(x.len()) {
            return Err(ImatrixError::BadActivation {
                tensor: weight_name.to_owned(),
                detail: format!("{} values for {n_rows} rows x {n_cols} columns", x.len()),
            });
        }

        let entry = self.imatrix.entry_or_zeros(weight_name, n_cols, 1);
        if entry.n_cols() != n_cols {
            return Err(ImatrixError::BadActivation {
                tensor: weight_name.to_owned(),
                detail: format!(
                    "{n_cols} columns, but earlier inputs had {}",
                    entry.n_cols()
                ),
            });
        }

        let (sums, counts) = entry.parts_mut();
        for row in x.chunks_exact(n_cols) {
            for (sum, &value) in sums.iter_mut().zip(row) {
                *sum += value * value;
            }
        }
        counts[0] += n_rows as u64;
        check_count(weight_name, counts[0])?;

        // llama-imatrix aborts on a non-finite sum: it means the model produced NaN or Inf.
        if let Some(index) = sums.iter().position(|sum| !sum.is_finite()) {
            return Err(ImatrixError::InvalidValue {
                tensor: weight_name.to_owned(),
                what: "in_sum2",
                index,
                value: f64::from(sums[index]),
            });
        }
        Ok(())
    }
}

impl MatmulObserver for ImatrixCollector {
    fn on_matmul_input(&mut self, weight_name: &str, x: &[f32], n_rows: usize, n_cols: usize) {
        if self.error.is_some() || n_rows < MIN_ROWS || !self.is_collected(weight_name) {
            return;
        }
        if let Err(error) = self.accumulate(weight_name, x, n_rows, n_cols) {
            self.error = Some(error);
        }
    }
}
