//! Compares this crate's forward pass with llama.cpp's, weight input by weight input.
//!
//! `scripts/ggml-oracle/dump_matmul_inputs.cpp` runs llama.cpp on the first perplexity chunks
//! and writes the f32 input and output of every weight matrix product and the logits. This
//! example evaluates the same tokens with a [`MatmulHook`]. For each weight in execution
//! order it prints how many input and output values differ in their bits, with the max
//! absolute and max relative differences. The logits and the chunk's perplexity follow.
//!
//! ```text
//! cargo run --release -p gemma2-model --example compare_activations --
//!     [--replace-outputs] MODEL.gguf /work/dumps/q4km-wiki [SEQ]
//! ```
//!
//! `--replace-outputs` continues from llama.cpp's matmul outputs instead of ours, so that
//! every input difference comes from the rest of the graph (norms, RoPE, attention, GELU,
//! residual adds) and not from the matmul kernels. SEQ picks a dumped chunk (default 0).
//! The dump folder contains `manifest.tsv` (file stem, rows, cols per line), `tokens.i32` and
//! `seq<SEQ>/<stem>.f32`, all little-endian. The exit status is 0 when everything matches
//! bit for bit, 1 when something differs, 2 on an error.

use std::collections::HashMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use gemma2_model::{MatmulHook, Model};

/// One line of `manifest.tsv`: a dumped tensor and its shape.
struct ManifestEntry {
    name: String,
    n_rows: usize,
    n_cols: usize,
}

/// Compares every matmul input and output with llama.cpp's as the forward pass runs, and
/// optionally replaces our outputs with llama.cpp's.
struct Comparer<'a> {
    seq_dir: PathBuf,
    shapes: &'a HashMap<&'a str, &'a ManifestEntry>,
    n_ctx: usize,
    replace_outputs: bool,
    /// Per weight in call order: the input and (except for the LM head) output differences.
    results: Vec<(String, Diff, Option<Diff>)>,
    error: Option<String>,
}

impl Comparer<'_> {
    /// Compares the last rows of `ours` (`n_cols` wide) with the dump `stem`, which may hold
    /// fewer rows: llama.cpp drops rows without logits before the LM head and the last
    /// layer's FFN.
    fn compare_with_dump(&self, stem: &str, ours: &[f32], n_cols: usize) -> Result<(Diff, Vec<f32>), String> {
        let entry = self
            .shapes
            .get(stem)
            .ok_or_else(|| format!("the dump has no tensor {stem}"))?;
        if entry.n_cols != n_cols {
            return Err(format!("{stem}: we have {n_cols} columns, llama.cpp {}", entry.n_cols));
        }
        let reference = read_f32(&self.seq_dir.join(format!("{stem}.f32"))).map_err(|e| e.to_string())?;
        if reference.len() != entry.n_rows * n_cols || ours.len() < reference.len() {
            return Err(format!("{stem}: {} values in the dump, {} here", reference.len(), ours.len()));
        }
        let ours = &ours[ours.len() - reference.len()..];
        let mut diff = compare(ours, &reference);
        diff.first_row = self.n_ctx - entry.n_rows;
        diff.n_cols = n_cols;
        Ok((diff, reference))
    }
}

impl MatmulHook for Comparer<'_> {
    fn on_matmul_input(&mut self, weight_name: &str, x: &[f32], _n_rows: usize, n_cols: usize) {
        if self.error.is_some() {
            return;
        }
        match self.compare_with_dump(weight_name, x, n_cols) {
            Ok((diff, _)) => self.results.push((weight_name.to_owned(), diff, None)),
            Err(e) => self.error = Some(e),
        }
    }

    fn on_matmul_output(&mut self, weight_name: &str, out: &mut [f32], _n_rows: usize, n_cols: usize) {
        let stem = format!("{weight_name}.out");
        if self.error.is_some() || !self.shapes.contains_key(stem.as_str()) {
            return;
        }
        match self.compare_with_dump(&stem, out, n_cols) {
            Ok((diff, reference)) => {
                // Q, K and V receive their inputs before any of them computes, so look the
                // weight up by name.
                if let Some(result) = self.results.iter_mut().rev().find(|r| r.0 == weight_name) {
                    result.2 = Some(diff);
                }
                if self.replace_outputs {
                    let start = out.len() - reference.len();
                    out[start..].copy_from_slice(&reference);
                }
            }
            Err(e) => self.error = Some(e),
        }
    }
}

