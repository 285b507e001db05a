//! The trait every ggml block format implements.

use bytemuck::Pod;
use gguf_format::GgmlType;

/// A ggml block format: a fixed number of weights stored in a fixed number of bytes.
///
/// Implementors are the `#[repr(C)]` structs of [`crate::blocks`]. The methods work on one
/// row at a time and trust their inputs: the crate's public functions check lengths,
/// finiteness and the importance vector before calling them.
pub trait QuantBlock: Pod + Send + Sync {
    /// The ggml type this block encodes.
    const TYPE: GgmlType;

    /// Weights per block.
    const BLOCK_SIZE: usize;

    /// Quantizes one row into `out` exactly as ggml's `ggml_quantize_chunk` does for this type.
    ///
    /// `row.len()` is `out.len() * BLOCK_SIZE`. `imatrix`, when given, has one importance
    /// value per element of `row` (the same vector for every row of a matrix); types that
    /// ignore it (Q8_0, F16, ...) document so.
    fn quantize_row(row: &[f32], imatrix: Option<&[f32]>, out: &mut [Self]);

    /// Dequantizes blocks into `out` (`out.len()` is `blocks.len() * BLOCK_SIZE`), bit for
    /// bit as ggml's `to_float` does.
    fn dequantize_row(blocks: &[Self], out: &mut [f32]);
}
