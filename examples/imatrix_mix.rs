//! `imatrix-mix --input FILE:WEIGHT ... -o OUT`: a weighted mix of imatrix files, each
//! source normalised by its token count first (`imatrix_collect::mix`), e.g. 0.7 English and
//! 0.3 Japanese.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gemma_quant_examples::cli;
use imatrix_collect::{Imatrix, ImatrixFormat};

/// Mix imatrix files with weights: per column, the weighted mean of each source's mean
/// squared activation.
#[derive(Parser)]
#[command(name = "imatrix-mix", version)]
struct Args {
    /// Source imatrix and its weight, e.g. en.gguf:0.7 (repeatable; only the ratios of the
    /// weights matter; the last ':' separates the weight).
    #[arg(long = "input", value_name = "FILE:WEIGHT", required = true, value_parser = parse_input)]
    inputs: Vec<(PathBuf, f64)>,

    /// Output imatrix file (legacy .dat for a .dat extension, GGUF otherwise); written
    /// atomically.
    #[arg(short = 'o', long = "output-file", value_name = "OUT")]
    output: PathBuf,
}

/// Parses `FILE:WEIGHT`, splitting at the last ':' so that a path may contain one.
fn parse_input(text: &str) -> Result<(PathBuf, f64), String> {
    let (path, weight) = text.rsplit_once(':').ok_or_else(|| format!("'{text}' has no ':WEIGHT'; expected FILE:WEIGHT, e.g. en.gguf:0.7"))?;
    let weight: f64 = weight.parse().map_err(|_| format!("weight '{weight}' is not a number; expected FILE:WEIGHT, e.g. en.gguf:0.7"))?;
    if !weight.is_finite() || weight < 0.0 {
        return Err(format!("weight {weight} must be a finite number >= 0"));
    }
    if path.is_empty() {
        return Err(format!("'{text}' has no file name before ':'"));
    }
    Ok((PathBuf::from(path), weight))
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("imatrix-mix: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    for (path, _) in &args.inputs {
        cli::check_not_input(path, &args.output, "-o")?;
    }

    let mut sources = Vec::with_capacity(args.inputs.len());
    for (path, weight) in &args.inputs {
        let imatrix = Imatrix::load(path).map_err(|e| format!("--input: {e}"))?;
        sources.push((imatrix, *weight));
    }
    let weighted: Vec<(&Imatrix, f64)> = sources.iter().map(|(imatrix, weight)| (imatrix, *weight)).collect();
    let mixed = imatrix_collect::mix(&weighted).map_err(|e| e.to_string())?;

    mixed.save(&args.output, ImatrixFormat::for_output_path(&args.output)).map_err(|e| format!("-o {}: {e}", args.output.display()))?;
    println!(
        "imatrix-mix: mixed {} sources into {} ({} entries, {} chunks)",
        sources.len(),
        args.output.display(),
        mixed.entries().len(),
        mixed.chunk_count()
    );
    Ok(())
}
