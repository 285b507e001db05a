//! The unquantized formats F32, F16 and BF16, as blocks of one element.
//!
//! F16 and BF16 round to nearest, ties to even (ggml's `ggml_fp32_to_fp16_row` and
//! `ggml_fp32_to_bf16_row_ref`); widening back to f32 is exact.

use gguf_format::GgmlType;
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::traits::QuantBlock;

impl QuantBlock for f32 {
    const TYPE: GgmlType = GgmlType::F32;
    const BLOCK_SIZE: usize = 1;

    /// Copies the row; the imatrix is ignored.
    fn quantize_row(row: &[f32], _imatrix: Option<&[f32]>, out: &mut [Self]) {
        out.copy_from_slice(row);
    }

    fn dequantize_row(blocks: &[Self], out: &mut [f32]) {
        out.copy_from_slice(blocks);
    }
}

impl QuantBlock for f16 {
    const TYPE: GgmlType = GgmlType::F16;
    const BLOCK_SIZE: usize = 1;

    /// Rounds each value to f16; the imatrix is ignored. Magnitudes from 65520 up round to
    /// infinity, which `quantize` reports as an overflow.
    fn quantize_row(row: &[f32], _imatrix: Option<&[f32]>, out: &mut [Self]) {
        // The slice conversion uses the F16C instructions when the CPU has them (same rounding).
        out.convert_from_f32_slice(row);
    }

    fn dequantize_row(blocks: &[Self], out: &mut [f32]) {
        blocks.convert_to_f32_slice(out);
    }
}

impl QuantBlock for bf16 {
    const TYPE: GgmlType = GgmlType::BF16;
    const BLOCK_SIZE: usize = 1;

    /// Rounds each value to bf16; the imatrix is ignored.
    fn quantize_row(row: &[f32], _imatrix: Option<&[f32]>, out: &mut [Self]) {
        out.convert_from_f32_slice(row);
    }

    fn dequantize_row(blocks: &[Self], out: &mut [f32]) {
        blocks.convert_to_f32_slice(out);
    }
}