/// Differences between two equal-length f32 arrays.
#[derive(Debug, Default)]
struct Diff {
    n_values: usize,
    n_different_bits: usize,
    max_abs: f32,
    max_rel: f32,
    /// Index of the first value whose bits differ.
    first_index: Option<usize>,
    /// Chunk position of the first compared row, and the row width, to locate `first_index`.
    first_row: usize,
    n_cols: usize,
}

impl Diff {
    /// Formats the bit count, max abs and max rel difference as table cells.
    fn cells(&self) -> String {
        format!(
            "{:>16} {:>10.3e} {:>10.3e}",
            format!("{}/{}", self.n_different_bits, self.n_values),
            self.max_abs,
            self.max_rel
        )
    }

    /// Returns `(position, column)` of the first differing value, or an empty string.
    fn location(&self) -> String {
        match (self.first_index, self.n_cols) {
            (Some(i), n_cols) if n_cols > 0 => format!("({}, {})", self.first_row + i / n_cols, i % n_cols),
            _ => String::new(),
        }
    }
}

/// Compares `ours` with `reference` value by value; NaNs count as different.
fn compare(ours: &[f32], reference: &[f32]) -> Diff {
    let mut diff = Diff {
        n_values: ours.len(),
        ..Diff::default()
    };
    for (i, (&a, &b)) in ours.iter().zip(reference).enumerate() {
        if a.to_bits() == b.to_bits() {
            continue;
        }
        diff.n_different_bits += 1;
        diff.first_index.get_or_insert(i);

        let abs = (a - b).abs();
        let rel = abs / b.abs().max(f32::MIN_POSITIVE);
        diff.max_abs = diff.max_abs.max(if abs.is_nan() { f32::INFINITY } else { abs });
        diff.max_rel = diff.max_rel.max(if rel.is_nan() { f32::INFINITY } else { rel });
    }
    diff
}

fn read_f32(path: &Path) -> Result<Vec<f32>, Box<dyn Error>> {
    let bytes = std::fs::read(path).map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    if bytes.len() % 4 != 0 {
        return Err(format!("{} has {} bytes, not a whole number of f32", path.display(), bytes.len()).into());
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn read_manifest(dir: &Path) -> Result<Vec<ManifestEntry>, Box<dyn Error>> {
    let path = dir.join("manifest.tsv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, rows, cols] = fields[..] else {
            return Err(format!("{}:{}: expected 3 tab-separated fields", path.display(), i + 1).into());
        };
        entries.push(ManifestEntry {
            name: name.to_owned(),
            n_rows: rows.parse()?,
            n_cols: cols.parse()?,
        });
    }
    Ok(entries)
}

/// Returns the perplexity of `tokens[1..]` given the logits of the positions before them,
/// with the log-softmax in f64 as llama-perplexity computes it.
fn chunk_perplexity(logits: &[f32], n_vocab: usize, next_tokens: &[u32]) -> f64 {
    let mut nll = 0.0f64;
    let mut count = 0usize;
    for (row, &token) in logits.chunks_exact(n_vocab).zip(next_tokens) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = row.iter().map(|&v| f64::from(v - max).exp()).sum();
        nll += sum.ln() - f64::from(row[token as usize] - max);
        count += 1;
    }
    (nll / count as f64).exp()
}

