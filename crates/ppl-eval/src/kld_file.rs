//! llama.cpp's `--kl-divergence-base` file: streamed writing and validated reading.
//!
//! Layout, all little-endian:
//!
//! | field | type |
//! |---|---|
//! | magic | 8 bytes `_logits_` |
//! | n_ctx, n_vocab, n_chunk | 3 × i32 |
//! | tokens | i32 × n_chunk · n_ctx (the raw stream, before the BOS overwrite) |
//! | records | per chunk, `n_ctx − 1 − n_ctx/2` records of `record_len` u16 words |
//!
//! A record is one scored position: f32 `scale`, f32 `min_log_prob` (4 words),
//! then one u16 code per vocabulary entry and a zero pad word when n_vocab is odd.
//! The log-probability of entry `i` decodes as `scale · code[i] + min_log_prob`.
//! Codes cover `[max − 16, max]` of the logits, so entries further below the
//! maximum all decode to the floor.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{PplError, Result};
use crate::log_softmax::sum_exp;

/// The 8-byte magic at the start of a base file.
pub const KLD_BASE_MAGIC: &[u8; 8] = b"_logits_";

/// Bytes before the token stream: magic and three i32 fields.
const HEADER_BYTES: u64 = 8 + 3 * 4;

/// u16 words that hold the two f32 fields `scale` and `min_log_prob`.
const RECORD_PREFIX_WORDS: usize = 4;

/// Range of logits below the maximum that the u16 codes cover, in nats.
const CODED_RANGE: f32 = 16.0;

/// Largest u16 code: the top of the coded range.
const MAX_CODE: f32 = 65535.0;

/// The header of a base file: the run's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KldBaseHeader {
    /// Tokens per chunk.
    pub n_ctx: usize,
    /// Vocabulary size of the base model.
    pub n_vocab: usize,
    /// Chunks stored.
    pub n_chunk: usize,
}

impl KldBaseHeader {
    /// Creates a header after checking that each field fits llama.cpp's i32
    /// fields and that a chunk scores at least one token.
    ///
    /// # Errors
    ///
    /// Returns [`PplError::InvalidContextSize`] when `n_ctx < 3`, and
    /// [`PplError::InvalidBaseFile`] when a field is 0 or above `i32::MAX`.
    pub fn new(n_ctx: usize, n_vocab: usize, n_chunk: usize) -> Result<Self> {
        if n_ctx < crate::chunks::MIN_N_CTX {
            return Err(PplError::InvalidContextSize {
                n_ctx,
                min: crate::chunks::MIN_N_CTX,
            });
        }

        for (name, value) in [("n_ctx", n_ctx), ("n_vocab", n_vocab), ("n_chunk", n_chunk)] {
            if value == 0 || value > i32::MAX as usize {
                return Err(PplError::InvalidBaseFile {
                    path: PathBuf::new(),
                    reason: format!("{name} = {value} must be between 1 and {}", i32::MAX),
                });
            }
        }
        Ok(Self {
            n_ctx,
            n_vocab,
            n_chunk,
        })
    }

    /// Returns the u16 words per record: `2 · ceil(n_vocab / 2) + 4`.
    pub fn record_len(&self) -> usize {
        2 * self.n_vocab.div_ceil(2) + RECORD_PREFIX_WORDS
    }

    /// Returns the records (scored tokens) per chunk: `n_ctx − 1 − n_ctx/2`.
    pub fn records_per_chunk(&self) -> usize {
        self.n_ctx - 1 - self.n_ctx / 2
    }

    /// Returns the file size in bytes that this header implies, or `None` on overflow.
    pub fn file_len(&self) -> Option<u64> {
        let n_tokens = (self.n_ctx as u64).checked_mul(self.n_chunk as u64)?;
        let token_bytes = n_tokens.checked_mul(4)?;
        let record_bytes = (self.record_len() as u64).checked_mul(2)?;
        let chunk_bytes = record_bytes.checked_mul(self.records_per_chunk() as u64)?;
        let all_records = chunk_bytes.checked_mul(self.n_chunk as u64)?;
        HEADER_BYTES
            .checked_add(token_bytes)?
            .checked_add(all_records)
    }
}

