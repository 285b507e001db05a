//! Format constants and the caps applied to untrusted sizes, with the reason for each.

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// The version this crate writes. Versions 2 and 3 share one layout, so both are read.
pub const GGUF_VERSION: u32 = 3;

/// Alignment of the tensor data section and of every tensor, in bytes, when the file has no
/// `general.alignment` key (llama.cpp's `GGUF_DEFAULT_ALIGNMENT`).
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// The metadata key that overrides [`DEFAULT_ALIGNMENT`]; its value must be a `u32` power of two.
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// Maximum byte length of any string (key, value or tensor name): 2^30, as llama.cpp's
/// `GGUF_MAX_STRING_LENGTH`. No real model stores a string this long, so a larger length is
/// corruption or an attack on the allocator.
pub const MAX_STRING_LENGTH: u64 = 1 << 30;

/// Maximum number of elements in one metadata array: 2^30, as llama.cpp's
/// `GGUF_MAX_ARRAY_ELEMENTS`. The largest real vocabularies hold about 2^18 tokens.
pub const MAX_ARRAY_ELEMENTS: u64 = 1 << 30;

/// Maximum number of tensor dimensions, ggml's `GGML_MAX_DIMS`: ggml cannot represent more.
pub const MAX_DIMS: usize = 4;

/// Maximum byte length of a tensor name. ggml stores names in a 64-byte buffer that ends in a
/// NUL (`GGML_MAX_NAME`), so llama.cpp rejects 64 bytes or more; the GGUF spec allows 64, but
/// a file with a 64-byte name would not load in llama.cpp.
pub const MAX_TENSOR_NAME_LEN: usize = 63;

/// Smallest metadata record the parser consumes: an 8-byte key length, a 4-byte value type
/// and a 1-byte value (an empty key is read, then rejected). Bounds preallocation by file size.
pub(crate) const MIN_KV_RECORD_BYTES: u64 = 8 + 4 + 1;

/// Smallest tensor-info record the parser consumes: an 8-byte name length, a 4-byte n_dims,
/// a 4-byte type and an 8-byte offset. Bounds preallocation by file size.
pub(crate) const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// Rounds `offset` up to the next multiple of `alignment` (a power of two); `None` on overflow.
pub(crate) fn align_up(offset: u64, alignment: u64) -> Option<u64> {
    debug_assert!(alignment.is_power_of_two());
    Some(offset.checked_add(alignment - 1)? & !(alignment - 1))
}
