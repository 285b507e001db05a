//! `gguf-dump FILE`: print a GGUF file's header: version, alignment, every metadata pair,
//! every tensor info and a count per ggml type. `--json` prints the same as JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gguf_format::{Array, GgmlType, GgufError, GgufFile, Value};
use serde_json::{json, Value as Json};

/// Print the header of a GGUF file: metadata, tensor infos and a per-type summary.
#[derive(Parser)]
#[command(name = "gguf-dump", version)]
struct Args {
    /// GGUF file to read.
    file: PathBuf,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,

    /// Number of leading items shown for each metadata array.
    #[arg(long, default_value_t = 8, value_name = "N")]
    max_items: usize,

    /// Show every item of every array (the Gemma 3 vocabulary has 262144).
    #[arg(long)]
    full_arrays: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();

    let file = match GgufFile::open(&args.file) {
        Ok(file) => file,
        Err(err) => {
            // An I/O error already names the path.
            match err {
                GgufError::Io { .. } => eprintln!("gguf-dump: {err}"),
                _ => eprintln!("gguf-dump: {}: {err}", args.file.display()),
            }
            return ExitCode::FAILURE;
        }
    };

    let max_items = if args.full_arrays {
        usize::MAX
    } else {
        args.max_items
    };
    if args.json {
        println!("{:#}", to_json(&file, max_items));
    } else {
        print_text(&args.file, &file, max_items);
    }
    ExitCode::SUCCESS
}

/// Returns the number of tensors and their total bytes per ggml type.
fn type_summary(file: &GgufFile) -> BTreeMap<GgmlType, (usize, u64)> {
    let mut summary: BTreeMap<GgmlType, (usize, u64)> = BTreeMap::new();
    for t in file.tensors() {
        let entry = summary.entry(t.ggml_type).or_default();
        entry.0 += 1;
        entry.1 += t.size_bytes as u64;
    }
    summary
}

fn print_text(path: &std::path::Path, file: &GgufFile, max_items: usize) {
    println!("file: {}", path.display());
    println!("version: {}", file.version());
    println!("alignment: {} bytes", file.alignment());
    println!("data offset: {} bytes", file.data_offset());

    println!("\nmetadata: {} pairs", file.metadata().len());
    for (key, value) in file.metadata().iter() {
        println!("  {key}: {}", describe_value(value, max_items));
    }

    println!("\ntensors: {}", file.tensors().len());
    println!(
        "  {:<40} {:<24} {:<8} {:>12} {:>12}",
        "name", "dims", "type", "offset", "bytes"
    );
    for t in file.tensors() {
        let dims = format!("{:?}", t.dims);
        println!(
            "  {:<40} {:<24} {:<8} {:>12} {:>12}",
            t.name,
            dims,
            t.ggml_type.name(),
            t.offset,
            t.size_bytes
        );
    }

    println!("\ntensors per type:");
    for (ggml_type, (count, bytes)) in type_summary(file) {
        println!(
            "  {:<8} {count:>5} tensors {bytes:>14} bytes",
            ggml_type.name()
        );
    }
}

/// Formats a value as `type = value`, an array as `array[type; len] = [first items, ...]`.
fn describe_value(value: &Value, max_items: usize) -> String {
    match value {
        Value::Array(array) => {
            let n_shown = array.len().min(max_items);
            let mut items: Vec<String> = (0..n_shown)
                .filter_map(|i| array.get(i))
                .map(|v| scalar_text(&v))
                .collect();
            if n_shown < array.len() {
                items.push("...".to_string());
            }
            format!(
                "array[{}; {}] = [{}]",
                array.element_type(),
                array.len(),
                items.join(", ")
            )
        }
        scalar => format!("{} = {}", scalar.value_type(), scalar_text(scalar)),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::F32(v) => format!("{v:?}"),
        Value::F64(v) => format!("{v:?}"),
        other => scalar_json(other).to_string(),
    }
}

fn scalar_json(value: &Value) -> Json {
    match value {
        Value::U8(v) => json!(v),
        Value::I8(v) => json!(v),
        Value::U16(v) => json!(v),
        Value::I16(v) => json!(v),
        Value::U32(v) => json!(v),
        Value::I32(v) => json!(v),
        // JSON has no NaN or infinity; serde_json writes them as null. The f32 goes through
        // its shortest decimal form, so 1e-6 prints as 1e-6, not as the widened 9.99...e-7.
        Value::F32(v) => json!(v.to_string().parse::<f64>().ok()),
        Value::Bool(v) => json!(v),
        Value::String(v) => json!(v),
        Value::U64(v) => json!(v),
        Value::I64(v) => json!(v),
        Value::F64(v) => json!(v),
        Value::Array(array) => array_json(array, usize::MAX),
    }
}

fn array_json(array: &Array, max_items: usize) -> Json {
    let n_shown = array.len().min(max_items);
    Json::Array(
        (0..n_shown)
            .filter_map(|i| array.get(i))
            .map(|v| scalar_json(&v))
            .collect(),
    )
}

fn to_json(file: &GgufFile, max_items: usize) -> Json {
    let metadata: Vec<Json> = file
        .metadata()
        .iter()
        .map(|(key, value)| match value {
            Value::Array(array) => json!({
                "key": key,
                "type": "array",
                "element_type": array.element_type().name(),
                "len": array.len(),
                "truncated": array.len() > max_items,
                "value": array_json(array, max_items),
            }),
            scalar => json!({ "key": key, "type": scalar.value_type().name(), "value": scalar_json(scalar) }),
        })
        .collect();

    let tensors: Vec<Json> = file
        .tensors()
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "dims": t.dims,
                "type": t.ggml_type.name(),
                "offset": t.offset,
                "bytes": t.size_bytes,
            })
        })
        .collect();

    let per_type: serde_json::Map<String, Json> = type_summary(file)
        .into_iter()
        .map(|(ggml_type, (count, bytes))| {
            (
                ggml_type.name().to_string(),
                json!({ "tensors": count, "bytes": bytes }),
            )
        })
        .collect();

    json!({
        "version": file.version(),
        "alignment": file.alignment(),
        "data_offset": file.data_offset(),
        "metadata": metadata,
        "tensors": tensors,
        "tensors_per_type": per_type,
    })
}
