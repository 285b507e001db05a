//! Quantize a whole model: llama-quantize's job as a library call.
//!
//! [`quantize_model`] reads every tensor from a [`TensorSource`] (a GGUF file, or a
//! checkpoint another crate adapts) and plans each tensor's type with
//! [`plan_quantization`](crate::plan::plan_quantization). It converts the tensors one at a
//! time, so peak memory stays near one tensor in f32 plus its output, and streams them into a
//! new GGUF file. The output is written to a temporary file beside the target and renamed at
//! the end, so a failure never leaves a partial file at the output path.
//! [`quantize_model_to_writer`] streams the same bytes into any writer instead, such as a
//! `Vec<u8>` for a model that stays in memory.
//!
//! The output matches llama-quantize's: tensors in its order, the same metadata changes
//! (`general.quantization_version`, `general.file_type`, `quantize.imatrix.*`) and, for
//! every tensor, the bytes ggml writes.

mod importance;
mod source;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use gguf_format::{GgmlType, GgufError, GgufWriter, Metadata, TensorInfo, Value};

use crate::plan::{plan_quantization, FileType, ModelInfo, PlanError, PlanOptions, QuantPlan, TensorPlan};
use crate::QuantError;

pub use importance::ImportanceMatrix;
pub use source::{SourceError, TensorSource};

/// `GGML_QNT_VERSION`, written to `general.quantization_version`.
pub const QUANTIZATION_VERSION: u32 = 2;

/// llama-quantize keeps at most this many bytes of the imatrix path in `quantize.imatrix.file`
/// and of the dataset name in `quantize.imatrix.dataset` (a 128-byte C buffer).
const MAX_RECORDED_NAME_BYTES: usize = 127;

/// Split keys that describe the input's shards and are dropped from a single-file output.
const SPLIT_KEYS: [&str; 3] = ["split.no", "split.count", "split.tensors.count"];

/// Settings of a quantization run.
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    pub file_type: FileType,
    /// The type options; `has_imatrix` is set from [`QuantizeOptions::imatrix`].
    pub plan: PlanOptions,
    /// Allow already-quantized input tensors, which are dequantized to F32 first.
    pub allow_requantize: bool,
    pub imatrix: Option<ImportanceMatrix>,
    /// Checked before each tensor: once set (by a Ctrl-C handler, say) the run stops with
    /// [`PipelineError::Cancelled`] and removes its temporary file.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl QuantizeOptions {
    /// Creates options for `file_type` with llama-quantize's defaults.
    pub fn new(file_type: FileType) -> QuantizeOptions {
        QuantizeOptions { file_type, plan: PlanOptions::default(), allow_requantize: false, imatrix: None, cancel: None }
    }
}

