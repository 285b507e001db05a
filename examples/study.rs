//! `study [OPTIONS] --model MODEL --out DIR`: the imatrix quantization study in one command.
//! Defaults reproduce the published layout: Q4_K_M M/L/fp16, Q4_0 pure, Q3_K_M and IQ4_XS,
//! each without an imatrix and with the en, enja and enja-mixed imatrices, measured on
//! wiki.test.raw and ja-wiki.test.raw. Rerunning the command resumes and reuses every
//! finished step.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gemma_quant_examples::cli;
use quant_study::{run_study, CalibrationSet, EvalText, ImatrixMode, Quantization, StudyError, StudySpec};

/// Quantize a Gemma model in every study cell, measure each one and write the report.
#[derive(Parser)]
#[command(name = "study", version, after_help = AFTER_HELP)]
struct Args {
    /// Model: a GGUF file (a quantized one is dequantized to an F32 base) or a Hugging Face folder.
    #[arg(long, value_name = "PATH", default_value = "models/gemma-3-270m-q4_k_m.gguf")]
    model: PathBuf,

    /// Output folder for results, charts, manifest, imatrices and the cache.
    #[arg(long, value_name = "DIR", default_value = "study-out")]
    out: PathBuf,

    /// Folder of the default texts (calibration_datav3.txt, ja-calib-jaquad-train.txt,
    /// wiki.test.raw, ja-wiki.test.raw).
    #[arg(long, value_name = "DIR", default_value = "data")]
    data: PathBuf,

    /// Calibration set NAME=FILE[:CHUNKS] (repeatable); replaces the default en and ja sets.
    #[arg(long = "calibration", value_name = "NAME=FILE[:CHUNKS]")]
    calibration: Vec<String>,

    /// Imatrix mode (repeatable): none, SET, NAME=SET+SET (merged) or NAME=SET:W+SET:W
    /// (mixed by per-token means); replaces the default none, en, enja=en+ja, enja-mixed=en:0.5+ja:0.5.
    #[arg(long = "mode", value_name = "MODE")]
    modes: Vec<String>,

    /// Quantization TYPE[:VARIANT,...] (repeatable), variants M, L, fp16, pure; replaces the
    /// default Q4_K_M:M,L,fp16  Q4_0:pure  Q3_K_M  IQ4_XS.
    #[arg(long = "quant", value_name = "TYPE[:VARIANTS]")]
    quants: Vec<String>,

    /// Evaluation text NAME=FILE (repeatable); replaces the default wiki and ja-wiki.
    #[arg(long = "text", value_name = "NAME=FILE")]
    texts: Vec<String>,

    /// Evaluation chunks of n_ctx tokens per text (llama-perplexity --chunks).
    #[arg(long, default_value_t = quant_study::DEFAULT_EVAL_CHUNKS)]
    chunks: usize,

    /// Collection chunks of every calibration set, overriding each set's own limit.
    #[arg(long, value_name = "N")]
    collect_chunks: Option<usize>,

    /// KL-divergence chunks per text against the base (0: off). The base file takes about
    /// n_ctx/2 x 2 x n_vocab bytes per chunk (134 MB for Gemma).
    #[arg(long, default_value_t = quant_study::DEFAULT_KLD_CHUNKS)]
    kld_chunks: usize,

    /// Tokens per chunk for collection and evaluation (-c).
    #[arg(long, default_value_t = quant_study::DEFAULT_N_CTX)]
    n_ctx: usize,

    /// Keep the quantized GGUF files under DIR/models after they are evaluated.
    #[arg(long)]
    keep_models: bool,

    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

const AFTER_HELP: &str = "Outputs in DIR: results.md, results.json, results.csv, charts/ppl-<text>.png, manifest.json. \
Interrupt with Ctrl-C and run the same command again to resume.";

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();

