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

/// llama.cpp's default logical batch size (`-b`, `n_batch`), in tokens.
pub const DEFAULT_N_BATCH: usize = 2048;

/// llama.cpp's default physical batch size (`-ub`, `n_ubatch`), in tokens.
pub const DEFAULT_N_UBATCH: usize = 512;

/// How llama.cpp cuts one evaluated batch into micro-batches (ubatches).
///
/// llama-imatrix evaluates `n_batch / n_ctx` chunks as one batch of that many sequences.
/// llama.cpp runs such a batch in ubatches that take the same number of tokens from every
/// sequence (`n_ubatch / n_seqs` each), and llama-imatrix receives one matmul input per
/// ubatch. That fixes two things: the order in which rows are added to the sums (ubatch by
/// ubatch, and within a ubatch sequence by sequence), and which rows are left out (a ubatch of
/// fewer than [`MIN_ROWS`] tokens). A single sequence longer than `n_batch` is evaluated
/// `n_batch` tokens at a time, each cut into ubatches of `n_ubatch`.
///
/// # Examples
/// ```
/// use imatrix_collect::BatchLayout;
///
/// // Four chunks of 512 tokens under llama.cpp's defaults (-b 2048 -ub 512): four ubatches
/// // of 128 tokens from each chunk.
/// let layout = BatchLayout { n_seqs: 4, ..BatchLayout::default() };
/// assert_eq!(layout.ubatches(512), vec![(0, 128), (128, 128), (256, 128), (384, 128)]);
///
/// // Three chunks: 170 tokens from each, then the 2 left over.
/// let layout = BatchLayout { n_seqs: 3, ..BatchLayout::default() };
/// assert_eq!(layout.ubatches(512), vec![(0, 170), (170, 170), (340, 170), (510, 2)]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLayout {
    /// Sequences in the batch, all of the same length, their rows concatenated in sequence
    /// order.
    pub n_seqs: usize,
    /// Logical batch size, llama.cpp's `n_batch` (tokens).
    pub n_batch: usize,
    /// Physical batch size, llama.cpp's `n_ubatch` (tokens); values above `n_batch` act as
    /// `n_batch`, as in llama.cpp.
    pub n_ubatch: usize,
}

impl Default for BatchLayout {
    /// Returns one sequence under llama.cpp's default batch sizes.
    fn default() -> Self {
        Self {
            n_seqs: 1,
            n_batch: DEFAULT_N_BATCH,
            n_ubatch: DEFAULT_N_UBATCH,
        }
    }
}

impl BatchLayout {
    /// Returns the ubatches of a batch whose sequences have `seq_len` tokens each, in
    /// evaluation order, as `(first token, tokens)` within every sequence.
    ///
    /// Zero sizes count as 1, so the result always covers `0..seq_len`.
    pub fn ubatches(&self, seq_len: usize) -> Vec<(usize, usize)> {
        let n_seqs = self.n_seqs.max(1);
        let n_batch = self.n_batch.max(1);
        let n_ubatch = self.n_ubatch.clamp(1, n_batch);

        let mut pieces = Vec::new();
        if n_seqs == 1 {
            // One sequence: batches of n_batch tokens, each cut into ubatches of n_ubatch.
            for batch_start in (0..seq_len).step_by(n_batch) {
                let batch_end = (batch_start + n_batch).min(seq_len);
                for start in (batch_start..batch_end).step_by(n_ubatch) {
                    pieces.push((start, n_ubatch.min(batch_end - start)));
                }
            }
        } else {
            // llama.cpp's equal split: the same number of tokens from every sequence.
            let per_seq = (n_ubatch / n_seqs).max(1);
            for start in (0..seq_len).step_by(per_seq) {
                pieces.push((start, per_seq.min(seq_len - start)));
            }
        }
        pieces
    }
}

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
/// `process_output` is set), it adds `x_j²` of each row to column `j`'s sum and the row count
/// to the entry's count. Sums are `f32`, added row by row in the order llama-imatrix adds
/// them. Each input is cut into ubatches by the current [`BatchLayout`], which is one
/// sequence under llama.cpp's batch sizes until [`ImatrixCollector::set_batch_layout`] changes
/// it. Ubatches of fewer than [`MIN_ROWS`] rows are left out. A tied output head reports `token_embd.weight` and is
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
    layout: BatchLayout,
    error: Option<ImatrixError>,
}

impl ImatrixCollector {
    /// Creates an empty collector for chunks of `chunk_size` tokens; `process_output` also
    /// collects an untied `output.weight`.
    pub fn new(chunk_size: u32, process_output: bool) -> Self {
        Self {
            imatrix: Imatrix::new(chunk_size),
            process_output,
            layout: BatchLayout::default(),
            error: None,
        }
    }

    /// Continues from an existing imatrix (e.g. one loaded with llama-imatrix `--in-file`
    /// semantics) so that new chunks add to it.
    pub fn from_imatrix(imatrix: Imatrix, process_output: bool) -> Self {
        Self {
            imatrix,
            process_output,
            layout: BatchLayout::default(),
            error: None,
        }
    }

    /// Sets how the following inputs are laid out: the number of sequences in each and
    /// the batch sizes they were evaluated under (see [`BatchLayout`]).
    pub fn set_batch_layout(&mut self, layout: BatchLayout) {
        self.layout = layout;
    }

    /// Returns the current batch layout.
    pub fn batch_layout(&self) -> BatchLayout {
        self.layout
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

        let n_seqs = self.layout.n_seqs.max(1);
        if n_rows % n_seqs != 0 {
            return Err(ImatrixError::BadActivation {
                tensor: weight_name.to_owned(),
                detail: format!("{n_rows} rows do not split into {n_seqs} sequences of equal length"),
            });
        }
        let seq_len = n_rows / n_seqs;

        // llama-imatrix ignores matmuls of fewer than MIN_ROWS tokens.
        let ubatches: Vec<(usize, usize)> = self
            .layout
            .ubatches(seq_len)
            .into_iter()
            .filter(|&(_, len)| len * n_seqs >= MIN_ROWS)
            .collect();
        if ubatches.is_empty() {
            return Ok(());
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
        for &(first, len) in &ubatches {
            for seq in 0..n_seqs {
                let rows = &x[(seq * seq_len + first) * n_cols..(seq * seq_len + first + len) * n_cols];
                for row in rows.chunks_exact(n_cols) {
                    for (sum, &value) in sums.iter_mut().zip(row) {
                        *sum += value * value;
                    }
                }
            }
            counts[0] += (len * n_seqs) as u64;
        }
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
        if self.error.is_some() || !self.is_collected(weight_name) {
            return;
        }
        if let Err(error) = self.accumulate(weight_name, x, n_rows, n_cols) {
            self.error = Some(error);
        }
    }
}
