//! Matrix multiplication of a quantized weight matrix by a batch of f32 activation rows.
//!
//! This is the hot path of a forward pass. [`matmul`] quantizes each activation row once to
//! the weight type's vec-dot type, then splits the output into tiles of weight rows x
//! activation rows and computes the tiles on the rayon thread pool. Every output value comes
//! from one call of the same kernel on the same inputs, so the result does not depend on the
//! number of threads.

use std::mem::{align_of, size_of};

use gguf_format::GgmlType;
use half::{bf16, f16};
use bytemuck::Pod;
use rayon::prelude::*;

use crate::activation::ActivationBlock;
use crate::blocks::{
    BlockIQ4NL, BlockIQ4XS, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K,
    BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1,
};
use crate::dot::{vec_dot_type, Isa, VecDot};
use crate::QuantError;

/// Weight rows per tile: 32 rows of a 640-column Q8_0 matrix are 21.8 KB, which stays in a
/// 32 KB L1 data cache while the tile's activation rows stream past it.
const ROW_TILE: usize = 32;

/// Activation rows per tile; a multiple of 4 so the four-row kernels see full groups.
const BATCH_TILE: usize = 64;

/// Activation rows the `vec_dot_x4` kernels take at once.
const X4: usize = 4;

/// A row-major quantized weight matrix borrowed from a GGUF tensor (or any byte buffer).
///
/// Row `r` contains the `n_cols` weights that produce output feature `r`; in ggml terms
/// `n_cols` is `ne[0]` and `n_rows` is `ne[1]`. The bytes may sit at any alignment, for
/// example inside a memory-mapped file.
#[derive(Clone, Copy, Debug)]
pub struct WeightMatrix<'a> {
    ggml_type: GgmlType,
    data: &'a [u8],
    n_cols: usize,
    n_rows: usize,
    row_size: usize,
    repacked: bool,
}

impl<'a> WeightMatrix<'a> {
    /// Wraps `data` as `n_rows` rows of `n_cols` weights of type `ggml_type`.
    ///
    /// # Errors
    ///
    /// - [`QuantError::UnsupportedType`] when the crate has no dot product for `ggml_type`.
    /// - [`QuantError::EmptyRow`] when `n_cols` is 0.
    /// - [`QuantError::RowLength`] when `n_cols` is not a multiple of the block size.
    /// - [`QuantError::MatrixData`] when `data.len()` is not `n_rows` times the row size.
    ///
    /// # Examples
    ///
    /// ```
    /// use gguf_format::GgmlType;
    /// use kquant::WeightMatrix;
    ///
    /// // Two rows of 32 Q8_0 weights: one 34-byte block per row.
    /// let data = vec![0u8; 2 * 34];
    /// let weight = WeightMatrix::new(GgmlType::Q8_0, &data, 32, 2)?;
    /// assert_eq!(weight.row_size(), 34);
    /// assert!(WeightMatrix::new(GgmlType::Q8_0, &data, 32, 3).is_err());
    /// # Ok::<(), kquant::QuantError>(())
    /// ```
    pub fn new(
        ggml_type: GgmlType,
        data: &'a [u8],
        n_cols: usize,
        n_rows: usize,
    ) -> Result<Self, QuantError> {
        if vec_dot_type(ggml_type).is_none() {
            return Err(QuantError::UnsupportedType(ggml_type));
        }
        let row_size = checked_row_size(ggml_type, n_cols)?;

        let expected = row_size.checked_mul(n_rows);
        if expected != Some(data.len()) {
            return Err(QuantError::MatrixData {
                ggml_type,
                n_rows,
                n_cols,
                expected: expected.unwrap_or(usize::MAX),
                found: data.len(),
            });
        }

        Ok(Self { ggml_type, data, n_cols, n_rows, row_size, repacked: false })
    }

