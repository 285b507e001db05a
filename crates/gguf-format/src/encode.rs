//! Encoding of the GGUF header: magic, version, counts, metadata and tensor infos.

use std::io::{self, Write};

use crate::error::GgufError;
use crate::limits::{GGUF_MAGIC, GGUF_VERSION, MAX_ARRAY_ELEMENTS, MAX_STRING_LENGTH};
use crate::metadata::Metadata;
use crate::tensor_info::TensorInfo;
use crate::value::{Array, Value};

/// Checks what the reader would reject and the writer API cannot rule out by itself: empty
/// keys (possible through [`Metadata::set`]), over-long strings and over-long arrays.
pub(crate) fn check_metadata(metadata: &Metadata) -> Result<(), GgufError> {
    for (index, (key, value)) in metadata.iter().enumerate() {
        if key.is_empty() {
            return Err(GgufError::EmptyKey { index });
        }
        check_string_len(key.len(), || format!("metadata key '{key}'"))?;

        match value {
            Value::String(s) => {
                check_string_len(s.len(), || format!("value of metadata key '{key}'"))?
            }
            Value::Array(array) => {
                let count = array.len() as u64;
                if count > MAX_ARRAY_ELEMENTS {
                    return Err(GgufError::CountTooLarge {
                        field: format!("array length of metadata key '{key}'"),
                        count,
                        offset: 0,
                        reason: format!("the cap is {MAX_ARRAY_ELEMENTS} elements"),
                    });
                }
                if let Array::String(strings) = array {
                    for (i, s) in strings.iter().enumerate() {
                        check_string_len(s.len(), || format!("string {i} of array '{key}'"))?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_string_len(len: usize, field: impl FnOnce() -> String) -> Result<(), GgufError> {
    if len as u64 > MAX_STRING_LENGTH {
        return Err(GgufError::StringTooLong {
            field: field(),
            offset: 0,
            len: len as u64,
            max: MAX_STRING_LENGTH,
        });
    }
    Ok(())
}

/// Writes everything before the padding that precedes the data section and returns the
/// number of bytes written.
pub(crate) fn write_header(
    out: &mut dyn Write,
    metadata: &Metadata,
    tensors: &[TensorInfo],
) -> io::Result<u64> {
    let mut out = CountingWriter {
        inner: out,
        written: 0,
    };

    out.write_all(&GGUF_MAGIC)?;
    out.write_all(&GGUF_VERSION.to_le_bytes())?;
    out.write_all(&(tensors.len() as u64).to_le_bytes())?;
    out.write_all(&(metadata.len() as u64).to_le_bytes())?;

    for (key, value) in metadata.iter() {
        write_string(&mut out, key)?;
        out.write_all(&value.value_type().id().to_le_bytes())?;
        write_value(&mut out, value)?;
    }

    for t in tensors {
        write_string(&mut out, &t.name)?;
        out.write_all(&(t.dims.len() as u32).to_le_bytes())?;
        for &d in &t.dims {
            out.write_all(&d.to_le_bytes())?;
        }
        out.write_all(&t.ggml_type.id().to_le_bytes())?;
        out.write_all(&t.offset.to_le_bytes())?;
    }
    Ok(out.written)
}

fn write_string(out: &mut dyn Write, s: &str) -> io::Result<()> {
    out.write_all(&(s.len() as u64).to_le_bytes())?;
    out.write_all(s.as_bytes())
}

fn write_value(out: &mut dyn Write, value: &Value) -> io::Result<()> {
    match value {
        Value::U8(v) => out.write_all(&v.to_le_bytes()),
        Value::I8(v) => out.write_all(&v.to_le_bytes()),
        Value::U16(v) => out.write_all(&v.to_le_bytes()),
        Value::I16(v) => out.write_all(&v.to_le_bytes()),
        Value::U32(v) => out.write_all(&v.to_le_bytes()),
        Value::I32(v) => out.write_all(&v.to_le_bytes()),
        Value::F32(v) => out.write_all(&v.to_le_bytes()),
        Value::Bool(v) => out.write_all(&[u8::from(*v)]),
        Value::String(s) => write_string(out, s),
        Value::Array(array) => write_array(out, array),
        Value::U64(v) => out.write_all(&v.to_le_bytes()),
        Value::I64(v) => out.write_all(&v.to_le_bytes()),
        Value::F64(v) => out.write_all(&v.to_le_bytes()),
    }
}

/// Generates the loop that writes fixed-size elements little-endian, through one buffer.
macro_rules! write_fixed {
    ($out:expr, $values:expr) => {{
        let mut buf = Vec::with_capacity(std::mem::size_of_val($values.as_slice()));
        for v in $values.iter() {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        $out.write_all(&buf)
    }};
}

fn write_array(out: &mut dyn Write, array: &Array) -> io::Result<()> {
    out.write_all(&array.element_type().id().to_le_bytes())?;
    out.write_all(&(array.len() as u64).to_le_bytes())?;

    match array {
        Array::U8(v) => out.write_all(v),
        Array::I8(v) => write_fixed!(out, v),
        Array::U16(v) => write_fixed!(out, v),
        Array::I16(v) => write_fixed!(out, v),
        Array::U32(v) => write_fixed!(out, v),
        Array::I32(v) => write_fixed!(out, v),
        Array::F32(v) => write_fixed!(out, v),
        Array::Bool(v) => {
            let bytes: Vec<u8> = v.iter().map(|&b| u8::from(b)).collect();
            out.write_all(&bytes)
        }
        Array::String(v) => v.iter().try_for_each(|s| write_string(out, s)),
        Array::U64(v) => write_fixed!(out, v),
        Array::I64(v) => write_fixed!(out, v),
        Array::F64(v) => write_fixed!(out, v),
    }
}

/// A writer that counts the bytes passed through it.
pub(crate) struct CountingWriter<'a> {
    pub(crate) inner: &'a mut dyn Write,
    pub(crate) written: u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
