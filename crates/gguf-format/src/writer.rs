//! [`GgufWriter`]: streams a GGUF v3 file, metadata and tensor infos first, then tensor data
//! one tensor at a time.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::encode::{check_metadata, write_header};
use crate::error::GgufError;
use crate::file::GgufFile;
use crate::header::{alignment_of, check_tensor_name, checked_tensor_size};
use crate::limits::{align_up, MAX_DIMS};
use crate::metadata::Metadata;
use crate::tensor_info::TensorInfo;
use crate::GgmlType;

/// Buffer size between the writer and the output file: large enough that tensor data goes
/// out in few system calls, small next to any tensor worth streaming.
const FILE_BUFFER_BYTES: usize = 1 << 20;

/// Zero bytes written as padding; every alignment this crate accepts up to this size pads in
/// one write, larger ones in several.
const ZEROS: [u8; 4096] = [0; 4096];

/// Writes a GGUF v3 file without holding tensor data in memory.
///
/// The writer first collects metadata and tensor infos (name, dims, type). Writing then
/// emits the header and calls a callback for each tensor's bytes in order, so a 20 GB
/// model passes through in tensor-sized pieces. The layout is llama.cpp's: tensors packed
/// in the order added, each at an offset that is a multiple of the alignment, each followed
/// by zero padding up to the alignment (the last one too). The alignment is
/// `general.alignment` when the metadata has it (a non-zero power-of-two `u32`), else 32.
/// Dims are written as given, so a trailing 1 stays (llama.cpp's writer drops trailing 1s).
///
/// Empty arrays are written with their element type, and read back as such.
#[derive(Debug, Clone, Default)]
pub struct GgufWriter {
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    names: HashSet<String>,
}

impl GgufWriter {
    /// Creates a writer with `metadata` and no tensors.
    pub fn new(metadata: Metadata) -> Self {
        GgufWriter {
            metadata,
            tensors: Vec::new(),
            names: HashSet::new(),
        }
    }

    /// Creates a writer with a copy of all metadata of `file`, in order, and no tensors.
    /// Change keys through [`GgufWriter::metadata_mut`] ([`Metadata::set`] keeps a key's
    /// position) and add the tensors with [`GgufWriter::add_tensor`].
    pub fn from_file(file: &GgufFile) -> Self {
        GgufWriter::new(file.metadata().clone())
    }

