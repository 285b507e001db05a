//! Truncates the real model's header at every byte offset and checks the typed error that
//! names the field that was cut.
//!
//! The expected error of each prefix comes from a table of every field in the header (its
//! offset, length and name), built from the decoded file and independent of the reader's
//! own walk.

mod common;

use std::time::Instant;

use gguf_format::{Array, GgufError, GgufFile, GgufView, HeaderScanner, ScanStatus, Value};

/// Bytes of the magic, which the reader checks before anything else.
const MAGIC_BYTES: usize = 4;

/// Prefixes at which the resumed scanner stops before this offset are also parsed from
/// scratch by [`GgufView::parse`], which then walks no further. A stop past it means
/// walking the 262144 strings of the vocabulary again, which only a sample can afford.
const FRESH_PARSE_CHECKPOINT_LIMIT: u64 = 64 * 1024;

/// Spacing of the sampled prefixes, in bytes, that are parsed from scratch inside the
/// vocabulary arrays. A prime, so that the samples do not line up with the 4- and 8-byte
/// fields.
const FRESH_PARSE_STRIDE: usize = 4099;

/// The error that a prefix ending inside one field must produce.
#[derive(Debug)]
enum Expected {
    /// The prefix ends inside the field, which starts at byte `start` and is `len` bytes long.
    Eof {
        field: String,
        start: usize,
        len: usize,
    },

    /// The prefix ends before the smallest encoding of an array's elements, which start at
    /// `elements_start`.
    ArrayFit {
        field: String,
        count: u64,
        count_offset: usize,
        elements_start: usize,
    },
}

/// The prefix lengths `from..to` that share one expected error.
#[derive(Debug)]
struct Span {
    from: usize,
    to: usize,
    expected: Expected,
}

/// Builds the spans of a header in file order, so that together they cover every prefix
/// length from the end of the magic to the end of the header.
struct Layout {
    spans: Vec<Span>,
    pos: usize,
    /// Prefixes before this offset fail on an array count, not on the field they cut.
    array_fit_end: usize,
}

impl Layout {
    fn field(&mut self, field: String, len: usize) {
        let (start, end) = (self.pos, self.pos + len);
        let from = start.max(self.array_fit_end);
        if from < end {
            self.spans.push(Span {
                from,
                to: end,
                expected: Expected::Eof { field, start, len },
            });
        }
        self.pos = end;
    }

    fn string(&mut self, field: String, text: &str) {
        self.field(format!("length of {field}"), 8);
        self.field(field, text.len());
    }

    fn value(&mut self, key: &str, value: &Value) {
        match value {
            Value::String(text) => self.string(format!("value of metadata key '{key}'"), text),
            Value::Array(array) => self.array(key, array),
            scalar => self.field(
                format!("value of metadata key '{key}'"),
                scalar.value_type().min_encoded_size(),
            ),
        }
    }

    fn array(&mut self, key: &str, array: &Array) {
        self.field(format!("array element type of metadata key '{key}'"), 4);
        let count_offset = self.pos;
        let field = format!("array length of metadata key '{key}'");
        self.field(field.clone(), 8);

        let elements_start = self.pos;
        let min_bytes = array.len() * array.element_type().min_encoded_size();
        if min_bytes > 0 {
            self.spans.push(Span {
                from: elements_start,
                to: elements_start + min_bytes,
                expected: Expected::ArrayFit {
                    field,
                    count: array.len() as u64,
                    count_offset,
                    elements_start,
                },
            });
        }
        self.array_fit_end = elements_start + min_bytes;

        match array {
            Array::String(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.string(format!("string {i} of array '{key}'"), item);
                }
            }
            _ => self.field(format!("elements of array '{key}'"), min_bytes),
        }
    }

    /// Lists the spans of `file`'s header after the magic.
    fn of(file: &GgufFile) -> Layout {
        let mut layout = Layout {
            spans: Vec::new(),
            pos: MAGIC_BYTES,
            array_fit_end: 0,
        };
        layout.field("version".to_string(), 4);
        layout.field("tensor count".to_string(), 8);
        layout.field("metadata pair count".to_string(), 8);

        for (index, (key, value)) in file.metadata().iter().enumerate() {
            layout.string(format!("key of metadata pair {index}"), key);
            layout.field(format!("value type of metadata key '{key}'"), 4);
            layout.value(key, value);
        }

        for (index, t) in file.tensors().iter().enumerate() {
            let name = &t.name;
            layout.string(format!("name of tensor {index}"), name);
            layout.field(format!("n_dims of tensor '{name}'"), 4);
            for axis in 0..t.dims.len() {
                layout.field(format!("dimension {axis} of tensor '{name}'"), 8);
            }
            layout.field(format!("ggml type of tensor '{name}'"), 4);
            layout.field(format!("data offset of tensor '{name}'"), 8);
        }
        layout
    }
}