/// Progress of [`quantize_model`], for a progress bar or a log.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// The plan is made; `total_bytes` is the input size of all tensors.
    Planned { plan: &'a QuantPlan, total_bytes: u64 },
    /// One tensor is written.
    TensorDone { index: usize, tensor: &'a TensorPlan, input_bytes: u64, output_bytes: u64, used_imatrix: bool },
}

/// Summary of a finished [`quantize_model`] run.
#[derive(Debug, Clone)]
pub struct QuantizeReport {
    pub plan: QuantPlan,
    pub input_bytes: u64,
    pub output_bytes: u64,
    /// Quantized tensors that had no imatrix entry although an imatrix was given.
    pub missing_imatrix: Vec<String>,
}

/// Errors of [`quantize_model`].
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A metadata key the plan needs is missing or mistyped.
    #[error("input metadata: {0}")]
    Metadata(#[from] gguf_format::MetadataError),
    /// A quantized input tensor without `allow_requantize`.
    #[error("tensor {tensor} is already quantized ({ggml_type}); pass --allow-requantize to dequantize it to F32 and quantize it again")]
    Requantize { tensor: String, ggml_type: GgmlType },
    /// The planned type has no quantizer or the input type no dequantizer in this crate.
    #[error("tensor {tensor}: conversion from {from} to {to} is not supported; choose another type with --tensor-type or --pure")]
    Unsupported { tensor: String, from: GgmlType, to: GgmlType },
    /// An imatrix entry of the wrong length.
    #[error("tensor {tensor}: imatrix has {found} values, expected {expected}; was it collected on another model?")]
    ImatrixLength { tensor: String, expected: usize, found: usize },
    /// An imatrix entry with NaN or infinity.
    #[error("tensor {tensor}: imatrix value {value} at column {column} is not finite; recollect the imatrix")]
    ImatrixNonFinite { tensor: String, column: usize, value: f32 },
    /// The source could not deliver a tensor.
    #[error("reading tensor {tensor} failed: {source}")]
    Source { tensor: String, source: SourceError },
    /// The source delivered a tensor of the wrong size.
    #[error("tensor {tensor}: source delivered {found} bytes, expected {expected}")]
    SourceSize { tensor: String, expected: usize, found: usize },
    /// Quantizing, dequantizing or validating a tensor failed.
    #[error("tensor {tensor}: {source}")]
    Quant { tensor: String, source: QuantError },
    /// Writing the output failed; no file is left at the output path.
    #[error(transparent)]
    Write(#[from] GgufError),
    /// Input and output are the same file.
    #[error("output {0} is the input file; choose another output path")]
    SameFile(String),
    /// [`QuantizeOptions::cancel`] was set; nothing was left at the output path.
    #[error("quantization cancelled; no output was written")]
    Cancelled,
}

/// Returns an error when `input` and `output` name the same file (also through links), since
/// writing would destroy the input while it is being read.
///
/// # Errors
/// [`PipelineError::SameFile`].
pub fn check_distinct_paths(input: &Path, output: &Path) -> Result<(), PipelineError> {
    let same = match (std::fs::canonicalize(input), std::fs::canonicalize(output)) {
        (Ok(a), Ok(b)) => a == b || same_inode(&a, &b),
        _ => false,
    };
    if same {
        return Err(PipelineError::SameFile(output.display().to_string()));
    }
    Ok(())
}

#[cfg(unix)]
fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_inode(_: &Path, _: &Path) -> bool {
    false
}

/// Reads the model facts the mixes need from GGUF metadata (`general.architecture` and the
/// `{arch}.block_count`, `{arch}.attention.head_count[_kv]` and `{arch}.expert_count` keys).
///
/// # Errors
/// [`PipelineError::Metadata`] when the architecture, block count or head count is missing.
pub fn model_info(metadata: &Metadata) -> Result<ModelInfo, PipelineError> {
    let arch = metadata.get_str("general.architecture")?.to_string();
    let n_layer = metadata.get_uint(&format!("{arch}.block_count"))? as usize;
    let n_head = metadata.get_uint(&format!("{arch}.attention.head_count"))? as usize;
    let key_kv = format!("{arch}.attention.head_count_kv");
    let n_head_kv = if metadata.contains_key(&key_kv) { metadata.get_uint(&key_kv)? as usize } else { n_head };
    let key_expert = format!("{arch}.expert_count");
    let n_expert = if metadata.contains_key(&key_expert) { metadata.get_uint(&key_expert)? as usize } else { 0 };
    Ok(ModelInfo { arch, n_layer, n_head, n_head_kv, n_expert })
}

/// Builds the output metadata as llama-quantize does: the input's pairs, then
/// `general.quantization_version` and `general.file_type` (moved to the end, as ggml's
/// setters do), without split keys, then the `quantize.imatrix.*` record.
pub fn output_metadata(input: &Metadata, file_type: FileType, imatrix: Option<&ImportanceMatrix>) -> Metadata {
    let mut metadata = input.clone();
    set_last(&mut metadata, "general.quantization_version", Value::U32(QUANTIZATION_VERSION));
    set_last(&mut metadata, "general.file_type", Value::U32(file_type.id()));
    for key in SPLIT_KEYS {
        metadata.remove(key);
    }

    if let Some(imatrix) = imatrix.filter(|m| !m.entries.is_empty()) {
        set_last(&mut metadata, "quantize.imatrix.file", Value::String(truncate_name(&imatrix.file)));
        if let Some(dataset) = imatrix.datasets.first() {
            set_last(&mut metadata, "quantize.imatrix.dataset", Value::String(truncate_name(dataset)));
        }
        set_last(&mut metadata, "quantize.imatrix.entries_count", Value::U32(imatrix.entries.len() as u32));
        if imatrix.chunk_count > 0 {
            set_last(&mut metadata, "quantize.imatrix.chunks_count", Value::U32(imatrix.chunk_count));
        }
    }
    metadata
}

fn set_last(metadata: &mut Metadata, key: &str, value: Value) {
    metadata.remove(key);
    metadata.set(key, value);
}

fn truncate_name(name: &str) -> String {
    let mut end = name.len().min(MAX_RECORDED_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// Quantizes `source` into a new GGUF file at `output`, as `llama-quantize` does.
///
/// Threads: the conversion runs on the current rayon pool (wrap the call in
/// `rayon::ThreadPool::install` to choose the count); the bytes do not depend on it.
///
/// # Errors
/// Every check that can fail before writing (plan, requantization, supported types, imatrix
/// lengths and values) runs first, so those errors leave nothing behind. A failure while
/// writing removes the temporary file; the output path is only ever the complete file.
pub fn quantize_model(
    source: &dyn TensorSource,
    output: &Path,
    options: &QuantizeOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<QuantizeReport, PipelineError> {
    quantize_with(source, options, progress, |writer, data| writer.write_to_path(output, data))
}

/// Quantizes `source` as [`quantize_model`] does, streaming the GGUF bytes into `out`: a
/// `Vec<u8>` for a model that never touches the disk (open it with
/// [`GgufFile::from_bytes`](gguf_format::GgufFile::from_bytes)), a socket, a pipe.
///
/// # Errors
/// As [`quantize_model`]. The checks that run before writing leave `out` untouched; a failure
/// while writing leaves the bytes written so far in `out`.
///
/// # Example
/// ```
/// use gguf_format::{GgmlType, GgufFile, GgufWriter, Metadata, Value};
/// use kquant::pipeline::{quantize_model_to_writer, QuantizeOptions};
/// use kquant::plan::FileType;
///
/// // A one-tensor F32 model, built in memory.
/// let mut metadata = Metadata::new();
/// metadata.insert("general.architecture", Value::String("gemma2".into()))?;
/// metadata.insert("gemma2.block_count", Value::U32(1))?;
/// metadata.insert("gemma2.attention.head_count", Value::U32(1))?;
/// let mut writer = GgufWriter::new(metadata);
/// writer.add_tensor("blk.0.ffn_up.weight", &[256, 4], GgmlType::F32)?;
/// let mut f32_bytes = Vec::new();
/// writer.write_to(&mut f32_bytes, |_, _, out| {
///     let values: Vec<f32> = (0..1024).map(|i| (i as f32 * 0.01).sin()).collect();
///     out.write_all(bytemuck::cast_slice(&values))?;
///     Ok(())
/// })?;
/// let source = GgufFile::from_bytes(f32_bytes)?;
///
/// let mut q8_bytes = Vec::new();
/// let options = QuantizeOptions::new(FileType::Q8_0);
/// let report = quantize_model_to_writer(&source, &mut q8_bytes, &options, &mut |_| {})?;
/// let quantized = GgufFile::from_bytes(q8_bytes)?;
/// assert_eq!(quantized.tensors()[0].ggml_type, GgmlType::Q8_0);
/// assert_eq!(report.output_bytes, 4 * 34 * 8);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn quantize_model_to_writer(
    source: &dyn TensorSource,
    out: &mut dyn Write,
    options: &QuantizeOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<QuantizeReport, PipelineError> {
    quantize_with(source, options, progress, |writer, data| writer.write_to(out, data).map(|_| ()))
}

/// The callback that [`GgufWriter`] calls for each tensor's data.
type TensorData<'c> = dyn FnMut(usize, &TensorInfo, &mut dyn Write) -> Result<(), GgufError> + 'c;

/// Plans, checks and converts every tensor, handing the writer and the data callback to
/// `emit`, which writes them to a path or a stream.
fn quantize_with(
    source: &dyn TensorSource,
    options: &QuantizeOptions,
    progress: &mut dyn FnMut(Progress<'_>),
    emit: impl FnOnce(GgufWriter, &mut TensorData<'_>) -> Result<(), GgufError>,
) -> Result<QuantizeReport, PipelineError> {
    let metadata = source.metadata();
    let specs = source.tensor_specs();
    let model = model_info(metadata)?;

    let imatrix = options.imatrix.as_ref().filter(|m| !m.entries.is_empty());
    let mut plan_options = options.plan.clone();
    plan_options.has_imatrix = imatrix.is_some();
    let plan = plan_quantization(options.file_type, &model, &specs, &plan_options)?;

    let importances = check_conversions(&plan, options, imatrix)?;
    let missing_imatrix = match imatrix {
        Some(_) => plan
            .tensors
            .iter()
            .zip(&importances)
            .filter(|(t, importance)| t.converts() && t.target_type.is_quantized() && importance.is_none())
            .map(|(t, _)| t.name.clone())
            .collect(),
        None => Vec::new(),
    };

    let total_bytes: u64 = plan.tensors.iter().map(|t| tensor_bytes(t.source_type, &t.dims) as u64).sum();
    progress(Progress::Planned { plan: &plan, total_bytes });

    let mut writer = GgufWriter::new(output_metadata(metadata, options.file_type, imatrix));
    for t in &plan.tensors {
        writer.add_tensor(t.name.clone(), &t.dims, t.target_type)?;
    }

    // The writer's callback can only return a GgufError, so the real cause is kept here.
    let mut failure: Option<PipelineError> = None;
    let mut output_bytes = 0u64;
    let result = emit(writer, &mut |index, _info, sink| {
        let tensor = &plan.tensors[index];
        if options.cancel.as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            failure = Some(PipelineError::Cancelled);
            return Err(GgufError::Write(std::io::Error::other("cancelled")));
        }
        let written = write_tensor(source, tensor, importances[index].as_deref(), sink).map_err(|error| {
            let message = error.to_string();
            failure = Some(error);
            GgufError::Write(std::io::Error::other(message))
        })?;

        output_bytes += written;
        progress(Progress::TensorDone {
            index,
            tensor,
            input_bytes: tensor_bytes(tensor.source_type, &tensor.dims) as u64,
            output_bytes: written,
            used_imatrix: importances[index].is_some(),
        });
        Ok(())
    });
    if let Some(error) = failure {
        return Err(error);
    }
    result?;

    Ok(QuantizeReport { plan, input_bytes: total_bytes, output_bytes, missing_imatrix })
}

/// Checks every conversion the plan asks for and picks each tensor's importance vector.
fn check_conversions<'m>(
    plan: &QuantPlan,
    options: &QuantizeOptions,
    imatrix: Option<&'m ImportanceMatrix>,
) -> Result<Vec<Option<&'m [f32]>>, PipelineError> {
    let mut importances = Vec::with_capacity(plan.tensors.len());
    for t in &plan.tensors {
        if !t.converts() {
            importances.push(None);
            continue;
        }
        if t.source_type.is_quantized() && !options.allow_requantize {
            return Err(PipelineError::Requantize { tensor: t.name.clone(), ggml_type: t.source_type });
        }
        let readable = matches!(t.source_type, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) || crate::is_supported(t.source_type);
        if !readable || !crate::is_supported(t.target_type) {
            return Err(PipelineError::Unsupported { tensor: t.name.clone(), from: t.source_type, to: t.target_type });
        }

        let entry = imatrix.and_then(|m| m.entries.get(&t.name)).filter(|_| t.target_type.is_quantized());
        let importance = match entry {
            Some(values) => {
                let n_mat: u64 = t.dims.iter().skip(2).product();
                let expected = (t.dims[0] * n_mat) as usize;
                if values.len() != expected {
                    // llama.cpp skips a mismatched token_embd entry instead of failing.
                    if t.name == "token_embd.weight" {
                        importances.push(None);
                        continue;
                    }
                    return Err(PipelineError::ImatrixLength { tensor: t.name.clone(), expected, found: values.len() });
                }
                if let Some((column, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    return Err(PipelineError::ImatrixNonFinite { tensor: t.name.clone(), column, value });
                }
                Some(values.as_slice())
            }
            None => None,
        };
        importances.push(importance);
    }
    Ok(importances)
}

/// Returns the byte size of a tensor of `dims` in `ggml_type` (0 when it does not fit).
fn tensor_bytes(ggml_type: GgmlType, dims: &[u64]) -> usize {
    let rows: u64 = dims.iter().skip(1).product();
    ggml_type.row_size(dims[0]).unwrap_or(0) * rows as usize
}

/// Writes the output bytes of one tensor to `sink` and returns their count: a copy when the
/// type stays, else dequantize (or widen) to f32 and quantize, then validate as
/// llama-quantize does.
///
/// F32 input that is already aligned in memory (a memory-mapped GGUF) is read in place, so
/// the only large buffers are one f32 copy of a quantized or 16-bit input and the output.
fn write_tensor(
    source: &dyn TensorSource,
    tensor: &TensorPlan,
    importance: Option<&[f32]>,
    sink: &mut dyn std::io::Write,
) -> Result<u64, PipelineError> {
    let name = &tensor.name;
    let data = source.tensor_data(name).map_err(|source| PipelineError::Source { tensor: name.clone(), source })?;
    let expected = tensor_bytes(tensor.source_type, &tensor.dims);
    if data.len() != expected {
        return Err(PipelineError::SourceSize { tensor: name.clone(), expected, found: data.len() });
    }
    let write_error = |e: std::io::Error| PipelineError::Write(GgufError::Write(e));
    if !tensor.converts() {
        sink.write_all(&data).map_err(write_error)?;
        return Ok(data.len() as u64);
    }

    let quant_error = |source: QuantError| PipelineError::Quant { tensor: name.clone(), source };
    let ne0 = tensor.dims[0] as usize;
    let widened;
    let values: &[f32] = match bytemuck::try_cast_slice::<u8, f32>(&data) {
        Ok(in_place) if tensor.source_type == GgmlType::F32 => in_place,
        _ => {
            widened = crate::dequantize(tensor.source_type, &data, ne0).map_err(quant_error)?;
            &widened
        }
    };

    // Each 2-D slice of a 3-D (expert) tensor takes its own ne[0]-long importance slice.
    let n_mat = (tensor.dims.iter().skip(2).product::<u64>() as usize).max(1);
    let slice_len = values.len() / n_mat;
    let out_len = tensor_bytes(tensor.target_type, &tensor.dims);
    let slice_out_len = out_len / n_mat;
    let mut out = vec![0u8; out_len];
    for (i, (slice, out_slice)) in values.chunks(slice_len.max(1)).zip(out.chunks_mut(slice_out_len.max(1))).enumerate() {
        let weights = importance.map(|w| &w[i * ne0..(i + 1) * ne0]);
        crate::quantize_into(tensor.target_type, slice, ne0, weights, out_slice).map_err(quant_error)?;
        crate::validate_row_data(tensor.target_type, out_slice).map_err(quant_error)?;
    }
    sink.write_all(&out).map_err(write_error)?;
    Ok(out.len() as u64)
}