/// Encodes one logits row as a base-file record and returns the NLL of `target`.
///
/// The NLL is `max + ln Σ exp(logit − max) − logit[target]` in f32, as in
/// llama.cpp's base-writing run.
pub(crate) fn encode_record(row: &[f32], target: u32, record: &mut [u16]) -> f64 {
    let mut max_logit = row[0];
    let mut min_logit = row[0];
    for &logit in &row[1..] {
        max_logit = max_logit.max(logit);
        min_logit = min_logit.min(logit);
    }
    let floor = min_logit.max(max_logit - CODED_RANGE);

    let log_sum_exp = sum_exp(row, max_logit).ln() as f32;
    let min_log_prob = floor - max_logit - log_sum_exp;
    let scale = (max_logit - floor) / MAX_CODE;

    record[0..2].copy_from_slice(&f32_to_words(scale));
    record[2..4].copy_from_slice(&f32_to_words(min_log_prob));

    let codes = &mut record[RECORD_PREFIX_WORDS..];
    codes.fill(0);
    if scale != 0.0 {
        let inv_scale = 1.0 / scale;
        for (code, &logit) in codes.iter_mut().zip(row) {
            if logit > floor {
                // Rounding half to even matches ggml's nearest_int; the clamp
                // only guards rounding noise at the top code.
                *code = (inv_scale * (logit - floor))
                    .round_ties_even()
                    .min(MAX_CODE) as u16;
            }
        }
    }

    f64::from(max_logit + log_sum_exp - row[target as usize])
}

/// Splits an f32 into the two u16 words that hold it in a little-endian file.
fn f32_to_words(value: f32) -> [u16; 2] {
    let bits = value.to_bits();
    [bits as u16, (bits >> 16) as u16]
}

/// Joins two u16 words of a little-endian file into an f32.
pub(crate) fn words_to_f32(words: &[u16]) -> f32 {
    f32::from_bits(u32::from(words[0]) | (u32::from(words[1]) << 16))
}

/// Streams a base file to disk and renames it into place when complete.
///
/// Dropping the writer before [`finish`](Self::finish) deletes the temporary file.
#[derive(Debug)]
pub struct KldBaseWriter {
    header: KldBaseHeader,
    path: PathBuf,
    temp_path: PathBuf,
    out: Option<BufWriter<File>>,
    records_written: usize,
}

impl KldBaseWriter {
    /// Creates a temporary file beside `path` and writes the header and `tokens`.
    ///
    /// # Errors
    ///
    /// Returns [`PplError::InvalidBaseFile`] when `tokens` does not hold
    /// `n_chunk · n_ctx` ids below n_vocab, and [`PplError::Io`] when the file
    /// cannot be created or written.
    pub fn create(path: &Path, header: &KldBaseHeader, tokens: &[u32]) -> Result<Self> {
        let expected_tokens = header.n_ctx * header.n_chunk;
        if tokens.len() != expected_tokens {
            return Err(PplError::InvalidBaseFile {
                path: path.to_path_buf(),
                reason: format!(
                    "got {} tokens to store, but n_ctx = {} and n_chunk = {} need {expected_tokens}",
                    tokens.len(),
                    header.n_ctx,
                    header.n_chunk
                ),
            });
        }
        if let Some(position) = tokens.iter().position(|&t| t as usize >= header.n_vocab) {
            return Err(PplError::TokenOutOfRange {
                token: tokens[position],
                position,
                n_vocab: header.n_vocab,
            });
        }

        let temp_path = temp_path_for(path);
        let file = File::create(&temp_path).map_err(|e| PplError::io(&temp_path, e))?;
        let mut writer = Self {
            header: *header,
            path: path.to_path_buf(),
            temp_path,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            records_written: 0,
        };

        let mut bytes = Vec::with_capacity(HEADER_BYTES as usize + 4 * tokens.len());
        bytes.extend_from_slice(KLD_BASE_MAGIC);
        for field in [header.n_ctx, header.n_vocab, header.n_chunk] {
            // Fits: KldBaseHeader::new caps every field at i32::MAX.
            bytes.extend_from_slice(&(field as i32).to_le_bytes());
        }
        for &token in tokens {
            bytes.extend_from_slice(&(token as i32).to_le_bytes());
        }
        writer.write_bytes(&bytes)?;
        Ok(writer)
    }

