//! Weight tensors in the form the forward pass reads: a ggml type, a 2-D shape and bytes that are
//! either owned or borrowed from a memory-mapped GGUF file.

use std::sync::Arc;

use gguf_format::{GgmlType, GgufFile};

use crate::error::ModelError;

/// Bytes of one tensor.
#[derive(Clone)]
pub(crate) enum TensorData {
    /// Converted or copied bytes (Hugging Face import, tests).
    Owned(Arc<Vec<u8>>),
    /// Tensor `index` of a memory-mapped GGUF file, which stays open as long as the tensor.
    Gguf { file: Arc<GgufFile>, index: usize },
}

impl TensorData {
    /// Returns the tensor's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            TensorData::Owned(bytes) => bytes,
            TensorData::Gguf { file, index } => file.tensor_data(&file.tensors()[*index]),
        }
    }
}

impl std::fmt::Debug for TensorData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TensorData::Owned(bytes) => write!(f, "Owned({} bytes)", bytes.len()),
            TensorData::Gguf { index, .. } => write!(f, "Gguf(tensor {index})"),
        }
    }
}

/// A tensor as found in a file, before the model checks its role and shape.
#[derive(Debug, Clone)]
pub(crate) struct RawTensor {
    pub ggml_type: GgmlType,
    /// Dimensions, `ne[0]` (the contiguous one) first.
    pub dims: Vec<u64>,
    pub data: TensorData,
}

/// A weight matrix of `n_rows` rows of `n_cols` elements (`ne[0] = n_cols`).
#[derive(Debug, Clone)]
pub(crate) struct WeightTensor {
    /// GGUF name, such as `blk.3.ffn_down.weight`.
    pub name: String,
    pub ggml_type: GgmlType,
    pub n_cols: usize,
    pub n_rows: usize,
    pub data: TensorData,
    /// Whether llama.cpp's CPU backend loads this matrix into its `CPU_REPACK` buffer, which
    /// selects the repacked matmul kernels for the types that have them.
    pub repacked: bool,
}

impl WeightTensor {
    /// Returns the bytes of the whole matrix.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.data.bytes()
    }

    /// Returns the number of bytes of one row.
    pub(crate) fn row_bytes(&self) -> usize {
        self.n_cols / self.ggml_type.block_size() * self.ggml_type.type_size()
    }

    /// Dequantizes row `row` into `out` (`n_cols` values).
    pub(crate) fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<(), ModelError> {
        let row_bytes = self.row_bytes();
        let bytes = &self.bytes()[row * row_bytes..(row + 1) * row_bytes];
        decode_to_f32(&self.name, self.ggml_type, bytes, self.n_cols, out)
    }
}

/// Converts `bytes` of type `ggml_type` (rows of `n_per_row`) into f32 values in `out`.
pub(crate) fn decode_to_f32(
    name: &str,
    ggml_type: GgmlType,
    bytes: &[u8],
    n_per_row: usize,
    out: &mut [f32],
) -> Result<(), ModelError> {
    match ggml_type {
        GgmlType::F32 => {
            for (value, chunk) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *value = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            }
        }
        GgmlType::F16 => {
            for (value, chunk) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *value = half::f16::from_le_bytes([chunk[0], chunk[1]]).to_f32();
            }
        }
        GgmlType::BF16 => {
            for (value, chunk) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *value = half::bf16::from_le_bytes([chunk[0], chunk[1]]).to_f32();
            }
        }
        other => {
            kquant::dequantize_into(other, bytes, n_per_row, out).map_err(|e| ModelError::Kernel {
                name: name.to_owned(),
                message: e.to_string(),
            })?;
        }
    }
    Ok(())
}
