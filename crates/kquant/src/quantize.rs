//! Quantization of f32 matrices to any supported ggml type, rows in parallel.

use gguf_format::GgmlType;
use rayon::prelude::*;

use crate::dispatch::dispatch_weight_type;
use crate::error::QuantError;
use crate::traits::QuantBlock;
use crate::validate::first_non_finite;

/// Minimum number of elements that one rayon task quantizes, so that short rows are batched instead
/// of paying the task overhead per row. Rows never split, so the output does not depend on it.
const MIN_ELEMENTS_PER_TASK: usize = 1 << 14;

/// Returns true when this crate can quantize to and dequantize from `ggml_type`.
///
/// ```
/// use kquant::{is_supported, GgmlType};
///
/// assert!(is_supported(GgmlType::Q4_0));
/// assert!(!is_supported(GgmlType::IQ2_XXS));
/// ```
pub fn is_supported(ggml_type: GgmlType) -> bool {
    fn block_type<B: QuantBlock>() -> GgmlType {
        B::TYPE
    }

    // Comparing with the block's own TYPE also proves that the dispatch table row is right.
    dispatch_weight_type!(ggml_type, block_type()) == Some(ggml_type)
}

/// Returns true when ggml refuses to quantize to `ggml_type` without an importance matrix
/// (ggml's `ggml_quantize_requires_imatrix`: IQ2_XXS, IQ2_XS and IQ1_S).
///
/// None of these types is supported by this crate; the function exists so that tools can
/// report the requirement before they look for a quantizer.
pub fn requires_imatrix(ggml_type: GgmlType) -> bool {
    matches!(
        ggml_type,
        GgmlType::IQ2_XXS | GgmlType::IQ2_XS | GgmlType::IQ1_S
    )
}

/// Quantizes `src` (rows of `n_per_row` f32 values, row-major) to `ggml_type` and returns
/// the bytes ggml's `ggml_quantize_chunk` writes for the same input.
///
/// Rows are quantized in parallel on the current rayon thread pool. Each row is
/// independent, so the output is identical for any number of threads.
///
/// `imatrix`, when given, contains one importance value per column (`n_per_row` values,
/// the same vector for every row). The k-quants, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL and IQ4_XS
/// use it, while F32, F16, BF16 and Q8_0 ignore it, as in ggml.
///
/// # Errors
///
/// - [`QuantError::UnsupportedType`] when [`is_supported`] is false for `ggml_type`.
/// - [`QuantError::EmptyRow`], [`QuantError::RowLength`], [`QuantError::RowTooLong`] or
///   [`QuantError::SourceLength`] when `n_per_row` is 0, not a multiple of the block size,
///   too large to address, or does not divide `src.len()`.
/// - [`QuantError::ImatrixLength`], [`QuantError::ImatrixNonFinite`] or
///   [`QuantError::ImatrixNegative`] for an importance vector of the wrong length or with
///   a NaN, infinite or negative value.
/// - [`QuantError::NonFinite`] naming the first NaN or infinite source value.
/// - [`QuantError::ScaleOverflow`] when a block's magnitude is too large for the f16
///   scale (or, for F16 and BF16, the value itself) to hold; for example Q4_0 overflows
///   once a block's largest magnitude exceeds 8 × 65504.
///
/// # Examples
///
/// ```
/// use kquant::{quantize, GgmlType};
///
/// let row: Vec<f32> = (0..32).map(|i| i as f32 / 8.0 - 2.0).collect();
/// let bytes = quantize(GgmlType::Q8_0, &row, 32, None)?;
/// assert_eq!(bytes.len(), 34); // one block: f16 scale + 32 signed codes
/// # Ok::<(), kquant::QuantError>(())
/// ```
pub fn quantize(
    ggml_type: GgmlType,
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
) -> Result<Vec<u8>, QuantError> {
    let row_bytes = check_inputs(ggml_type, src, n_per_row, imatrix)?;

    let mut dst = vec![0u8; src.len() / n_per_row * row_bytes];
    quantize_checked(ggml_type, src, n_per_row, imatrix, &mut dst)?;
    Ok(dst)
}

