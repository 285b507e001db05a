//! `convert HF_DIR [--outtype f32|f16|bf16] [--outfile OUT]`: llama.cpp's
//! `convert_hf_to_gguf.py` for Gemma 2 and Gemma 3 checkpoints, with the full tokenizer
//! metadata.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use gemma_quant_examples::cli;
use gemma2_model::{convert_hf_to_gguf, ConvertOptions, GgmlType};

/// Convert a Hugging Face Gemma 2 / Gemma 3 checkpoint folder to a GGUF file.
#[derive(Parser)]
#[command(name = "convert", version)]
struct Args {
    /// Checkpoint folder: config.json, *.safetensors and tokenizer.json.
    model: PathBuf,

    /// Type of the 2-D weight tensors; norm weights are always F32, as llama.cpp writes them.
    #[arg(long, value_enum, default_value_t = OutType::F16)]
    outtype: OutType,

    /// Output GGUF file [default: <folder name>-<outtype>.gguf beside the folder].
    #[arg(long, value_name = "FILE")]
    outfile: Option<PathBuf>,
}

/// The output types llama.cpp's converter offers that this converter writes.
#[derive(Clone, Copy, ValueEnum)]
enum OutType {
    F32,
    F16,
    Bf16,
}

impl OutType {
    fn ggml_type(self) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 => GgmlType::F16,
            OutType::Bf16 => GgmlType::BF16,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            OutType::F32 => "f32",
            OutType::F16 => "f16",
            OutType::Bf16 => "bf16",
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("convert: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    if !args.model.is_dir() {
        return Err(format!("MODEL {} is not a folder; give a Hugging Face checkpoint folder (config.json, *.safetensors)", args.model.display()));
    }
    let outfile = match &args.outfile {
        Some(path) => path.clone(),
        None => default_outfile(&args.model, args.outtype)?,
    };
    for input in checkpoint_files(&args.model)? {
        cli::check_not_input(&input, &outfile, "--outfile")?;
    }

    let options = ConvertOptions { out_type: Some(args.outtype.ggml_type()), name: None };
    let started = std::time::Instant::now();
    tracing::info!(checkpoint = %args.model.display(), outfile = %outfile.display(), "converting");
    let spinner = cli::progress_bar(1, "model");
    spinner.set_message("reading and writing tensors");
    let summary = convert_hf_to_gguf(&args.model, &outfile, &options).map_err(|e| format!("{}: {e}", args.model.display()));
    spinner.finish_and_clear();
    let summary = summary?;

    println!(
        "convert: wrote {} ({:?}, {} tensors, {:.2} MiB of tensor data) in {:.2} s",
        outfile.display(),
        summary.config.arch,
        summary.n_tensors,
        summary.data_bytes as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Returns `<folder name>-<outtype>.gguf` beside the checkpoint folder, as llama.cpp's
/// converter names its output when `--outfile` is absent.
fn default_outfile(model: &Path, outtype: OutType) -> Result<PathBuf, String> {
    let folder = std::fs::canonicalize(model).map_err(|e| format!("{}: {e}", model.display()))?;
    let name = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".to_owned());
    let parent = folder.parent().unwrap_or(Path::new("."));
    Ok(parent.join(format!("{name}-{}.gguf", outtype.suffix())))
}

/// Lists the files of the checkpoint folder, which the output must not replace.
fn checkpoint_files(model: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(model).map_err(|e| format!("{}: {e}", model.display()))?;
    Ok(entries.filter_map(|entry| entry.ok().map(|e| e.path())).filter(|path| path.is_file()).collect())
}
