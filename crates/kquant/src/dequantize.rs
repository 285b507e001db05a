//! Dequantization of ggml rows back to f32, rows in parallel.

use bytemuck::Pod;
use gguf_format::GgmlType;
use rayon::prelude::*;

use crate::blocks::{BlockQ8K, BlockQ8_1, QK};
use crate::dispatch::dispatch_weight_type;
use crate::error::QuantError;
use crate::q8_1::dequantize_row_q8_1;
use crate::traits::QuantBlock;
use crate::validate::validate_row_data;

/// Minimum number of elements that one rayon task dequantizes. Rows never split, so the output does not depend on it.
const MIN_ELEMENTS_PER_TASK: usize = 1 << 14;

/// Dequantizes `data` (whole rows of `n_per_row` elements of `ggml_type`) to f32, bit for
/// bit as ggml's `to_float` does.
///
/// `data` may have any alignment, for example a slice of a memory-mapped GGUF file.
/// Besides the types of [`crate::is_supported`], the activation formats Q8_1 and Q8_K can
/// be dequantized.
///
/// # Errors
///
/// - [`QuantError::UnsupportedType`] for a type without a dequantizer here.
/// - [`QuantError::EmptyRow`], [`QuantError::RowLength`] or [`QuantError::RowTooLong`]
///   when `n_per_row` is 0, not a multiple of the block size, or too large to address.
/// - [`QuantError::DataLength`] when `data` is not a whole number of rows.
/// - [`QuantError::NonFiniteData`] naming the first block whose scale (or, for F32, F16
///   and BF16, whose value) is NaN or infinite; nothing is dequantized then.
///
/// # Examples
///
/// ```
/// use kquant::{dequantize, quantize, GgmlType};
///
/// let row = [0.5f32; 32];
/// let bytes = quantize(GgmlType::Q4_0, &row, 32, None)?;
/// assert_eq!(dequantize(GgmlType::Q4_0, &bytes, 32)?, row);
/// # Ok::<(), kquant::QuantError>(())
/// ```
pub fn dequantize(
    ggml_type: GgmlType,
    data: &[u8],
    n_per_row: usize,
) -> Result<Vec<f32>, QuantError> {
    let row_bytes = check_inputs(ggml_type, data, n_per_row)?;

    let mut dst = vec![0.0f32; data.len() / row_bytes * n_per_row];
    dequantize_checked(ggml_type, data, n_per_row, &mut dst)?;
    Ok(dst)
}

/// Dequantizes like [`dequantize`] into `dst`, which must have exactly `rows * n_per_row` values.
///
/// # Errors
///
/// The errors of [`dequantize`], and [`QuantError::OutputLength`] when `dst` has the
/// wrong length. `dst` is untouched after any error.
pub fn dequantize_into(
    ggml_type: GgmlType,
    data: &[u8],
    n_per_row: usize,
    dst: &mut [f32],
) -> Result<(), QuantError> {
    let row_bytes = check_inputs(ggml_type, data, n_per_row)?;

    let expected = data.len() / row_bytes * n_per_row;
    if dst.len() != expected {
        return Err(QuantError::OutputLength {
            expected,
            found: dst.len(),
        });
    }

    dequantize_checked(ggml_type, data, n_per_row, dst)
}

/// Checks the inputs of a dequantization and returns the size of one row in bytes.
fn check_inputs(ggml_type: GgmlType, data: &[u8], n_per_row: usize) -> Result<usize, QuantError> {
    if !is_dequantizable(ggml_type) {
        return Err(QuantError::UnsupportedType(ggml_type));
    }

    let block_size = ggml_type.block_size();
    if n_per_row == 0 {
        return Err(QuantError::EmptyRow);
    }
    if n_per_row % block_size != 0 {
        return Err(QuantError::RowLength {
            n_per_row,
            ggml_type,
            block_size,
        });
    }

    let row_bytes = (n_per_row / block_size)
        .checked_mul(ggml_type.type_size())
        .ok_or(QuantError::RowTooLong {
            n_per_row,
            ggml_type,
        })?;
    if data.len() % row_bytes != 0 {
        return Err(QuantError::DataLength {
            expected: row_bytes,
            found: data.len(),
        });
    }

    validate_row_data(ggml_type, data)?;
    Ok(row_bytes)
}

/// Returns true for the types [`dequantize_checked`] handles.
fn is_dequantizable(ggml_type: GgmlType) -> bool {
    matches!(ggml_type, GgmlType::Q8_1 | GgmlType::Q8_K) || crate::is_supported(ggml_type)
}

/// Dequantizes inputs that [`check_inputs`] accepted.
fn dequantize_checked(
    ggml_type: GgmlType,
    data: &[u8],
    n_per_row: usize,
    dst: &mut [f32],
) -> Result<(), QuantError> {
    match ggml_type {
        GgmlType::Q8_1 => {
            dequantize_rows_with::<BlockQ8_1>(data, n_per_row, QK, dst, dequantize_row_q8_1)
        }
        GgmlType::Q8_K => dequantize_rows::<BlockQ8K>(data, n_per_row, dst),
        _ => dispatch_weight_type!(ggml_type, dequantize_rows(data, n_per_row, dst))
            .ok_or(QuantError::UnsupportedType(ggml_type))?,
    }
    Ok(())
}

/// Dequantizes every row of `data` into the matching row of `dst` with block type `B`.
fn dequantize_rows<B: QuantBlock>(data: &[u8], n_per_row: usize, dst: &mut [f32]) {
    dequantize_rows_with::<B>(data, n_per_row, B::BLOCK_SIZE, dst, B::dequantize_row);
}

/// Dequantizes every row of `data` into the matching row of `dst` with `dequantize_row`,
/// a function over blocks of `B` that each encode `block_size` elements.
fn dequantize_rows_with<B: Pod + Send + Sync>(
    data: &[u8],
    n_per_row: usize,
    block_size: usize,
    dst: &mut [f32],
    dequantize_row: fn(&[B], &mut [f32]),
) {
    let row_bytes = n_per_row / block_size * std::mem::size_of::<B>();
    let min_rows_per_task = (MIN_ELEMENTS_PER_TASK / n_per_row).max(1);

    dst.par_chunks_mut(n_per_row)
        .zip(data.par_chunks(row_bytes))
        .with_min_len(min_rows_per_task)
        .for_each(|(out, row)| match bytemuck::try_cast_slice::<u8, B>(row) {
            Ok(blocks) => dequantize_row(blocks, out),
            Err(_) => {
                // `data` is not aligned for `B` (an mmap offset, say): copy into an aligned buffer.
                let mut blocks = vec![B::zeroed(); row.len() / std::mem::size_of::<B>()];
                bytemuck::cast_slice_mut::<B, u8>(&mut blocks).copy_from_slice(row);
                dequantize_row(&blocks, out);
            }
        });
}
