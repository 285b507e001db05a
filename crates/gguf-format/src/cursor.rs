//! A bounds-checked little-endian reader over a byte slice that reports byte offsets.

use crate::error::GgufError;
use crate::limits::MAX_STRING_LENGTH;

/// Reads little-endian fields from a byte slice; every read is checked against the end.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    /// Starts reading at byte `pos`, which must not exceed `bytes.len()`.
    pub(crate) fn at(bytes: &'a [u8], pos: usize) -> Self {
        debug_assert!(pos <= bytes.len());
        Cursor { bytes, pos }
    }

    /// Returns the current byte offset from the start of the input.
    pub(crate) fn offset(&self) -> u64 {
        self.pos as u64
    }

    /// Returns the number of unread bytes.
    pub(crate) fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    /// Takes the next `n` bytes; `field` describes them in the error.
    pub(crate) fn take(
        &mut self,
        n: u64,
        field: impl FnOnce() -> String,
    ) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(GgufError::UnexpectedEof {
                field: field(),
                offset: self.offset(),
                needed: n,
                available: self.remaining(),
            });
        }

        // `n <= remaining`, so it fits in usize and the range is in bounds.
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    /// Takes exactly `N` bytes as an array.
    pub(crate) fn array<const N: usize>(
        &mut self,
        field: impl FnOnce() -> String,
    ) -> Result<[u8; N], GgufError> {
        let bytes = self.take(N as u64, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u32(&mut self, field: impl FnOnce() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: impl FnOnce() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// Reads a GGUF string: a u64 byte length, then that many UTF-8 bytes (no NUL).
    pub(crate) fn string(&mut self, field: impl Fn() -> String) -> Result<&'a str, GgufError> {
        let offset = self.offset();
        let bytes = self.string_bytes(&field)?;
        std::str::from_utf8(bytes).map_err(|_| GgufError::InvalidUtf8 {
            field: field(),
            offset,
        })
    }

    /// Reads the length and bytes of a GGUF string without checking that they are UTF-8.
    pub(crate) fn string_bytes(
        &mut self,
        field: impl Fn() -> String,
    ) -> Result<&'a [u8], GgufError> {
        let offset = self.offset();
        let len = self.u64(|| format!("length of {}", field()))?;
        if len > MAX_STRING_LENGTH {
            return Err(GgufError::StringTooLong {
                field: field(),
                offset,
                len,
                max: MAX_STRING_LENGTH,
            });
        }

        self.take(len, &field)
    }
}
