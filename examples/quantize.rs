//! `quantize [OPTIONS] INPUT OUTPUT TYPE [THREADS]`: llama-quantize's interface over
//! `kquant::pipeline`. INPUT is a GGUF file or a Hugging Face checkpoint folder
//! (`config.json`, safetensors, `tokenizer.json`), so a checkpoint becomes a Q4_K_M GGUF in
//! one command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use gemma_quant_examples::cli;
use gguf_format::{GgmlType, GgufFile};
use imatrix_collect::Imatrix;
use kquant::pipeline::{check_distinct_paths, quantize_model, ImportanceMatrix, Progress, QuantizeOptions, TensorSource};
use kquant::plan::{FileType, PlanReason, TensorTypeOverride};

/// Quantize a GGUF model or a Hugging Face checkpoint folder, as llama-quantize does.
#[derive(Parser)]
#[command(name = "quantize", version, after_help = TYPES_HELP)]
struct Args {
    /// Allow quantized input tensors: they are dequantized to F32 and quantized again.
    #[arg(long)]
    allow_requantize: bool,

    /// Keep output.weight in its input type.
    #[arg(long)]
    leave_output_tensor: bool,

    /// Give every quantizable tensor the file type's default type, without the mix.
    #[arg(long)]
    pure: bool,

    /// Importance matrix (llama.cpp's GGUF imatrix or legacy .dat) to weight the quantizers.
    #[arg(long, value_name = "FILE")]
    imatrix: Option<PathBuf>,

    /// Use only the imatrix entries whose name contains this text (repeatable).
    #[arg(long, value_name = "NAME", conflicts_with = "exclude_weights")]
    include_weights: Vec<String>,

    /// Drop the imatrix entries whose name contains this text (repeatable).
    #[arg(long, value_name = "NAME")]
    exclude_weights: Vec<String>,

    /// ggml type of output.weight (and of a tied token_embd.weight), e.g. q8_0 or f16.
    #[arg(long, value_name = "TYPE")]
    output_tensor_type: Option<GgmlType>,

    /// ggml type of token_embd.weight, e.g. q8_0 or f16.
    #[arg(long, value_name = "TYPE")]
    token_embedding_type: Option<GgmlType>,

    /// Quantize tensors whose name matches REGEX to TYPE, e.g. attn_v=q8_0 (repeatable).
    #[arg(long = "tensor-type", value_name = "REGEX=TYPE", value_parser = TensorTypeOverride::parse)]
    tensor_types: Vec<TensorTypeOverride>,

    /// Print the plan (one line per tensor) and exit without writing.
    #[arg(long)]
    dry_run: bool,

    /// Input: a GGUF file, or a Hugging Face checkpoint folder.
    input: PathBuf,

    /// Output GGUF file; written to a temporary file and renamed when complete.
    output: PathBuf,

    /// Target file type: Q4_K_M, Q4_0, Q3_K_M, IQ4_XS, ... (see below).
    #[arg(value_name = "TYPE")]
    file_type: FileType,

    /// Worker threads (default: all cores).
    threads: Option<usize>,
}

