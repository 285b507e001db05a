//! [`GgufFile`]: a validated GGUF file that owns its bytes (memory map or buffer).

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::error::GgufError;
use crate::header::Header;
use crate::metadata::Metadata;
use crate::tensor_info::TensorInfo;
use crate::view::{tensor_slice, GgufView};

/// The bytes behind a [`GgufFile`].
enum Storage {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(map) => map,
            Storage::Owned(bytes) => bytes,
        }
    }
}

/// A parsed and validated GGUF file that owns its bytes: a read-only memory map of a path,
/// or a buffer. Tensor data is borrowed from those bytes without copying.
///
/// `GgufFile` is `Send + Sync`, so one file can serve many threads.
pub struct GgufFile {
    storage: Storage,
    header: Header,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("len", &self.storage.bytes().len())
            .field("header", &self.header)
            .finish()
    }
}

impl GgufFile {
    /// Memory-maps the file at `path` and validates its header and tensor layout.
    ///
    /// The map is read-only. As with every memory-mapped file, another process that truncates
    /// or rewrites the file while it is open makes reads fail or return the new bytes.
    ///
    /// # Errors
    ///
    /// [`GgufError::Io`] (naming the path) when the file cannot be opened or mapped; any
    /// validation error of [`GgufView::parse`].
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let io_error = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };

        let file = File::open(path).map_err(io_error)?;
        // SAFETY: the map is read-only and lives as long as `GgufFile`. A memory map is sound
        // only while no other process modifies the file, which is the contract documented above.
        let map = unsafe { Mmap::map(&file) }.map_err(io_error)?;

        let header = Header::parse(&map)?;
        Ok(GgufFile {
            storage: Storage::Mapped(map),
            header,
        })
    }

    /// Validates a GGUF file held in memory and takes ownership of it.
    ///
    /// # Errors
    ///
    /// Any validation error of [`GgufView::parse`].
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        let header = Header::parse(&bytes)?;
        Ok(GgufFile {
            storage: Storage::Owned(bytes),
            header,
        })
    }

    /// Returns a borrowed view with the same accessors (copies the header, not the data).
    pub fn view(&self) -> GgufView<'_> {
        GgufView::from_parts(self.storage.bytes(), &self.header)
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

    /// Returns the tensor's data bytes, borrowed from the map or buffer.
    ///
    /// # Panics
    ///
    /// Panics if `info` does not come from this file and its range lies outside it.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        tensor_slice(self.storage.bytes(), self.header.data_offset, info)
    }

    /// Returns the data of the tensor named `name`, or `None` when there is no such tensor.
    pub fn tensor_bytes(&self, name: &str) -> Option<&[u8]> {
        self.tensor(name).map(|info| self.tensor_data(info))
    }

    /// Returns the whole file.
    pub fn as_bytes(&self) -> &[u8] {
        self.storage.bytes()
    }
}