    /// Marks the matrix as held in ggml's `CPU_REPACK` buffer, or not.
    ///
    /// llama.cpp's CPU backend repacks the Q4_0, Q4_K and IQ4_NL weights of every matrix
    /// multiplication (on x86-64 with AVX2; rows a multiple of 8) into interleaved blocks and
    /// multiplies them with other kernels, whose floating-point sums run in another order.
    /// A tied token embedding used as the output matrix is never repacked, because the same
    /// tensor also serves the embedding lookup. [`matmul_quantized`] follows the repacked
    /// kernels' order when this is set and the type and shape have such a kernel, and the
    /// plain kernels' order otherwise. The default is `false`.
    #[must_use]
    pub fn with_repack(mut self, repacked: bool) -> Self {
        self.repacked = repacked;
        self
    }

    /// Returns whether [`WeightMatrix::with_repack`] marked the matrix as repacked.
    pub fn is_repacked(&self) -> bool {
        self.repacked
    }

    /// Returns the ggml type of the weights.
    pub fn ggml_type(&self) -> GgmlType {
        self.ggml_type
    }

    /// Returns the raw bytes of the matrix, `n_rows * row_size` long.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Returns the number of weights per row (`ne[0]`, the input features).
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Returns the number of rows (`ne[1]`, the output features).
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Returns the size of one row in bytes.
    pub fn row_size(&self) -> usize {
        self.row_size
    }
}

/// Returns the byte size of a row of `n_cols` elements of `ggml_type`, checking the length.
fn checked_row_size(ggml_type: GgmlType, n_cols: usize) -> Result<usize, QuantError> {
    if n_cols == 0 {
        return Err(QuantError::EmptyRow);
    }

    let block_size = ggml_type.block_size();
    if n_cols % block_size != 0 {
        return Err(QuantError::RowLength { n_per_row: n_cols, ggml_type, block_size });
    }

    Ok(n_cols / block_size * ggml_type.type_size())
}

/// Activation rows already converted to a weight type's vec-dot type.
///
/// Build it once with [`quantize_activations`] and pass it to [`matmul_quantized`] for every
/// weight matrix that reads the same input and shares the vec-dot type. Examples are the Q,
/// K and V projections, or the gate and up projections of a feed-forward block.
#[derive(Clone, Debug)]
pub struct QuantizedActivations {
    n_batch: usize,
    n_cols: usize,
    rows: ActivationRows,
}

/// Storage of [`QuantizedActivations`], one variant per activation format.
#[derive(Clone, Debug)]
enum ActivationRows {
    Q8_0(Vec<BlockQ8_0>),
    Q8_1(Vec<BlockQ8_1>),
    Q8K(Vec<BlockQ8K>),
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
}

impl QuantizedActivations {
    /// Returns the ggml type of the stored rows (Q8_0, Q8_1, Q8_K, F32, F16 or BF16).
    pub fn ggml_type(&self) -> GgmlType {
        match &self.rows {
            ActivationRows::Q8_0(_) => GgmlType::Q8_0,
            ActivationRows::Q8_1(_) => GgmlType::Q8_1,
            ActivationRows::Q8K(_) => GgmlType::Q8_K,
            ActivationRows::F32(_) => GgmlType::F32,
            ActivationRows::F16(_) => GgmlType::F16,
            ActivationRows::BF16(_) => GgmlType::BF16,
        }
    }

    /// Returns the number of activation rows.
    pub fn n_batch(&self) -> usize {
        self.n_batch
    }

    /// Returns the number of elements per row.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Returns the stored blocks of every row as bytes, row after row, in the layout ggml
    /// writes (its `wdata` buffer).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.rows {
            ActivationRows::Q8_0(v) => bytemuck::cast_slice(v),
            ActivationRows::Q8_1(v) => bytemuck::cast_slice(v),
            ActivationRows::Q8K(v) => bytemuck::cast_slice(v),
            ActivationRows::F32(v) => bytemuck::cast_slice(v),
            ActivationRows::F16(v) => bytemuck::cast_slice(v),
            ActivationRows::BF16(v) => bytemuck::cast_slice(v),
        }
    }

    /// Returns the rows as blocks of `A`, or `None` when they are stored as another type.
    pub(crate) fn blocks<A: ActivationBlock>(&self) -> Option<&[A]> {
        if self.ggml_type() != A::TYPE {
            return None;
        }
        // Each ggml type maps to one Rust type in `ActivationRows`, so the cast only fails
        // if that mapping is broken, and then `None` is returned.
        bytemuck::try_cast_slice(self.as_bytes()).ok()
    }
}

