//! `perplexity -m MODEL -f TEXT [-c 512] [--chunks N]`: llama-perplexity's interface over
//! `ppl_eval`, with its KL-divergence modes and a paired comparison of two models.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;
use gemma_quant_examples::cli;
use gemma2_model::Model;
use indicatif::ProgressBar;
use ppl_eval::{BoxError, ChunkReport, KldBaseReader, LogitsModel, PairedComparison, PerplexityConfig, PerplexityResult};

/// Exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
const EXIT_INTERRUPTED: u8 = 130;

/// Compute perplexity, KL divergence against a base file, or a paired comparison of two
/// models, as llama-perplexity does.
#[derive(Parser)]
#[command(name = "perplexity", version)]
struct Args {
    /// Model GGUF file (Gemma 2 or Gemma 3).
    #[arg(short = 'm', long, value_name = "MODEL")]
    model: PathBuf,

    /// Text to score (read as bytes; invalid UTF-8 is replaced with U+FFFD, with a warning).
    /// Not needed with --kl-divergence, which reads the tokens from the base file.
    #[arg(short = 'f', long, value_name = "TEXT")]
    file: Option<PathBuf>,

    /// Tokens per chunk (context size); the second half of each chunk is scored.
    #[arg(short = 'c', long = "ctx-size", value_name = "N_CTX", default_value_t = 512, value_parser = parse_n_ctx)]
    n_ctx: usize,

    /// Score at most this many chunks [default: every full chunk of the text].
    #[arg(long, value_name = "N", value_parser = cli::parse_positive)]
    chunks: Option<usize>,

    /// Worker threads [default: all cores].
    #[arg(short = 't', long, value_name = "THREADS", value_parser = cli::parse_positive)]
    threads: Option<usize>,

    /// Base file of log-probabilities: written during a normal run, or read with
    /// --kl-divergence.
    #[arg(long, value_name = "FILE")]
    kl_divergence_base: Option<PathBuf>,

    /// Compare MODEL with the base file of --kl-divergence-base and print llama.cpp's KLD
    /// statistics.
    #[arg(long, requires = "kl_divergence_base", conflicts_with = "compare_model")]
    kl_divergence: bool,

    /// Second model to score on the same tokens; prints the paired comparison
    /// (MODEL is the base, MODEL2 the candidate).
    #[arg(long, value_name = "MODEL2")]
    compare_model: Option<PathBuf>,