/// Asserts that `error`, returned for the first `n` bytes, is the one `expected` describes.
fn assert_cut(n: usize, error: &GgufError, expected: &Expected) {
    match (error, expected) {
        (
            GgufError::UnexpectedEof {
                field,
                offset,
                needed,
                available,
            },
            Expected::Eof {
                field: expected_field,
                start,
                len,
            },
        ) => {
            assert_eq!(field, expected_field, "prefix of {n} bytes");
            assert_eq!(*offset, *start as u64, "prefix of {n} bytes: {field}");
            assert_eq!(*needed, *len as u64, "prefix of {n} bytes: {field}");
            assert_eq!(
                *available,
                (n - start) as u64,
                "prefix of {n} bytes: {field}"
            );
        }
        (
            GgufError::CountTooLarge {
                field,
                count,
                offset,
                reason,
            },
            Expected::ArrayFit {
                field: expected_field,
                count: expected_count,
                count_offset,
                elements_start,
            },
        ) => {
            assert_eq!(field, expected_field, "prefix of {n} bytes");
            assert_eq!(count, expected_count, "prefix of {n} bytes: {field}");
            assert_eq!(
                *offset, *count_offset as u64,
                "prefix of {n} bytes: {field}"
            );
            let left = n - elements_start;
            assert!(
                reason.ends_with(&format!("only {left} are left")),
                "prefix of {n} bytes: {error}"
            );
        }
        _ => panic!("prefix of {n} bytes: got {error:?}, expected {expected:?}"),
    }
}

/// Prefix lengths are dealt to the worker threads in blocks of this many, so that each
/// worker gets a share of the cheap and of the expensive prefixes.
const BLOCK: usize = 4096;

/// What every worker reads.
struct Input<'a> {
    bytes: &'a [u8],
    header_len: usize,
    layout: &'a Layout,
    /// The end of the last array: prefixes from here on cut a small pair or a tensor info.
    tail_start: usize,
}

/// Checks the prefix lengths in the blocks `worker`, `worker + workers`, ... below the
/// header length, and returns how many of them were also parsed from scratch.
fn check_prefixes(input: &Input<'_>, worker: usize, workers: usize) -> usize {
    let spans = &input.layout.spans;
    let mut scanner = HeaderScanner::new();
    let mut span_index = 0;
    let mut fresh_parses = 0;

    let blocks = (0..input.header_len)
        .step_by(BLOCK)
        .skip(worker)
        .step_by(workers);
    for block_start in blocks {
        for n in block_start..(block_start + BLOCK).min(input.header_len) {
            let prefix = &input.bytes[..n];
            let status = scanner
                .scan(prefix)
                .unwrap_or_else(|error| panic!("prefix of {n} bytes: {error}"));
            let ScanStatus::Truncated(error) = status else {
                panic!("prefix of {n} bytes: the scanner found a complete header: {status:?}");
            };

            if n < MAGIC_BYTES {
                assert!(
                    matches!(&error, GgufError::BadMagic { found } if found == prefix),
                    "prefix of {n} bytes: {error:?}"
                );
            } else {
                while spans[span_index].to <= n {
                    span_index += 1;
                }
                let span = &spans[span_index];
                assert!(span.from <= n, "prefix of {n} bytes: no span covers it");
                assert_cut(n, &error, &span.expected);
            }

            let fresh = scanner.offset() < FRESH_PARSE_CHECKPOINT_LIMIT
                || n >= input.tail_start
                || n % FRESH_PARSE_STRIDE == 0;
            if fresh {
                let parsed = GgufView::parse(prefix).expect_err("a truncated header parsed");
                assert_eq!(
                    format!("{parsed:?}"),
                    format!("{error:?}"),
                    "prefix of {n} bytes"
                );
                fresh_parses += 1;
            }
        }
    }
    fresh_parses
}

/// Every prefix of the header, from 0 bytes to one byte short of the end of the tensor
/// infos, must fail with the error naming the field it cuts.
///
/// The [`HeaderScanner`] that [`GgufView::parse`] runs first is called on every prefix,
/// resuming at its last whole record, which makes the 6.5 million prefixes affordable.
/// [`GgufView::parse`] itself is called from scratch on every prefix that ends before the
/// vocabulary's strings fit, on every prefix after the vocabulary arrays, and on a sample in
/// between, and must return the same error as the scanner.
#[test]
fn real_model_every_header_prefix_fails() {
    let Some(path) = common::real_model() else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let bytes = file.as_bytes();
    let header_len = file.header_len() as usize;

    let layout = Layout::of(&file);
    assert_eq!(layout.pos, header_len, "field lengths do not add up");
    let input = Input {
        bytes,
        header_len,
        layout: &layout,
        tail_start: layout.array_fit_end,
    };

    let started = Instant::now();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let fresh_parses: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                let input = &input;
                scope.spawn(move || check_prefixes(input, worker, workers))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });

    let mut scanner = HeaderScanner::new();
    let status = scanner.scan(&bytes[..header_len]).unwrap();
    assert!(
        matches!(status, ScanStatus::Complete { header_len: len } if len == file.header_len()),
        "{status:?}"
    );
    let error = GgufView::parse(&bytes[..header_len]).unwrap_err();
    assert!(
        matches!(error, GgufError::DataSectionPastEnd { .. }),
        "{error:?}"
    );

    eprintln!(
        "checked {header_len} prefixes ({fresh_parses} also parsed from scratch) on {workers} threads in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
