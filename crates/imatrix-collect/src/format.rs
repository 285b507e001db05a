//! Loading and saving imatrix files in either format.

use std::io::Write;
use std::path::Path;

use crate::dat::{read_dat, write_dat};
use crate::error::ImatrixError;
use crate::gguf::{read_gguf, write_gguf};
use crate::imatrix::{Imatrix, DEFAULT_CHUNK_SIZE};

/// Magic bytes at the start of every GGUF file.
const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// On-disk imatrix formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImatrixFormat {
    /// GGUF with `<name>.in_sum2` and `<name>.counts` tensors (llama.cpp's default).
    Gguf,
    /// The legacy `.dat` stream of mean squares scaled by call counts.
    Dat,
}

impl ImatrixFormat {
    /// Detects the format from the leading bytes: `GGUF` means GGUF, anything else legacy.
    ///
    /// The file name is not consulted, because llama.cpp writes GGUF under any suffix.
    pub fn detect(bytes: &[u8]) -> Self {
        if bytes.starts_with(GGUF_MAGIC) {
            Self::Gguf
        } else {
            Self::Dat
        }
    }

    /// Returns the format to write for `path`: legacy for a `.dat` extension, else GGUF.
    pub fn for_output_path(path: &Path) -> Self {
        match path.extension() {
            Some(extension) if extension.eq_ignore_ascii_case("dat") => Self::Dat,
            _ => Self::Gguf,
        }
    }
}

impl Imatrix {
    /// Parses an imatrix in either format, detected from its leading bytes; a legacy file's
    /// values are converted with the default chunk size of 512.
    ///
    /// # Errors
    /// As [`read_gguf`] or [`read_dat`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Imatrix, ImatrixError> {
        Self::from_bytes_with_chunk_size(bytes, DEFAULT_CHUNK_SIZE)
    }

    /// Parses an imatrix in either format; a legacy file's sums and counts are scaled by
    /// `legacy_chunk_size`, the n_ctx it was collected with (the format does not store it).
    ///
    /// # Errors
    /// As [`read_gguf`] or [`read_dat`].
    pub fn from_bytes_with_chunk_size(
        bytes: &[u8],
        legacy_chunk_size: u32,
    ) -> Result<Imatrix, ImatrixError> {
        match ImatrixFormat::detect(bytes) {
            ImatrixFormat::Gguf => read_gguf(bytes),
            ImatrixFormat::Dat => read_dat(bytes, legacy_chunk_size),
        }
    }

    /// Reads an imatrix file in either format (see [`Imatrix::from_bytes`]).
    ///
    /// # Errors
    /// [`ImatrixError::Io`] when the file cannot be read, otherwise as
    /// [`Imatrix::from_bytes`].
    ///
    /// # Examples
    /// ```no_run
    /// use imatrix_collect::Imatrix;
    ///
    /// let imatrix = Imatrix::load("imatrix.gguf")?;
    /// let importance = imatrix.importance_for("blk.0.ffn_down.weight", 2048)?;
    /// # Ok::<(), imatrix_collect::ImatrixError>(())
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Imatrix, ImatrixError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ImatrixError::io(path, e))?;
        Self::from_bytes(&bytes)
    }

    /// Reads and merges several imatrix files (llama-imatrix `--in-file` repeated).
    ///
    /// # Errors
    /// [`ImatrixError::NoInput`] for an empty list, otherwise as [`Imatrix::load`] and
    /// [`Imatrix::merge`].
    pub fn load_merged<P: AsRef<Path>>(paths: &[P]) -> Result<Imatrix, ImatrixError> {
        let mut merged: Option<Imatrix> = None;
        for path in paths {
            let imatrix = Self::load(path)?;
            match merged.as_mut() {
                Some(merged) => merged.merge(&imatrix)?,
                None => merged = Some(imatrix),
            }
        }
        merged.ok_or(ImatrixError::NoInput)
    }

    /// Serialises the imatrix in the legacy `.dat` format (see [`write_dat`]).
    ///
    /// # Errors
    /// As [`write_dat`].
    pub fn to_dat_bytes(&self) -> Result<Vec<u8>, ImatrixError> {
        write_dat(self)
    }

    /// Writes the imatrix to `path` in `format`, atomically: into a temporary file in the
    /// same folder, synced, then renamed over `path`, so readers never see a partial file.
    ///
    /// # Errors
    /// [`ImatrixError::Io`] or [`ImatrixError::Gguf`] when writing fails, and the errors of
    /// [`write_dat`].
    pub fn save(&self, path: impl AsRef<Path>, format: ImatrixFormat) -> Result<(), ImatrixError> {
        let path = path.as_ref();
        match format {
            ImatrixFormat::Gguf => write_gguf(self, path),
            ImatrixFormat::Dat => write_atomic(path, &write_dat(self)?),
        }
    }
}

/// Writes `bytes` to `path` through a synced temporary file `.<file name>.tmp-<pid>` in the
/// same folder, after removing such files of writers that no longer run.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImatrixError> {
    let temp = gguf_format::temp_path_for(path).map_err(|e| ImatrixError::io(path, e))?;
    gguf_format::remove_stale_temp_files(path).map_err(|e| ImatrixError::io(path, e))?;

    let written = std::fs::File::create(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(ImatrixError::io(&temp, e));
    }
    if let Err(e) = std::fs::rename(&temp, path) {
        let _ = std::fs::remove_file(&temp);
        return Err(ImatrixError::io(path, e));
    }
    Ok(())
}
