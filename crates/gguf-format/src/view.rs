//! [`GgufView`]: a validated GGUF file borrowed from any byte slice.

use crate::error::GgufError;
use crate::header::Header;
use crate::metadata::Metadata;
use crate::tensor_info::TensorInfo;

/// A parsed and validated GGUF file over borrowed bytes; tensor data is not copied.
///
/// [`GgufFile`](crate::GgufFile) is the owning counterpart, for a memory-mapped path or an
/// owned buffer.
#[derive(Debug, Clone)]
pub struct GgufView<'a> {
    bytes: &'a [u8],
    header: Header,
}

impl<'a> GgufView<'a> {
    /// Parses and validates the whole header of `bytes`, a complete GGUF file.
    ///
    /// # Errors
    ///
    /// Any [`GgufError`] variant that describes a malformed file: a bad magic or version,
    /// truncation, over-large counts, an invalid key, value or tensor info, or a tensor whose
    /// data lies outside `bytes`, is misaligned or overlaps another. When `bytes` ends inside
    /// the header, the error names the field that was cut and comes from a structural walk
    /// ([`HeaderScanner`](crate::HeaderScanner)) over the records before the cut, with no
    /// UTF-8 checks or allocation.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, GgufError> {
        let header = Header::parse(bytes)?;
        Ok(GgufView { bytes, header })
    }

    pub(crate) fn from_parts(bytes: &'a [u8], header: &Header) -> Self {
        GgufView {
            bytes,
            header: header.clone(),
        }
    }

    /// Returns the GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// Returns the alignment of the data section and of every tensor, in bytes.
    pub fn alignment(&self) -> u64 {
        self.header.alignment
    }

    /// Returns the byte offset of the tensor data section from the start of the file.
    pub fn data_offset(&self) -> u64 {
        self.header.data_offset
    }

    /// Returns the byte length of the header, from the magic to the end of the last tensor
    /// info; the padding up to [`data_offset`](Self::data_offset) follows it.
    pub fn header_len(&self) -> u64 {
        self.header.header_len
    }

    /// Returns the metadata, in file order.
    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    /// Returns the tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    /// Looks a tensor info up by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.header.tensor(name)
    }

    /// Returns the tensor's data bytes, borrowed from the input.
    ///
    /// # Panics
    ///
    /// Panics if `info` does not come from this file and its range lies outside the input.
    pub fn tensor_data(&self, info: &TensorInfo) -> &'a [u8] {
        tensor_slice(self.bytes, self.header.data_offset, info)
    }

    /// Returns the data of the tensor named `name`, or `None` when there is no such tensor.
    pub fn tensor_bytes(&self, name: &str) -> Option<&'a [u8]> {
        self.tensor(name).map(|info| self.tensor_data(info))
    }

    /// Returns the whole input.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

pub(crate) fn tensor_slice<'b>(bytes: &'b [u8], data_offset: u64, info: &TensorInfo) -> &'b [u8] {
    let start = (data_offset + info.offset) as usize;
    &bytes[start..start + info.size_bytes]
}
