//! ggml block quantization formats, bit-exact with ggml.
//!
//! `kquant` converts f32 weight matrices to the block formats that llama.cpp stores in
//! GGUF files and back, producing the same bytes as ggml's `ggml_quantize_chunk` and the
//! same floats as its `to_float` functions. Supported types: F32, F16, BF16, Q4_0, Q4_1,
//! Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL and IQ4_XS (see
//! [`is_supported`]); [`dequantize`] also reads the activation formats Q8_1 and Q8_K.
//! Each type is a `#[repr(C)]` block struct in [`blocks`] that implements [`QuantBlock`].
//!
//! A matrix is a row-major `&[f32]` of rows with `n_per_row` (ggml's `ne[0]`) elements.
//! Blocks run along a row, so `n_per_row` must be a multiple of the type's block size
//! (32, or 256 for the k-quants and IQ4_XS). An importance matrix (imatrix), when given,
//! is one non-negative weight per column, shared by all rows.
//!
//! # Example
//!
//! ```
//! use kquant::{dequantize, quantize, GgmlType};
//!
//! // Two rows of 64 weights.
//! let weights: Vec<f32> = (0..128).map(|i| ((i * 37 % 101) as f32 - 50.0) / 400.0).collect();
//! let importance = vec![1.0f32; 64];
//!
//! let bytes = quantize(GgmlType::Q4_0, &weights, 64, Some(&importance))?;
//! assert_eq!(bytes.len(), GgmlType::Q4_0.row_size(64).unwrap() * 2);
//!
//! let restored = dequantize(GgmlType::Q4_0, &bytes, 64)?;
//! let max_error = weights.iter().zip(&restored).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
//! assert!(max_error < 0.02);
//! # Ok::<(), kquant::QuantError>(())
//! ```
//!
//! # Errors
//!
//! Every public function checks its whole input before it computes anything and returns
//! a [`QuantError`] that names the offending row, column, block or value. No input makes
//! these functions panic, and none writes NaN or infinity: a NaN or infinite weight, a
//! bad importance vector or a block whose scale would overflow f16 is an error, never
//! replaced or clamped silently. Dequantization first validates the data as ggml's
//! `ggml_validate_row_data` does ([`validate_row_data`]).
//!
//! # Parallelism
//!
//! [`quantize`] and [`dequantize`] split the matrix into whole rows on the current rayon
//! thread pool. Rows are independent, so the result does not depend on the thread count.

pub mod activation;
pub mod blocks;
mod dequantize;
mod dispatch;
pub mod dot;
mod error;
mod float;
mod ggml_cpu;
mod imatrix_weights;
mod iq4_nl;
mod iq4_xs;
mod matmul;
mod packing;
mod q2_k;
mod q3_k;
mod q4_0;
mod q4_1;
mod q4_k;
mod q5_0;
mod q5_1;
mod q5_k;
mod q6_k;
mod q8_0;
mod q8_1;
mod q8_k;
mod quantize;
mod validate;
pub mod pipeline;
pub mod plan;
pub(crate) mod solvers;
mod traits;

pub use dequantize::{dequantize, dequantize_into};
pub use dot::{vec_dot_type, Isa, VecDot};
pub use error::QuantError;
pub use gguf_format::GgmlType;
pub use matmul::{
    matmul, matmul_quantized, matmul_quantized_with_isa, quantize_activations,
    QuantizedActivations, WeightMatrix,
};
pub use quantize::{is_supported, quantize, quantize_into, requires_imatrix};
pub use traits::QuantBlock;
pub use validate::validate_row_data;