    /// Returns the metadata to be written.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Returns the metadata for editing.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// Appends a tensor info. Its size comes from `ggml_type` and `dims` (`dims[0]` is the
    /// row length `ne[0]`); its offset is assigned when writing.
    ///
    /// # Errors
    ///
    /// [`GgufError::EmptyTensorName`], [`GgufError::TensorNameTooLong`] (over 63 bytes),
    /// [`GgufError::DuplicateTensorName`], [`GgufError::NoDimensions`],
    /// [`GgufError::TooManyDimensions`] (over 4), [`GgufError::InvalidDimension`] (a 0 dim),
    /// [`GgufError::RowNotBlockAligned`] or [`GgufError::TensorTooLarge`].
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ggml_type: GgmlType,
    ) -> Result<(), GgufError> {
        let name = name.into();
        check_tensor_name(&name, self.tensors.len())?;
        if self.names.contains(&name) {
            return Err(GgufError::DuplicateTensorName { name });
        }

        if dims.is_empty() {
            return Err(GgufError::NoDimensions { tensor: name });
        }
        if dims.len() > MAX_DIMS {
            return Err(GgufError::TooManyDimensions {
                tensor: name,
                n_dims: dims.len() as u64,
                max: MAX_DIMS,
            });
        }
        if let Some(axis) = dims.iter().position(|&d| d == 0) {
            return Err(GgufError::InvalidDimension {
                tensor: name,
                axis,
                value: 0,
            });
        }
        let size_bytes = checked_tensor_size(&name, dims, ggml_type)?;

        self.names.insert(name.clone());
        self.tensors.push(TensorInfo {
            name,
            dims: dims.to_vec(),
            ggml_type,
            offset: 0,
            size_bytes,
        });
        Ok(())
    }

    /// Returns the tensor infos with the offsets they will have under the current alignment.
    ///
    /// # Errors
    ///
    /// [`GgufError::AlignmentNotU32`] or [`GgufError::InvalidAlignment`] for a bad
    /// `general.alignment`; [`GgufError::TensorTooLarge`] if the offsets overflow.
    pub fn tensor_infos(&self) -> Result<Vec<TensorInfo>, GgufError> {
        let alignment = alignment_of(&self.metadata)?;
        let mut tensors = self.tensors.clone();

        let mut offset = 0u64;
        for t in &mut tensors {
            t.offset = offset;
            offset = (t.size_bytes as u64)
                .checked_add(offset)
                .and_then(|end| align_up(end, alignment))
                .ok_or_else(|| GgufError::TensorTooLarge {
                    tensor: t.name.clone(),
                    dims: t.dims.clone(),
                })?;
        }
        Ok(tensors)
    }

    /// Streams the file to `out` and returns the number of bytes written.
    ///
    /// `data(index, info, sink)` must write exactly `info.size_bytes` bytes of tensor `index`
    /// to `sink`. Bytes beyond that are not forwarded to `out`, and the call fails.
    ///
    /// # Errors
    ///
    /// Metadata errors ([`GgufError::EmptyKey`], a bad `general.alignment`, an over-long
    /// string or array), [`GgufError::WrongTensorDataLength`], any error the callback
    /// returns, and [`GgufError::Write`] when `out` fails. On error `out` contains a partial
    /// file, but [`GgufWriter::write_to_path`] never leaves one behind.
    pub fn write_to(
        self,
        out: &mut dyn Write,
        mut data: impl FnMut(usize, &TensorInfo, &mut dyn Write) -> Result<(), GgufError>,
    ) -> Result<u64, GgufError> {
        check_metadata(&self.metadata)?;
        let alignment = alignment_of(&self.metadata)?;
        let tensors = self.tensor_infos()?;

        let header_len = write_header(out, &self.metadata, &tensors)?;
        let data_offset = align_up(header_len, alignment).ok_or(GgufError::DataSectionPastEnd {
            data_offset: u64::MAX,
            file_len: header_len,
        })?;
        write_zeros(out, data_offset - header_len)?;

        let mut position = data_offset;
        for (index, info) in tensors.iter().enumerate() {
            let expected = info.size_bytes as u64;
            let mut sink = ExactSink {
                inner: out,
                limit: expected,
                written: 0,
            };
            data(index, info, &mut sink)?;

            if sink.written != expected {
                return Err(GgufError::WrongTensorDataLength {
                    tensor: info.name.clone(),
                    expected,
                    written: sink.written,
                });
            }

            // llama.cpp pads after every tensor, the last one included.
            let padded = info.offset + align_up(expected, alignment).unwrap_or(expected);
            write_zeros(out, data_offset + padded - position - expected)?;
            position = data_offset + padded;
        }

        out.flush()?;
        Ok(position)
    }

    /// Writes the file into memory; meant for tests and small files.
    ///
    /// # Errors
    ///
    /// As [`GgufWriter::write_to`].
    pub fn write_to_vec(
        self,
        data: impl FnMut(usize, &TensorInfo, &mut dyn Write) -> Result<(), GgufError>,
    ) -> Result<Vec<u8>, GgufError> {
        let mut out = Vec::new();
        self.write_to(&mut out, data)?;
        Ok(out)
    }

    /// Writes the file to `path` atomically.
    ///
    /// The bytes go to a temporary file `.<file name>.tmp-<pid>` in the same folder, which
    /// is synced to disk and then renamed over `path`. On any error, or a panic in `data`,
    /// the temporary file is removed and `path` is left as it was. Temporary files of the
    /// same name left by writers that no longer run are removed first (see
    /// [`remove_stale_temp_files`](crate::remove_stale_temp_files)).
    ///
    /// # Errors
    ///
    /// As [`GgufWriter::write_to`], with output failures reported as [`GgufError::Io`]
    /// naming `path`.
    pub fn write_to_path(
        self,
        path: impl AsRef<Path>,
        data: impl FnMut(usize, &TensorInfo, &mut dyn Write) -> Result<(), GgufError>,
    ) -> Result<(), GgufError> {
        let path = path.as_ref();
        let io_error = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };

        let temp = TempFile::create(path).map_err(io_error)?;
        let file = temp.file.try_clone().map_err(io_error)?;
        let mut out = BufWriter::with_capacity(FILE_BUFFER_BYTES, file);

        self.write_to(&mut out, data).map_err(|e| match e {
            GgufError::Write(source) => io_error(source),
            other => other,
        })?;
        out.into_inner().map_err(|e| io_error(e.into_error()))?;

        temp.persist(path).map_err(io_error)
    }
}