/// Converts `n_batch` rows of `n_cols` f32 activations to `vec_dot_type`, as ggml's x86-64
/// CPU backend does before a matrix multiplication.
///
/// Rows are converted in parallel on the rayon thread pool; the result does not depend on
/// the number of threads.
///
/// # Errors
///
/// - [`QuantError::UnsupportedType`] when `vec_dot_type` is not Q8_0, Q8_1, Q8_K, F32, F16
///   or BF16.
/// - [`QuantError::EmptyRow`] or [`QuantError::RowLength`] when `n_cols` is 0 or not a
///   multiple of the block size.
/// - [`QuantError::ActivationLength`] when `x.len() != n_batch * n_cols`.
/// - [`QuantError::NonFinite`] when an activation is NaN or infinite.
///
/// # Examples
///
/// ```
/// use gguf_format::GgmlType;
///
/// let x = vec![0.5f32; 2 * 256];
/// let acts = kquant::quantize_activations(GgmlType::Q8_K, &x, 2, 256)?;
/// assert_eq!(acts.as_bytes().len(), 2 * 292);
/// # Ok::<(), kquant::QuantError>(())
/// ```
pub fn quantize_activations(
    vec_dot_type: GgmlType,
    x: &[f32],
    n_batch: usize,
    n_cols: usize,
) -> Result<QuantizedActivations, QuantError> {
    let row_size = checked_row_size(vec_dot_type, n_cols)?;
    check_activation_length(x, n_batch, n_cols)?;
    check_finite(x, n_cols)?;

    let rows = match vec_dot_type {
        GgmlType::Q8_0 => ActivationRows::Q8_0(quantize_rows(x, n_batch, n_cols)),
        GgmlType::Q8_1 => ActivationRows::Q8_1(quantize_rows(x, n_batch, n_cols)),
        GgmlType::Q8_K => ActivationRows::Q8K(quantize_rows(x, n_batch, n_cols)),
        GgmlType::F32 => ActivationRows::F32(x.to_vec()),
        GgmlType::F16 => ActivationRows::F16(quantize_rows(x, n_batch, n_cols)),
        GgmlType::BF16 => ActivationRows::BF16(quantize_rows(x, n_batch, n_cols)),
        other => return Err(QuantError::UnsupportedType(other)),
    };
    debug_assert_eq!(row_size * n_batch, rows_len_bytes(&rows));

    Ok(QuantizedActivations { n_batch, n_cols, rows })
}

fn rows_len_bytes(rows: &ActivationRows) -> usize {
    match rows {
        ActivationRows::Q8_0(v) => size_of::<BlockQ8_0>() * v.len(),
        ActivationRows::Q8_1(v) => size_of::<BlockQ8_1>() * v.len(),
        ActivationRows::Q8K(v) => size_of::<BlockQ8K>() * v.len(),
        ActivationRows::F32(v) => 4 * v.len(),
        ActivationRows::F16(v) => 2 * v.len(),
        ActivationRows::BF16(v) => 2 * v.len(),
    }
}

fn check_activation_length(x: &[f32], n_batch: usize, n_cols: usize) -> Result<(), QuantError> {
    let expected = n_batch.checked_mul(n_cols);
    if expected != Some(x.len()) {
        return Err(QuantError::ActivationLength {
            n_batch,
            n_cols,
            expected: expected.unwrap_or(usize::MAX),
            found: x.len(),
        });
    }
    Ok(())
}

fn check_finite(x: &[f32], n_cols: usize) -> Result<(), QuantError> {
    match x.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(QuantError::NonFinite { row: i / n_cols, column: i % n_cols, value: x[i] }),
        None => Ok(()),
    }
}