    /// Also write the results, per-token values included, as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// Parses `-c`: at least [`ppl_eval::MIN_N_CTX`] tokens.
fn parse_n_ctx(text: &str) -> Result<usize, String> {
    cli::parse_at_least(text, ppl_eval::MIN_N_CTX)
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    let cancel = cli::cancel_flag();
    let result = cli::thread_pool(args.threads).and_then(|pool| pool.install(|| run(&args, &cancel)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if cancel.load(Ordering::SeqCst) => {
            eprintln!("perplexity: interrupted; no output file was written");
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Err(message) => {
            eprintln!("perplexity: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args, cancel: &Arc<AtomicBool>) -> Result<(), String> {
    let outputs = args.json.iter().chain(if args.kl_divergence { None } else { args.kl_divergence_base.as_ref() });
    for output in outputs {
        for input in std::iter::once(&args.model).chain(&args.file).chain(&args.compare_model) {
            cli::check_not_input(input, output, "--json/--kl-divergence-base")?;
        }
    }

    let started = std::time::Instant::now();
    let mut model = load_model(&args.model, cancel)?;
    let (json, n_evaluated) = if args.kl_divergence {
        kl_divergence(args, &mut model)?
    } else {
        let text_path = args.file.as_ref().ok_or("-f TEXT is needed (except with --kl-divergence)")?;
        let tokens = tokenize(&model.model, text_path)?;
        let result = score(&mut model, &tokens, args, args.kl_divergence_base.as_deref())?;
        let n_evaluated = result.n_chunk * result.n_ctx;

        match &args.compare_model {
            None => (serde_json::json!({ "model": args.model, "perplexity": result }), n_evaluated),
            Some(path) => {
                let mut candidate = load_model(path, cancel)?;
                println!("{}: candidate", path.display());
                let candidate_result = score(&mut candidate, &tokens, args, None)?;
                let paired = PairedComparison::from_results(&result, &candidate_result).map_err(|e| e.to_string())?;
                println!("\n{paired}");
                let json = serde_json::json!({
                    "model": args.model,
                    "perplexity": result,
                    "compare_model": path,
                    "compare_perplexity": candidate_result,
                    "paired": paired,
                });
                (json, 2 * n_evaluated)
            }
        }
    };

    let seconds = started.elapsed().as_secs_f64();
    eprintln!("perplexity: evaluated {n_evaluated} tokens in {seconds:.2} s ({:.1} tokens/s)", n_evaluated as f64 / seconds);
    if let Some(path) = &args.json {
        let text = serde_json::to_string(&json).map_err(|e| format!("--json: {e}"))?;
        cli::write_atomic(path, text.as_bytes()).map_err(|e| format!("--json: {e}"))?;
    }
    Ok(())
}

/// Scores `tokens` with llama-perplexity's output: `[k]PPL,` per chunk, then the final
/// estimate; writes the KLD base file when `base` is set.
fn score(model: &mut Cancellable, tokens: &[u32], args: &Args, base: Option<&Path>) -> Result<PerplexityResult, String> {
    let mut config = PerplexityConfig::new(args.n_ctx);
    config.max_chunks = args.chunks;

    let n_chunk = (tokens.len() / args.n_ctx).min(args.chunks.unwrap_or(usize::MAX));
    eprintln!("perplexity: calculating perplexity over {n_chunk} chunks, n_ctx={}", args.n_ctx);
    let bar = cli::progress_bar(n_chunk as u64, "chunks");
    let mut print_chunk = |report: &ChunkReport| {
        bar.set_position(report.chunk as u64);
        print_suspended(&bar, &report.to_string());
    };
    let result = match base {
        Some(path) => ppl_eval::perplexity_with_kld_base(model, tokens, &config, path, &mut print_chunk),
        None => ppl_eval::perplexity(model, tokens, &config, &mut print_chunk),
    };
    bar.finish_and_clear();
    let result = result.map_err(|e| e.to_string())?;
    println!("\n{result}");
    Ok(result)
}

/// Reads the base file and prints llama-perplexity's `--kl-divergence` table and statistics.
fn kl_divergence(args: &Args, model: &mut Cancellable) -> Result<(serde_json::Value, usize), String> {
    let base_path = args.kl_divergence_base.as_ref().ok_or("--kl-divergence needs --kl-divergence-base FILE")?;
    let mut reader = KldBaseReader::open(base_path).map_err(|e| format!("--kl-divergence-base {}: {e}", base_path.display()))?;
    let header = *reader.header();
    let n_evaluated = header.n_ctx * header.n_chunk;

    println!("chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS            Same top p");
    let bar = cli::progress_bar(header.n_chunk as u64, "chunks");
    let result = ppl_eval::kl_divergence(model, &mut reader, |report| {
        bar.set_position(report.chunk as u64);
        print_suspended(&bar, &format!("{report}\n"));
    });
    bar.finish_and_clear();
    let result = result.map_err(|e| e.to_string())?;
    println!("\n{}", result.stats);
    Ok((serde_json::json!({ "model": args.model, "kl_divergence": result }), n_evaluated))
}

/// Prints `text` to stdout without a newline while the progress bar is hidden.
fn print_suspended(bar: &ProgressBar, text: &str) {
    bar.suspend(|| {
        print!("{text}");
        let _ = std::io::stdout().flush();
    });
}

/// Tokenizes the text as llama-perplexity's `-f` does: one trailing newline removed, BOS
/// first, special-token text kept as plain text.
fn tokenize(model: &Model, path: &Path) -> Result<Vec<u32>, String> {
    let text = cli::read_text_lossy(path).map_err(|e| format!("-f: {e}"))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let tokens = ppl_eval::gemma2::tokenize_for_perplexity(model, text).map_err(|e| format!("-f {}: {e}", path.display()))?;
    tracing::info!(tokens = tokens.len(), "tokenized {}", path.display());
    Ok(tokens)
}

fn load_model(path: &Path, cancel: &Arc<AtomicBool>) -> Result<Cancellable, String> {
    let model = Model::from_gguf(path).map_err(|e| format!("-m: {e}"))?;
    Ok(Cancellable { model, cancel: Arc::clone(cancel) })
}

/// A model that refuses to start another chunk once Ctrl-C was pressed, so that a run stops
/// after the current chunk and its base file writer removes its temporary file.
struct Cancellable {
    model: Model,
    cancel: Arc<AtomicBool>,
}

impl LogitsModel for Cancellable {
    fn n_vocab(&self) -> usize {
        LogitsModel::n_vocab(&self.model)
    }

    fn bos_token(&self) -> Option<u32> {
        LogitsModel::bos_token(&self.model)
    }

    fn eval_chunk(&mut self, tokens: &[u32], first_output: usize) -> Result<Vec<f32>, BoxError> {
        if self.cancel.load(Ordering::SeqCst) {
            return Err("interrupted".into());
        }
        self.model.eval_chunk(tokens, first_output)
    }
}