/// Returns a tensor data callback for [`GgufWriter::write_to_path`] and friends that writes
/// `slices[index]` for tensor `index`, for callers that already hold every tensor in memory.
///
/// The callback fails with [`GgufError::TensorSource`] when there are fewer slices than
/// tensors; a slice of the wrong length fails as [`GgufError::WrongTensorDataLength`].
///
/// ```
/// use gguf_format::{slice_source, GgmlType, GgufView, GgufWriter, Metadata};
///
/// let mut writer = GgufWriter::new(Metadata::new());
/// writer.add_tensor("a", &[2], GgmlType::F32).unwrap();
/// writer.add_tensor("b", &[1], GgmlType::F32).unwrap();
/// let data = [vec![0u8; 8], 1f32.to_le_bytes().to_vec()];
///
/// let bytes = writer.write_to_vec(slice_source(&data)).unwrap();
/// assert_eq!(GgufView::parse(&bytes).unwrap().tensor_bytes("b"), Some(&data[1][..]));
/// ```
pub fn slice_source<S: AsRef<[u8]>>(
    slices: &[S],
) -> impl FnMut(usize, &TensorInfo, &mut dyn Write) -> Result<(), GgufError> + '_ {
    move |index, info, out| {
        let slice = slices.get(index).ok_or_else(|| GgufError::TensorSource {
            tensor: info.name.clone(),
            source: format!(
                "no data slice for tensor {index}; {} slices given",
                slices.len()
            )
            .into(),
        })?;
        out.write_all(slice.as_ref())?;
        Ok(())
    }
}

/// Writes `n` zero bytes.
fn write_zeros(out: &mut dyn Write, mut n: u64) -> io::Result<()> {
    while n > 0 {
        let chunk = n.min(ZEROS.len() as u64) as usize;
        out.write_all(&ZEROS[..chunk])?;
        n -= chunk as u64;
    }
    Ok(())
}

/// Forwards at most `limit` bytes to `inner` and counts everything offered, so that a
/// callback that writes too much is detected without corrupting the output.
struct ExactSink<'a> {
    inner: &'a mut dyn Write,
    limit: u64,
    written: u64,
}

impl Write for ExactSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.limit.saturating_sub(self.written);
        let forward = (buf.len() as u64).min(room) as usize;
        if forward > 0 {
            self.inner.write_all(&buf[..forward])?;
        }
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A temporary output file next to its destination, removed on drop unless persisted.
struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    fn create(destination: &Path) -> io::Result<TempFile> {
        let path = crate::temp_files::temp_path_for(destination)?;
        // Leftovers of writers that were killed would otherwise pile up beside the output.
        crate::temp_files::remove_stale_temp_files(destination)?;

        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        Ok(TempFile {
            path,
            file,
            persisted: false,
        })
    }

    /// Syncs the data to disk and renames the file to `destination`.
    fn persist(mut self, destination: &Path) -> io::Result<()> {
        self.file.sync_all()?;
        fs::rename(&self.path, destination)?;
        self.persisted = true;

        // Sync the folder too so the rename itself survives a crash; not every platform
        // can open a folder, so failure here is not an error.
        if let Some(parent) = destination.parent() {
            let folder = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            if let Ok(dir) = File::open(folder) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = fs::remove_file(&self.path);
        }
    }
}