/// Converts every row of `x` to blocks of `A` in parallel.
fn quantize_rows<A: ActivationBlock>(x: &[f32], n_batch: usize, n_cols: usize) -> Vec<A> {
    let blocks_per_row = n_cols / A::BLOCK_SIZE;
    let mut out = vec![A::zeroed(); n_batch * blocks_per_row];

    out.par_chunks_mut(blocks_per_row)
        .zip(x.par_chunks(n_cols))
        .for_each(|(blocks, row)| A::quantize_activation_row(row, blocks));
    out
}

/// Multiplies `weight` by `n_batch` f32 activation rows: `out[b * n_rows + r]` is the dot
/// product of weight row `r` with row `b` of `x` (row-major, `n_cols` values per row).
///
/// Equivalent to [`quantize_activations`] followed by [`matmul_quantized`]; use those two
/// when several matrices read the same input.
///
/// # Errors
///
/// - [`QuantError::ActivationLength`] when `x.len() != n_batch * weight.n_cols()`.
/// - [`QuantError::OutputLength`] when `out.len() != n_batch * weight.n_rows()`.
/// - [`QuantError::NonFinite`] when an activation is NaN or infinite.
///
/// # Examples
///
/// ```
/// use gguf_format::GgmlType;
/// use kquant::WeightMatrix;
///
/// // One F32 row of 4 weights times two activation rows.
/// let w: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
/// let weight = WeightMatrix::new(GgmlType::F32, &w, 4, 1)?;
/// let x = [1.0f32, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0];
/// let mut out = [0.0f32; 2];
///
/// kquant::matmul(&weight, &x, 2, &mut out)?;
///
/// assert_eq!(out, [10.0, 4.0]);
/// # Ok::<(), kquant::QuantError>(())
/// ```
pub fn matmul(
    weight: &WeightMatrix,
    x: &[f32],
    n_batch: usize,
    out: &mut [f32],
) -> Result<(), QuantError> {
    check_output_length(weight, n_batch, out)?;

    let vec_dot_type = vec_dot_type(weight.ggml_type)
        .ok_or(QuantError::UnsupportedType(weight.ggml_type))?;
    let activations = quantize_activations(vec_dot_type, x, n_batch, weight.n_cols)?;

    matmul_quantized(weight, &activations, out)
}

/// Multiplies `weight` by activation rows already converted with [`quantize_activations`]:
/// `out[b * n_rows + r]` is the dot product of weight row `r` with activation row `b`.
///
/// Uses the best instruction set this CPU supports ([`Isa::detect`]).
///
/// # Errors
///
/// - [`QuantError::ActivationMismatch`] when the activations are not of the weight type's
///   vec-dot type or have another number of columns.
/// - [`QuantError::OutputLength`] when `out.len() != n_batch * weight.n_rows()`.
pub fn matmul_quantized(
    weight: &WeightMatrix,
    activations: &QuantizedActivations,
    out: &mut [f32],
) -> Result<(), QuantError> {
    matmul_quantized_with_isa(Isa::detect(), weight, activations, out)
}

