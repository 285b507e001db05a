//! Tensor infos: name, shape, ggml type and where the data lies.

use crate::GgmlType;

/// One tensor's entry in the GGUF header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name, such as `blk.0.attn_q.weight` (1 to 63 bytes).
    pub name: String,
    /// Dimensions in GGUF (ggml) order: `dims[0]` is `ne[0]`, the row length, the fastest-varying
    /// axis. Between 1 and 4 entries, each at least 1.
    pub dims: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Byte offset of the data from the start of the data section (a multiple of the alignment).
    pub offset: u64,
    /// Byte size of the data, without the padding that follows it.
    pub size_bytes: usize,
}

impl TensorInfo {
    /// Returns the number of elements, the product of the dims (validated not to overflow
    /// for tensors read from a file).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Returns the row length `ne[0]` (`dims[0]`), or 0 for a tensor without dims.
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(0)
    }

    /// Returns the number of rows, the product of `dims[1..]` (1 for a 1-D tensor).
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }

    /// Returns the byte size of one row (`ne[0]` elements), or `None` when `ne[0]` is not a
    /// multiple of the type's block size.
    pub fn row_size(&self) -> Option<usize> {
        self.ggml_type.row_size(self.row_len())
    }
}

/// Computes the byte size of a tensor, `row_size(ne[0]) * n_rows`, with every product
/// checked; `None` on overflow or when `ne[0]` is not a block multiple.
pub(crate) fn tensor_size(ggml_type: GgmlType, dims: &[u64]) -> Option<usize> {
    let row = ggml_type.row_size(*dims.first()?)?;
    dims[1..]
        .iter()
        .try_fold(row, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
}