fn run(model_path: &Path, dump_dir: &Path, seq: usize, replace_outputs: bool) -> Result<bool, Box<dyn Error>> {
    let manifest = read_manifest(dump_dir)?;
    let shapes: HashMap<&str, &ManifestEntry> = manifest.iter().map(|e| (e.name.as_str(), e)).collect();
    let logits_entry = shapes.get("logits").ok_or("manifest.tsv has no logits line")?;
    let n_vocab = logits_entry.n_cols;

    let all_tokens: Vec<u32> = std::fs::read(dump_dir.join("tokens.i32"))?
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let n_ctx = 2 * logits_entry.n_rows;
    let tokens = all_tokens
        .get(seq * n_ctx..(seq + 1) * n_ctx)
        .ok_or_else(|| format!("tokens.i32 has no chunk {seq} of {n_ctx} tokens"))?;
    let first = n_ctx / 2;

    let model = Model::from_gguf(model_path)?;
    let seq_dir = dump_dir.join(format!("seq{seq}"));
    let mut comparer = Comparer {
        seq_dir: seq_dir.clone(),
        shapes: &shapes,
        n_ctx,
        replace_outputs,
        results: Vec::new(),
        error: None,
    };
    let logits = model.forward(tokens, first, Some(&mut comparer))?;
    if let Some(e) = comparer.error {
        return Err(e.into());
    }

    if replace_outputs {
        println!("every matmul output below the table's output column is replaced by llama.cpp's");
    }
    println!(
        "{:<26} {:>16} {:>10} {:>10} {:>16} {:>10} {:>10}  first differing input (pos, col)",
        "weight", "input bits diff", "max abs", "max rel", "output bits diff", "max abs", "max rel"
    );
    let mut first_input: Option<&str> = None;
    let mut first_output: Option<&str> = None;
    for (name, input, output) in &comparer.results {
        let output_cells = output.as_ref().map(Diff::cells).unwrap_or_default();
        println!("{name:<26} {} {output_cells:<38}  {}", input.cells(), input.location());
        if input.n_different_bits > 0 && first_input.is_none() {
            first_input = Some(name);
        }
        if output.as_ref().is_some_and(|d| d.n_different_bits > 0) && first_output.is_none() {
            first_output = Some(name);
        }
    }

    let reference_logits = read_f32(&seq_dir.join("logits.f32"))?;
    let diff = compare(&logits, &reference_logits);
    println!("{:<26} {}", "logits", diff.cells());

    let next_tokens = &tokens[first + 1..];
    let n_scored = next_tokens.len();
    let ours_ppl = chunk_perplexity(&logits[..n_scored * n_vocab], n_vocab, next_tokens);
    let reference_ppl = chunk_perplexity(&reference_logits[..n_scored * n_vocab], n_vocab, next_tokens);
    println!(
        "chunk {seq} perplexity: ours {ours_ppl:.6}, llama.cpp {reference_ppl:.6} ({:+.4}%)",
        (ours_ppl / reference_ppl - 1.0) * 100.0
    );
    println!("first weight input that differs: {}", first_input.unwrap_or("none"));
    println!("first matmul output that differs: {}", first_output.unwrap_or("none"));
    Ok(first_input.is_none() && first_output.is_none() && diff.n_different_bits == 0)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let replace_outputs = args.iter().any(|a| a == "--replace-outputs");
    args.retain(|a| a != "--replace-outputs");
    if args.len() < 2 || args.len() > 3 {
        eprintln!("usage: compare_activations [--replace-outputs] MODEL.gguf DUMP_DIR [SEQ]");
        return ExitCode::from(2);
    }
    let seq = match args.get(2).map(|s| s.parse::<usize>()) {
        None => 0,
        Some(Ok(seq)) => seq,
        Some(Err(e)) => {
            eprintln!("error: invalid SEQ '{}': {e}", args[2]);
            return ExitCode::from(2);
        }
    };

    match run(&PathBuf::from(&args[0]), &PathBuf::from(&args[1]), seq, replace_outputs) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