/// Does the work of [`matmul_quantized`] with the kernels written for `isa`.
///
/// Tests and benches use it to compare the scalar and SIMD paths; an `isa` this CPU lacks
/// falls back to the best one it has.
///
/// # Errors
///
/// As [`matmul_quantized`].
pub fn matmul_quantized_with_isa(
    isa: Isa,
    weight: &WeightMatrix,
    activations: &QuantizedActivations,
    out: &mut [f32],
) -> Result<(), QuantError> {
    let expected_type = vec_dot_type(weight.ggml_type)
        .ok_or(QuantError::UnsupportedType(weight.ggml_type))?;
    if activations.ggml_type() != expected_type || activations.n_cols != weight.n_cols {
        return Err(mismatch(weight, activations));
    }
    check_output_length(weight, activations.n_batch, out)?;

    if let Some(result) = crate::ggml_cpu::matmul(isa, weight, activations, out) {
        return result;
    }

    // Only types outside ggml's kernel families (BF16) get here, through their vec-dot.
    match weight.ggml_type {
        GgmlType::Q4_0 => matmul_typed::<BlockQ4_0>(isa, weight, activations, out),
        GgmlType::Q4_1 => matmul_typed::<BlockQ4_1>(isa, weight, activations, out),
        GgmlType::Q5_0 => matmul_typed::<BlockQ5_0>(isa, weight, activations, out),
        GgmlType::Q5_1 => matmul_typed::<BlockQ5_1>(isa, weight, activations, out),
        GgmlType::Q8_0 => matmul_typed::<BlockQ8_0>(isa, weight, activations, out),
        GgmlType::IQ4_NL => matmul_typed::<BlockIQ4NL>(isa, weight, activations, out),
        GgmlType::Q2_K => matmul_typed::<BlockQ2K>(isa, weight, activations, out),
        GgmlType::Q3_K => matmul_typed::<BlockQ3K>(isa, weight, activations, out),
        GgmlType::Q4_K => matmul_typed::<BlockQ4K>(isa, weight, activations, out),
        GgmlType::Q5_K => matmul_typed::<BlockQ5K>(isa, weight, activations, out),
        GgmlType::Q6_K => matmul_typed::<BlockQ6K>(isa, weight, activations, out),
        GgmlType::IQ4_XS => matmul_typed::<BlockIQ4XS>(isa, weight, activations, out),
        GgmlType::F32 => matmul_typed::<f32>(isa, weight, activations, out),
        GgmlType::F16 => matmul_typed::<f16>(isa, weight, activations, out),
        GgmlType::BF16 => matmul_typed::<bf16>(isa, weight, activations, out),
        other => Err(QuantError::UnsupportedType(other)),
    }
}

/// Builds the error for activations that do not fit `weight`.
fn mismatch(weight: &WeightMatrix, activations: &QuantizedActivations) -> QuantError {
    QuantError::ActivationMismatch {
        weight_type: weight.ggml_type,
        weight_cols: weight.n_cols,
        expected_type: vec_dot_type(weight.ggml_type).unwrap_or(weight.ggml_type),
        found_type: activations.ggml_type(),
        found_cols: activations.n_cols,
    }
}

fn check_output_length(
    weight: &WeightMatrix,
    n_batch: usize,
    out: &[f32],
) -> Result<(), QuantError> {
    let expected = n_batch.saturating_mul(weight.n_rows);
    if out.len() != expected {
        return Err(QuantError::OutputLength { expected, found: out.len() });
    }
    Ok(())
}

/// A pointer to the output that tiles write through; see the safety note in [`matmul_typed`].
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);

// SAFETY: tiles write disjoint elements (see `matmul_typed`), so sharing the pointer across
// threads cannot produce a data race.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Stores `value` at `index`.
    ///
    /// # Safety
    ///
    /// `index` is in bounds of the output and no other thread accesses that element.
    #[inline]
    pub(crate) unsafe fn write(&self, index: usize, value: f32) {
        *self.0.add(index) = value;
    }
}

/// Returns weight rows `rows` as blocks, copying them into `copied` when the bytes are not
/// aligned for `W` (an mmap at an unusual offset).
pub(crate) fn tile_blocks<'a, W: Pod>(
    weight: &'a WeightMatrix,
    rows: &std::ops::Range<usize>,
    copied: &'a mut Vec<W>,
) -> &'a [W] {
    let tile_bytes = &weight.data[rows.start * weight.row_size..rows.end * weight.row_size];
    if (tile_bytes.as_ptr() as usize) % align_of::<W>() == 0 {
        return bytemuck::cast_slice(tile_bytes);
    }

    copied.clear();
    copied.resize(tile_bytes.len() / size_of::<W>(), W::zeroed());
    bytemuck::cast_slice_mut::<W, u8>(copied).copy_from_slice(tile_bytes);
    copied
}