    /// Appends whole records (`record_len` words each) in file order.
    ///
    /// # Errors
    ///
    /// Returns [`PplError::InvalidBaseFile`] when `words` is not a whole number
    /// of records or exceeds the header's record count, and [`PplError::Io`]
    /// when writing fails.
    pub fn write_records(&mut self, words: &[u16]) -> Result<()> {
        let record_len = self.header.record_len();
        let total = self.header.records_per_chunk() * self.header.n_chunk;
        let count = words.len() / record_len;
        if words.len() % record_len != 0 || self.records_written + count > total {
            return Err(PplError::InvalidBaseFile {
                path: self.path.clone(),
                reason: format!(
                    "{} words is not a whole number of {record_len}-word records, or exceeds the {total} records the header declares",
                    words.len()
                ),
            });
        }

        let mut bytes = Vec::with_capacity(words.len() * 2);
        for &word in words {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        self.write_bytes(&bytes)?;
        self.records_written += count;
        Ok(())
    }

    /// Flushes and syncs the file, then renames it to its final path.
    ///
    /// # Errors
    ///
    /// Returns [`PplError::InvalidBaseFile`] when fewer records than the
    /// header declares were written, and [`PplError::Io`] when flushing,
    /// syncing or renaming fails.
    pub fn finish(mut self) -> Result<()> {
        let total = self.header.records_per_chunk() * self.header.n_chunk;
        if self.records_written != total {
            return Err(PplError::InvalidBaseFile {
                path: self.path.clone(),
                reason: format!(
                    "only {} of {total} records were written",
                    self.records_written
                ),
            });
        }

        let out = self.out.take().expect("writer is open until finish");
        let file = out
            .into_inner()
            .map_err(|e| PplError::io(&self.temp_path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| PplError::io(&self.temp_path, e))?;
        drop(file);

        fs::rename(&self.temp_path, &self.path).map_err(|e| PplError::io(&self.path, e))?;
        sync_parent_dir(&self.path);
        Ok(())
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let out = self.out.as_mut().expect("writer is open until finish");
        out.write_all(bytes)
            .map_err(|e| PplError::io(&self.temp_path, e))
    }
}

impl Drop for KldBaseWriter {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            // An unfinished file must not be mistaken for a base file.
            let _ = fs::remove_file(&self.temp_path);
        }
    }
}

/// Returns a hidden temporary path in the same folder as `path`, so the final
/// rename stays on one file system.
fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kld-base".to_owned());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Syncs the folder entry of a renamed file, where the platform allows it.
fn sync_parent_dir(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        // Not every platform can sync a folder; the rename itself already succeeded.
        let _ = dir.sync_all();
    }
}

/// Reads a base file chunk by chunk after validating its header against its size.
///
/// Every size is checked against the file length before anything large is
/// allocated, and every token id against n_vocab, so a hostile file yields
/// [`PplError::InvalidBaseFile`] rather than a huge allocation or a panic.
#[derive(Debug)]
pub struct KldBaseReader {
    header: KldBaseHeader,
    tokens: Vec<u32>,
    path: PathBuf,
    input: BufReader<File>,
    chunks_read: usize,
}

impl KldBaseReader {
    /// Opens `path`, validates the header and reads the token stream.
    ///
    /// # Errors
    ///
    /// Returns [`PplError::InvalidBaseFile`] for a wrong magic, a non-positive
    /// field, a file length that differs from what the header implies (a
    /// truncated file), or a token id outside n_vocab; [`PplError::Io`] when
    /// the file cannot be read.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| PplError::io(path, e))?;
        let file_len = file.metadata().map_err(|e| PplError::io(path, e))?.len();
        let mut input = BufReader::with_capacity(1 << 20, file);
        let invalid = |reason: String| PplError::InvalidBaseFile {
            path: path.to_path_buf(),
            reason,
        };

        if file_len < HEADER_BYTES {
            return Err(invalid(format!(
                "file is {file_len} bytes, shorter than the {HEADER_BYTES}-byte header; it is truncated or not a --kl-divergence-base file"
            )));
        }

        let mut head = [0u8; HEADER_BYTES as usize];
        input
            .read_exact(&mut head)
            .map_err(|e| PplError::io(path, e))?;
        if &head[..8] != KLD_BASE_MAGIC {
            return Err(invalid(format!(
                "magic is {:?}, expected \"_logits_\"; this is not a --kl-divergence-base file",
                String::from_utf8_lossy(&head[..8])
            )));
        }

        let field = |index: usize| {
            let start = 8 + 4 * index;
            i32::from_le_bytes(head[start..start + 4].try_into().expect("4-byte slice"))
        };
        let (n_ctx, n_vocab, n_chunk) = (field(0), field(1), field(2));
        for (name, value) in [("n_ctx", n_ctx), ("n_vocab", n_vocab), ("n_chunk", n_chunk)] {
            if value <= 0 {
                return Err(invalid(format!("{name} = {value} must be positive")));
            }
        }

        let header = KldBaseHeader::new(n_ctx as usize, n_vocab as usize, n_chunk as usize)
            .map_err(|e| match e {
                PplError::InvalidBaseFile { reason, .. } => invalid(reason),
                other => invalid(other.to_string()),
            })?;
        let expected_len = header.file_len().ok_or_else(|| {
            invalid(format!(
                "n_ctx = {n_ctx}, n_vocab = {n_vocab}, n_chunk = {n_chunk} overflow a 64-bit file size"
            ))
        })?;
        if expected_len != file_len {
            return Err(invalid(format!(
                "file is {file_len} bytes, but n_ctx = {n_ctx}, n_vocab = {n_vocab}, n_chunk = {n_chunk} need exactly {expected_len} bytes; the file is truncated or corrupt"
            )));
        }

