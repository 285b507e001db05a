//! Importance vectors as the quantizer consumes them.

use std::collections::BTreeMap;

/// Per-tensor importance vectors for quantization, as llama-quantize loads them from an
/// imatrix file: for each weight name, the mean squared activation of every input column
/// (`in_sum2 / count`), one `ne[0]`-long slice per expert matrix.
///
/// The `imatrix-collect` crate reads llama.cpp's GGUF and `.dat` imatrix files into this
/// shape; any other source of column importances works as well.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportanceMatrix {
    /// The file path recorded in the output's `quantize.imatrix.file`.
    pub file: String,
    /// Names of the calibration texts; the first is recorded in `quantize.imatrix.dataset`.
    pub datasets: Vec<String>,
    /// Chunks of calibration text behind the data (`quantize.imatrix.chunks_count`), 0 when unknown.
    pub chunk_count: u32,
    /// Weight name (`blk.3.ffn_down.weight`) to its importance values.
    pub entries: BTreeMap<String, Vec<f32>>,
}

impl ImportanceMatrix {
    /// Keeps only the entries whose name contains one of `include` (when it is not empty)
    /// and none of `exclude`, as llama-quantize's `--include-weights` / `--exclude-weights`.
    pub fn filter_entries(&mut self, include: &[String], exclude: &[String]) {
        self.entries.retain(|name, _| {
            let included = include.is_empty() || include.iter().any(|part| name.contains(part.as_str()));
            let excluded = exclude.iter().any(|part| name.contains(part.as_str()));
            included && !excluded
        });
    }
}