    // A value clap accepts but the study rejects (a bad --mode or --quant) is a bad argument
    // too, so it gets clap's status 2.
    let spec = match build_spec(&args) {
        Ok(spec) => spec,
        Err(error) => {
            eprintln!("study: {error}");
            return ExitCode::from(2);
        }
    };
    match run(&args, spec) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("study: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args, spec: StudySpec) -> Result<(), String> {
    let pool = cli::thread_pool(args.threads)?;
    let cancel = cli::cancel_flag();

    let bar = cli::progress_bar(0, "units");
    let mut on_progress = |p: &quant_study::StudyProgress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(p.step.clone());
    };
    let results = pool.install(|| run_study(&spec, Some(cancel), &mut on_progress));
    bar.finish_and_clear();
    let results = results.map_err(|e| e.to_string())?;

    println!("{}", quant_study::render_markdown(&results));
    println!("results written to {}", spec.out.display());
    for text in &spec.texts {
        println!("chart for {}: {}", text.name, spec.out.join("charts").join(format!("ppl-{}.png", text.name)).display());
    }
    Ok(())
}

fn build_spec(args: &Args) -> Result<StudySpec, StudyError> {
    let mut spec = StudySpec::reference(&args.model, &args.data, &args.out);
    if !args.calibration.is_empty() {
        spec.calibration = args.calibration.iter().map(|c| parse_calibration(c)).collect::<Result<_, _>>()?;
    }
    if let Some(chunks) = args.collect_chunks {
        spec.calibration.iter_mut().for_each(|c| c.chunks = Some(chunks));
    }
    if !args.modes.is_empty() {
        spec.modes = args.modes.iter().map(|m| ImatrixMode::parse(m).map_err(|e| flag_error("--mode", e))).collect::<Result<_, _>>()?;
    }
    if !args.quants.is_empty() {
        spec.quantizations = Vec::new();
        for quant in &args.quants {
            spec.quantizations.extend(Quantization::parse_list(quant).map_err(|e| flag_error("--quant", e))?);
        }
    }
    if !args.texts.is_empty() {
        spec.texts = args.texts.iter().map(|t| parse_text(t)).collect::<Result<_, _>>()?;
    }
    spec.eval_chunks = args.chunks;
    spec.kld_chunks = args.kld_chunks.min(args.chunks);
    if spec.kld_chunks < args.kld_chunks {
        tracing::info!(kld_chunks = spec.kld_chunks, "--kld-chunks lowered to --chunks");
    }
    spec.n_ctx = args.n_ctx;
    spec.keep_models = args.keep_models;
    Ok(spec)
}

/// Prefixes a specification error with the flag that carried the value.
fn flag_error(flag: &str, error: StudyError) -> StudyError {
    match error {
        StudyError::InvalidSpec(message) => StudyError::InvalidSpec(format!("{flag}: {message}")),
        other => StudyError::InvalidSpec(format!("{flag}: {other}")),
    }
}

/// Parses `NAME=FILE[:CHUNKS]`.
fn parse_calibration(text: &str) -> Result<CalibrationSet, StudyError> {
    let invalid = || StudyError::InvalidSpec(format!("--calibration '{text}': expected NAME=FILE or NAME=FILE:CHUNKS"));
    let (name, rest) = text.split_once('=').ok_or_else(invalid)?;
    let (path, chunks) = match rest.rsplit_once(':') {
        Some((path, chunks)) if chunks.chars().all(|c| c.is_ascii_digit()) && !chunks.is_empty() => (path, Some(chunks.parse().map_err(|_| invalid())?)),
        _ => (rest, None),
    };
    Ok(CalibrationSet { name: name.to_owned(), path: PathBuf::from(path), chunks })
}

/// Parses `NAME=FILE`.
fn parse_text(text: &str) -> Result<EvalText, StudyError> {
    let (name, path) = text.split_once('=').ok_or_else(|| StudyError::InvalidSpec(format!("--text '{text}': expected NAME=FILE")))?;
    Ok(EvalText { name: name.to_owned(), path: PathBuf::from(path) })
}