/// Quantizes like [`quantize`] into `dst`, which must be exactly `rows * row_size` bytes
/// (see `GgmlType::row_size`) and may have any alignment.
///
/// # Errors
///
/// The errors of [`quantize`], and [`QuantError::OutputLength`] when `dst` has the wrong
/// length. After a [`QuantError::ScaleOverflow`] `dst` is zeroed; after any other error
/// it is untouched.
pub fn quantize_into(
    ggml_type: GgmlType,
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
    dst: &mut [u8],
) -> Result<(), QuantError> {
    let row_bytes = check_inputs(ggml_type, src, n_per_row, imatrix)?;

    let expected = src.len() / n_per_row * row_bytes;
    if dst.len() != expected {
        return Err(QuantError::OutputLength {
            expected,
            found: dst.len(),
        });
    }

    quantize_checked(ggml_type, src, n_per_row, imatrix, dst)
}

/// Checks every input of a quantization and returns the size of one quantized row in bytes.
fn check_inputs(
    ggml_type: GgmlType,
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
) -> Result<usize, QuantError> {
    if !is_supported(ggml_type) {
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
    if src.len() % n_per_row != 0 {
        return Err(QuantError::SourceLength {
            len: src.len(),
            n_per_row,
        });
    }
    let row_bytes = (n_per_row / block_size)
        .checked_mul(ggml_type.type_size())
        .ok_or(QuantError::RowTooLong {
            n_per_row,
            ggml_type,
        })?;

    if let Some(importance) = imatrix {
        check_imatrix(importance, n_per_row)?;
    }

    if let Some(index) = src.iter().position(|v| !v.is_finite()) {
        return Err(QuantError::NonFinite {
            row: index / n_per_row,
            column: index % n_per_row,
            value: src[index],
        });
    }

    Ok(row_bytes)
}

/// Checks that an importance vector has one finite, non-negative value per column.
fn check_imatrix(importance: &[f32], n_per_row: usize) -> Result<(), QuantError> {
    if importance.len() != n_per_row {
        return Err(QuantError::ImatrixLength {
            expected: n_per_row,
            found: importance.len(),
        });
    }

    for (column, &value) in importance.iter().enumerate() {
        if !value.is_finite() {
            return Err(QuantError::ImatrixNonFinite { column, value });
        }
        if value < 0.0 {
            return Err(QuantError::ImatrixNegative { column, value });
        }
    }
    Ok(())
}

/// Quantizes inputs that [`check_inputs`] accepted, then rejects the result if a scale overflowed.
fn quantize_checked(
    ggml_type: GgmlType,
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
    dst: &mut [u8],
) -> Result<(), QuantError> {
    dispatch_weight_type!(ggml_type, quantize_rows(src, n_per_row, imatrix, &mut *dst))
        .ok_or(QuantError::UnsupportedType(ggml_type))?;

    // Finite input can still overflow an f16 scale; find the first block where it did.
    let Some((block_index, _)) = first_non_finite(ggml_type, dst) else {
        return Ok(());
    };
    dst.fill(0);

    let block_size = ggml_type.block_size();
    let blocks_per_row = n_per_row / block_size;
    let block_src = &src[block_index * block_size..(block_index + 1) * block_size];
    let amax = block_src.iter().fold(0.0f32, |amax, v| amax.max(v.abs()));
    Err(QuantError::ScaleOverflow {
        ggml_type,
        row: block_index / blocks_per_row,
        block: block_index % blocks_per_row,
        amax,
    })
}

/// Quantizes every row of `src` into the matching row of `dst` with block type `B`.
fn quantize_rows<B: QuantBlock>(
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
    dst: &mut [u8],
) {
    let blocks_per_row = n_per_row / B::BLOCK_SIZE;
    let row_bytes = blocks_per_row * std::mem::size_of::<B>();
    let min_rows_per_task = (MIN_ELEMENTS_PER_TASK / n_per_row).max(1);

    dst.par_chunks_mut(row_bytes)
        .zip(src.par_chunks(n_per_row))
        .with_min_len(min_rows_per_task)
        .for_each(
            |(out, row)| match bytemuck::try_cast_slice_mut::<u8, B>(out) {
                Ok(blocks) => B::quantize_row(row, imatrix, blocks),
                Err(_) => {
                    // `dst` is not aligned for `B`: quantize into an aligned buffer and copy.
                    let mut blocks = vec![B::zeroed(); blocks_per_row];
                    B::quantize_row(row, imatrix, &mut blocks);
                    out.copy_from_slice(bytemuck::cast_slice(&blocks));
                }
            },
        );
}