const TYPES_HELP: &str = "File types: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, \
Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, IQ4_NL, IQ4_XS (Q3_K, Q4_K and Q5_K mean the _M mixes).";

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("quantize: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    if args.input.is_file() {
        check_distinct_paths(&args.input, &args.output).map_err(|e| e.to_string())?;
    }
    let source = open_source(&args.input, &args.output)?;

    let mut options = QuantizeOptions::new(args.file_type);
    options.allow_requantize = args.allow_requantize;
    options.plan.pure = args.pure;
    options.plan.leave_output_tensor = args.leave_output_tensor;
    options.plan.output_tensor_type = args.output_tensor_type;
    options.plan.token_embedding_type = args.token_embedding_type;
    options.plan.tensor_type_overrides = args.tensor_types.clone();
    options.imatrix = match &args.imatrix {
        Some(path) => Some(load_importance(path, &args.include_weights, &args.exclude_weights)?),
        None => None,
    };

    if args.dry_run {
        let model = kquant::pipeline::model_info(source.metadata()).map_err(|e| e.to_string())?;
        let mut plan_options = options.plan.clone();
        plan_options.has_imatrix = options.imatrix.is_some();
        let plan = kquant::plan::plan_quantization(args.file_type, &model, &source.tensor_specs(), &plan_options)
            .map_err(|e| e.to_string())?;
        print!("{plan}");
        return Ok(());
    }

    options.cancel = Some(cli::cancel_flag());
    let pool = cli::thread_pool(args.threads)?;
    let started = std::time::Instant::now();
    tracing::info!(input = %args.input.display(), output = %args.output.display(), file_type = %args.file_type, "quantizing");

    let mut bar = None;
    let report = pool
        .install(|| {
            quantize_model(source.as_ref(), &args.output, &options, &mut |event| match event {
                Progress::Planned { total_bytes, .. } => bar = Some(cli::bytes_progress_bar(total_bytes)),
                Progress::TensorDone { tensor, input_bytes, .. } => {
                    if let Some(bar) = &bar {
                        bar.set_message(tensor.name.clone());
                        bar.inc(input_bytes);
                    }
                }
            })
        })
        .map_err(|e| e.to_string())?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    for t in report.plan.fallbacks() {
        let planned = t.fallback_from.unwrap_or(t.target_type);
        tracing::warn!(
            tensor = %t.name,
            "row length (ne0) {} is not a multiple of {planned}'s block size {}; used {} instead",
            t.dims[0],
            planned.block_size(),
            t.target_type
        );
    }
    for name in &report.missing_imatrix {
        if name == "token_embd.weight" {
            // The embedding is read by row lookup, not by a matmul, so no imatrix tool collects
            // it; llama-quantize quantizes it without importance weights too.
            tracing::info!(tensor = %name, "no imatrix entry, as expected for the token embedding (a row lookup, not a matmul); quantized without importance weights, as llama-quantize does");
        } else {
            tracing::warn!(tensor = %name, "no imatrix entry; quantized without importance weights");
        }
    }
    let overridden = report.plan.tensors.iter().filter(|t| matches!(t.reason, PlanReason::Override(_))).count();
    println!(
        "quantize: wrote {} ({} tensors, {:.2} MiB -> {:.2} MiB, {} fallbacks, {} overrides) in {:.2} s",
        args.output.display(),
        report.plan.tensors.len(),
        report.input_bytes as f64 / (1 << 20) as f64,
        report.output_bytes as f64 / (1 << 20) as f64,
        report.plan.fallbacks().count(),
        overridden,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Opens a GGUF file, or converts a Hugging Face checkpoint folder to a GGUF in the output's
/// folder first (tensors in their stored type, as `convert` writes them without
/// `--outtype`), so that both inputs go through the same pipeline and give the same file.
///
/// NOTE: the converted checkpoint needs temporary disk space of its own size beside the
/// output. It is unlinked as soon as it is memory-mapped, so no file is left behind even
/// when the run is killed.
fn open_source(input: &Path, output: &Path) -> Result<Box<dyn TensorSource>, String> {
    if !input.is_dir() {
        let file = GgufFile::open(input).map_err(|e| format!("{}: {e}", input.display()))?;
        return Ok(Box::new(file));
    }

    let folder = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let converted = folder.join(format!(".{name}.hf-source-{}.gguf", std::process::id()));
    tracing::info!(checkpoint = %input.display(), "converting the Hugging Face checkpoint");
    let options = gemma2_model::ConvertOptions::default();
    gemma2_model::convert_hf_to_gguf(input, &converted, &options).map_err(|e| format!("{}: {e}", input.display()))?;

    let file = GgufFile::open(&converted).map_err(|e| format!("{}: {e}", converted.display()));
    let removed = std::fs::remove_file(&converted);
    let file = file?;
    removed.map_err(|e| format!("cannot remove {}: {e}", converted.display()))?;
    Ok(Box::new(file))
}

/// Loads an imatrix file into the per-tensor mean squares the quantizers take.
fn load_importance(path: &Path, include: &[String], exclude: &[String]) -> Result<ImportanceMatrix, String> {
    let imatrix = Imatrix::load(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut importance = ImportanceMatrix {
        file: path.display().to_string(),
        datasets: imatrix.datasets().to_vec(),
        chunk_count: imatrix.chunk_count(),
        entries: imatrix.entries().iter().map(|(name, entry)| (name.clone(), entry.mean_squares())).collect(),
    };
    importance.filter_entries(include, exclude);
    if importance.entries.is_empty() {
        return Err(format!("{}: no imatrix entries left after --include-weights/--exclude-weights", path.display()));
    }
    tracing::info!(entries = importance.entries.len(), chunks = importance.chunk_count, "loaded imatrix");
    Ok(importance)
}