        let n_tokens = header.n_ctx * header.n_chunk;
        let mut raw = vec![0u8; 4 * n_tokens];
        input
            .read_exact(&mut raw)
            .map_err(|e| PplError::io(path, e))?;

        let mut tokens = Vec::with_capacity(n_tokens);
        for (position, bytes) in raw.chunks_exact(4).enumerate() {
            let token = i32::from_le_bytes(bytes.try_into().expect("4-byte slice"));
            if token < 0 || token as usize >= header.n_vocab {
                return Err(invalid(format!(
                    "token id {token} at position {position} is outside n_vocab = {n_vocab}"
                )));
            }
            tokens.push(token as u32);
        }

        Ok(Self {
            header,
            tokens,
            path: path.to_path_buf(),
            input,
            chunks_read: 0,
        })
    }

    /// Returns the header.
    pub fn header(&self) -> &KldBaseHeader {
        &self.header
    }

    /// Returns the stored token stream, `n_chunk · n_ctx` ids before the BOS overwrite.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Returns the path being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the next chunk's records into `words`, resizing it to
    /// `records_per_chunk · record_len`, and returns `false` after the last chunk.
    ///
    /// # Errors
    ///
    /// Returns [`PplError::InvalidBaseFile`] when a record's scale or
    /// min_log_prob is NaN, infinite or (for scale) negative, and
    /// [`PplError::Io`] when reading fails.
    pub fn read_chunk(&mut self, words: &mut Vec<u16>) -> Result<bool> {
        if self.chunks_read == self.header.n_chunk {
            return Ok(false);
        }

        let record_len = self.header.record_len();
        let len = self.header.records_per_chunk() * record_len;
        let mut bytes = vec![0u8; 2 * len];
        self.input
            .read_exact(&mut bytes)
            .map_err(|e| PplError::io(&self.path, e))?;

        words.clear();
        words.extend(
            bytes
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]])),
        );

        for (record_index, record) in words.chunks_exact(record_len).enumerate() {
            let scale = words_to_f32(&record[0..2]);
            let min_log_prob = words_to_f32(&record[2..4]);
            if !(scale.is_finite() && scale >= 0.0 && min_log_prob.is_finite()) {
                return Err(PplError::InvalidBaseFile {
                    path: self.path.clone(),
                    reason: format!(
                        "chunk {} record {record_index} has scale = {scale} and min_log_prob = {min_log_prob}; both must be finite and scale non-negative",
                        self.chunks_read + 1
                    ),
                });
            }
        }

        self.chunks_read += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_len_pads_odd_vocab() {
        let odd = KldBaseHeader::new(512, 5, 1).unwrap();
        assert_eq!(odd.record_len(), 10);
        let even = KldBaseHeader::new(512, 4, 1).unwrap();
        assert_eq!(even.record_len(), 8);
    }

    #[test]
    fn file_len_matches_gemma3_base_file() {
        // llama.cpp wrote 668,487,660 bytes for 5 chunks of 512 on Gemma 3's 262,144 vocabulary.
        let header = KldBaseHeader::new(512, 262_144, 5).unwrap();
        assert_eq!(header.file_len(), Some(668_487_660));
    }

    #[test]
    fn encode_record_decodes_log_probs() {
        let row = [2.0_f32, 0.0, -1.0, -30.0, 1.5];
        let mut record = vec![0u16; 2 * 3 + 4];
        let nll = encode_record(&row, 1, &mut record);

        let log_sum: f64 = row.iter().map(|&x| f64::from(x).exp()).sum::<f64>().ln();
        assert!((nll - (log_sum - 0.0)).abs() < 1e-5);

        let scale = words_to_f32(&record[0..2]);
        let min_log_prob = words_to_f32(&record[2..4]);
        for (i, &logit) in row.iter().enumerate().take(3) {
            let decoded = scale * f32::from(record[4 + i]) + min_log_prob;
            let exact = (f64::from(logit) - log_sum) as f32;
            assert!(
                (decoded - exact).abs() < 2e-4,
                "entry {i}: {decoded} vs {exact}"
            );
        }
        // Below max − 16 the entry is stored as the floor.
        assert_eq!(record[4 + 3], 0);
        assert_eq!(record[4 + 5], 0, "pad word");
    }
}
