//! `imatrix-compare A B [--json]`: per-tensor cosine similarity, Spearman correlation and
//! top-1% overlap of two imatrix files (GGUF or legacy .dat), from `imatrix_collect::compare`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gemma_quant_examples::cli;
use imatrix_collect::Imatrix;

/// Compare two importance matrices tensor by tensor.
#[derive(Parser)]
#[command(name = "imatrix-compare", version)]
#[command(after_help = "Each tensor's columns are compared by their mean squared activation (in_sum2 / count): \
cosine similarity and Spearman rank correlation (both in [-1, 1]) and the share of the top 1% columns of A \
that are also in the top 1% of B (in [0, 1]).")]
struct Args {
    /// First imatrix file (GGUF or legacy .dat).
    a: PathBuf,

    /// Second imatrix file (GGUF or legacy .dat).
    b: PathBuf,

    /// Print the comparison as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("imatrix-compare: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let a = Imatrix::load(&args.a).map_err(|e| format!("A: {e}"))?;
    let b = Imatrix::load(&args.b).map_err(|e| format!("B: {e}"))?;
    let comparison = imatrix_collect::compare(&a, &b);

    if args.json {
        println!("{}", comparison.to_json().map_err(|e| e.to_string())?);
    } else {
        print!("{comparison}");
    }
    Ok(())
}
