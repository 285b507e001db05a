//! Tensor sources: the inputs the pipeline reads tensors from.

use std::borrow::Cow;

use gguf_format::{GgufFile, Metadata};

use crate::plan::TensorSpec;

/// Boxed error of a [`TensorSource`], kept opaque so sources from other crates
/// (a safetensors checkpoint, a network store) can report their own failures.
pub type SourceError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A model to quantize: metadata plus named tensors in ggml types.
///
/// [`GgufFile`] implements it; other crates implement it for other containers (the
/// `gemma2-model` crate does for Hugging Face safetensors checkpoints), so that one pipeline
/// serves every input.
pub trait TensorSource: Sync {
    /// Returns the GGUF metadata the output starts from.
    fn metadata(&self) -> &Metadata;

    /// Lists every tensor: name, GGUF-order dims and ggml type.
    fn tensor_specs(&self) -> Vec<TensorSpec>;

    /// Returns the bytes of the named tensor in the type its spec gives, row-major, without
    /// padding: exactly `type.row_size(dims[0]) * (number of rows)` bytes.
    ///
    /// # Errors
    /// Whatever the source fails with; the pipeline reports it with the tensor name.
    fn tensor_data(&self, name: &str) -> Result<Cow<'_, [u8]>, SourceError>;
}

impl TensorSource for GgufFile {
    fn metadata(&self) -> &Metadata {
        GgufFile::metadata(self)
    }

    fn tensor_specs(&self) -> Vec<TensorSpec> {
        self.tensors()
            .iter()
            .map(|info| TensorSpec::new(info.name.clone(), &info.dims, info.ggml_type))
            .collect()
    }

    fn tensor_data(&self, name: &str) -> Result<Cow<'_, [u8]>, SourceError> {
        let info = self.tensor(name).ok_or_else(|| format!("tensor {name} is not in the file"))?;
        Ok(Cow::Borrowed(GgufFile::tensor_data(self, info)))
    }
}