/// Computes every tile of the product for weight blocks of type `W`.
pub(crate) fn matmul_typed<W: VecDot>(
    isa: Isa,
    weight: &WeightMatrix,
    activations: &QuantizedActivations,
    out: &mut [f32],
) -> Result<(), QuantError> {
    let Some(acts) = activations.blocks::<W::VecDotType>() else {
        return Err(mismatch(weight, activations));
    };

    let n_rows = weight.n_rows;
    let n_batch = activations.n_batch;
    let act_row_len = acts.len() / n_batch.max(1);
    let row_tiles = n_rows.div_ceil(ROW_TILE);
    let batch_tiles = n_batch.div_ceil(BATCH_TILE);
    let out_ptr = OutPtr(out.as_mut_ptr());

    (0..row_tiles * batch_tiles).into_par_iter().for_each(|tile| {
        let rows = (tile / batch_tiles) * ROW_TILE..((tile / batch_tiles + 1) * ROW_TILE).min(n_rows);
        let batch = (tile % batch_tiles) * BATCH_TILE
            ..((tile % batch_tiles + 1) * BATCH_TILE).min(n_batch);

        let mut copied: Vec<W> = Vec::new();
        let tile_weights = tile_blocks(weight, &rows, &mut copied);
        let blocks_per_row = tile_weights.len() / rows.len();
        let act_row = |b: usize| &acts[b * act_row_len..(b + 1) * act_row_len];

        // SAFETY: this tile writes exactly the elements `b * n_rows + r` for `b` in `batch`
        // and `r` in `rows`. Tiles partition the (row, batch) grid, so no two tiles write the
        // same element, and `out.len() == n_batch * n_rows` was checked, so every index is in
        // bounds. `out` is borrowed mutably for the whole parallel loop.
        let write = |b: usize, r: usize, value: f32| unsafe { out_ptr.write(b * n_rows + r, value) };

        let mut b = batch.start;
        while b + X4 <= batch.end {
            let group = [act_row(b), act_row(b + 1), act_row(b + 2), act_row(b + 3)];
            for (i, r) in rows.clone().enumerate() {
                let w_row = &tile_weights[i * blocks_per_row..(i + 1) * blocks_per_row];
                let sums = W::vec_dot_x4(isa, w_row, group);
                for (k, sum) in sums.into_iter().enumerate() {
                    write(b + k, r, sum);
                }
            }
            b += X4;
        }
        for b in b..batch.end {
            for (i, r) in rows.clone().enumerate() {
                let w_row = &tile_weights[i * blocks_per_row..(i + 1) * blocks_per_row];
                write(b, r, W::vec_dot(isa, w_row, act_row(b)));
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_matrix_rejects_wrong_size() {
        let data = vec![0u8; 34 * 3];

        let err = WeightMatrix::new(GgmlType::Q8_0, &data, 32, 2).unwrap_err();

        assert!(matches!(err, QuantError::MatrixData { expected: 68, found: 102, .. }), "{err}");
    }

    #[test]
    fn weight_matrix_rejects_partial_block() {
        let data = vec![0u8; 34];

        let err = WeightMatrix::new(GgmlType::Q8_0, &data, 33, 1).unwrap_err();

        assert!(matches!(err, QuantError::RowLength { n_per_row: 33, .. }), "{err}");
    }

    #[test]
    fn activations_reject_nan() {
        let mut x = vec![1.0f32; 64];
        x[40] = f32::NAN;

        let err = quantize_activations(GgmlType::Q8_0, &x, 2, 32).unwrap_err();

        assert!(matches!(err, QuantError::NonFinite { row: 1, column: 8, .. }), "{err}");
    }

    #[test]
    fn matmul_rejects_wrong_activation_type() {
        let data = vec![0u8; 144];
        let weight = WeightMatrix::new(GgmlType::Q4_K, &data, 256, 1).unwrap();
        let acts = quantize_activations(GgmlType::Q8_0, &[0.0; 256], 1, 256).unwrap();
        let mut out = [0.0f32; 1];

        let err = matmul_quantized(&weight, &acts, &mut out).unwrap_err();

        assert!(matches!(err, QuantError::ActivationMismatch { .. }), "{err}");
    }

    #[test]
    fn matmul_rejects_wrong_output_length() {
        let data = vec![0u8; 34];
        let weight = WeightMatrix::new(GgmlType::Q8_0, &data, 32, 1).unwrap();
        let mut out = [0.0f32; 3];

        let err = matmul(&weight, &[0.0; 64], 2, &mut out).unwrap_err();

        assert!(matches!(err, QuantError::OutputLength { expected: 2, found: 3 }), "{err}");
    }
}
