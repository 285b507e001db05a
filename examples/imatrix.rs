//! `imatrix -m MODEL -f TEXT [-o imatrix.gguf]`: llama-imatrix's interface over
//! `imatrix_collect`. Collects the importance matrix of a Gemma GGUF model over a
//! calibration text, or with `--in-file` and no `-f` merges existing imatrix files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use gemma_quant_examples::cli;
use gemma2_model::{Model, ModelError};
use imatrix_collect::{collect_imatrix_with_progress, ActivationModel, ChunkReport, CollectParams, Imatrix, ImatrixFormat, MatmulObserver, SaveSchedule};

/// Exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
const EXIT_INTERRUPTED: u8 = 130;

/// Collect an importance matrix (imatrix) as llama-imatrix does, or merge imatrix files.
#[derive(Parser)]
#[command(name = "imatrix", version)]
struct Args {
    /// Model GGUF file (Gemma 2 or Gemma 3).
    #[arg(short = 'm', long, value_name = "MODEL")]
    model: Option<PathBuf>,

    /// Calibration text (read as bytes; invalid UTF-8 is replaced with U+FFFD, with a warning).
    #[arg(short = 'f', long, value_name = "TEXT")]
    file: Option<PathBuf>,

    /// Tokens per chunk (context size); at least 32, so that every matmul gets the 16 rows
    /// llama-imatrix collects.
    #[arg(short = 'c', long = "ctx-size", value_name = "N_CTX", default_value_t = 512, value_parser = parse_n_ctx)]
    n_ctx: usize,

    /// Logical batch size: N / N_CTX chunks are evaluated together, which sets the order in
    /// which the sums are added, as in llama-imatrix.
    #[arg(short = 'b', long = "batch-size", value_name = "N", default_value_t = imatrix_collect::DEFAULT_N_BATCH, value_parser = cli::parse_positive)]
    n_batch: usize,

    /// Physical batch size: matmuls of fewer than 16 rows are left out, per micro-batch.
    #[arg(long = "ubatch-size", value_name = "N", default_value_t = imatrix_collect::DEFAULT_N_UBATCH, value_parser = cli::parse_positive)]
    n_ubatch: usize,

    /// Process at most this many chunks [default: every full chunk of the text].
    #[arg(long, value_name = "N", value_parser = cli::parse_positive)]
    chunks: Option<usize>,

    /// Skip this many leading chunks of the text.
    #[arg(long = "chunk", value_name = "K", default_value_t = 0)]
    skip_chunks: usize,

    /// Output imatrix file; written atomically (temporary file, fsync, rename).
    #[arg(short = 'o', long = "output-file", value_name = "OUT", default_value = "imatrix.gguf")]
    output: PathBuf,

    /// Output format [default: dat for a .dat output, gguf otherwise].
    #[arg(long, value_enum, value_name = "FORMAT")]
    output_format: Option<OutputFormat>,

    /// Existing imatrix file to merge in (repeatable); with no -f, the files are only combined
    /// and saved.
    #[arg(long = "in-file", value_name = "FILE")]
    in_files: Vec<PathBuf>,

    /// Also collect output.weight when it is not tied to token_embd.weight.
    #[arg(long)]
    process_output: bool,

    /// Save the imatrix every N chunks (and at the end).
    #[arg(long, value_name = "N", default_value_t = imatrix_collect::DEFAULT_SAVE_EVERY, value_parser = cli::parse_positive)]
    output_frequency: usize,

    /// Worker threads [default: all cores].
    #[arg(short = 't', long, value_name = "THREADS", value_parser = cli::parse_positive)]
    threads: Option<usize>,

    /// Do not compute the perplexity estimate over each chunk's second half.
    #[arg(long)]
    no_ppl: bool,
}

/// Parses `-c`: at least two halves of [`imatrix_collect::MIN_ROWS`] rows.
fn parse_n_ctx(text: &str) -> Result<usize, String> {
    cli::parse_at_least(text, 2 * imatrix_collect::MIN_ROWS)
}

/// The imatrix file formats llama-imatrix writes.
#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    /// GGUF with <name>.in_sum2 and <name>.counts tensors.
    Gguf,
    /// The legacy .dat stream.
    Dat,
}

impl Args {
    fn format(&self) -> ImatrixFormat {
        match self.output_format {
            Some(OutputFormat::Gguf) => ImatrixFormat::Gguf,
            Some(OutputFormat::Dat) => ImatrixFormat::Dat,
            None => ImatrixFormat::for_output_path(&self.output),
        }
    }
}

/// The end state of a run that did not fail.
enum Outcome {
    Done,
    Interrupted,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    match run(&args) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Interrupted) => ExitCode::from(EXIT_INTERRUPTED),
        Err(message) => {
            eprintln!("imatrix: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<Outcome, String> {
    for input in args.in_files.iter().chain(&args.model).chain(&args.file) {
        cli::check_not_input(input, &args.output, "-o")?;
    }

    let merged = match args.in_files.as_slice() {
        [] => None,
        files => Some(Imatrix::load_merged(files).map_err(|e| format!("--in-file: {e}"))?),
    };

    let Some(text_path) = &args.file else {
        let merged = merged.ok_or("give a calibration text with -f TEXT (and -m MODEL), or imatrix files to combine with --in-file")?;
        merged.save(&args.output, args.format()).map_err(|e| format!("-o {}: {e}", args.output.display()))?;
        println!("imatrix: combined {} files ({} entries, {} chunks) into {}", args.in_files.len(), merged.entries().len(), merged.chunk_count(), args.output.display());
        return Ok(Outcome::Done);
    };
    let model_path = args.model.as_ref().ok_or("-f needs the model: give -m MODEL")?;

    let pool = cli::thread_pool(args.threads)?;
    pool.install(|| collect(args, model_path, text_path, merged))
}

/// Collects over the text, merges `merged` in and saves.
fn collect(args: &Args, model_path: &Path, text_path: &Path, merged: Option<Imatrix>) -> Result<Outcome, String> {
    let model = Model::from_gguf(model_path).map_err(|e| format!("-m: {e}"))?;
    let text = cli::read_text_lossy(text_path).map_err(|e| format!("-f: {e}"))?;
    let cancel = cli::cancel_flag();
    let model = Cancellable { model, cancel: Arc::clone(&cancel) };

    // NOTE: periodic saves hold only this run's sums, so with --in-file they are turned off
    // and the merged result is saved once at the end.
    let save = merged.is_none().then(|| SaveSchedule { path: args.output.clone(), format: args.format(), every: args.output_frequency });
    let params = CollectParams {
        n_ctx: args.n_ctx,
        n_batch: args.n_batch,
        n_ubatch: args.n_ubatch,
        chunks: args.chunks,
        skip_chunks: args.skip_chunks,
        compute_ppl: !args.no_ppl,
        process_output: args.process_output,
        dataset: text_path.display().to_string(),
        save,
    };

    let tokens = tokenize(&model.model, text.as_bytes())?;
    let bar = cli::progress_bar(planned_chunks(tokens.len(), &params) as u64, "chunks");
    let mut print_chunk = |report: &ChunkReport| {
        bar.set_position(report.done as u64);
        if let Some(ppl) = report.ppl {
            bar.suspend(|| {
                print!("[{}]{:.4},", report.done, ppl.ppl);
                let _ = std::io::stdout().flush();
            });
        }
    };
    let outcome = collect_imatrix_with_progress(&model, &tokens, &params, &mut print_chunk);
    bar.finish_and_clear();
    println!();

    if outcome.is_err() && cancel.load(Ordering::SeqCst) {
        let saved = if params.save.is_some() && args.output.exists() { "the last periodic save is kept" } else { "nothing was written" };
        eprintln!("imatrix: interrupted; {saved} at {}", args.output.display());
        return Ok(Outcome::Interrupted);
    }
    let outcome = outcome.map_err(|e| e.to_string())?;

    let mut n_entries = outcome.imatrix.entries().len();
    if let Some(mut merged) = merged {
        merged.merge(&outcome.imatrix).map_err(|e| format!("--in-file: cannot merge with the collected imatrix: {e}"))?;
        merged.save(&args.output, args.format()).map_err(|e| format!("-o {}: {e}", args.output.display()))?;
        n_entries = merged.entries().len();
    }

    if let Some(ppl) = outcome.ppl {
        match ppl.uncertainty {
            Some(error) => println!("Final estimate: PPL = {:.4} +/- {error:.5}", ppl.ppl),
            None => println!("Final estimate: PPL = {:.4}", ppl.ppl),
        }
    }
    println!(
        "imatrix: {} chunks, {} tokens in {:.2} s ({:.1} tokens/s); {} entries saved to {}",
        outcome.n_chunks,
        outcome.n_tokens,
        outcome.elapsed_s,
        outcome.tokens_per_second(),
        n_entries,
        args.output.display()
    );
    Ok(Outcome::Done)
}

/// Tokenizes the calibration text as llama-imatrix's `-f` does: one trailing newline removed,
/// BOS first, special-token text kept as plain text.
fn tokenize(model: &Model, text: &[u8]) -> Result<Vec<u32>, String> {
    const ADD_BOS: bool = true;
    const PARSE_SPECIAL: bool = false;

    let tokenizer = model.tokenizer().ok_or("-m: the model file has no tokenizer (tokenizer.ggml.* keys)")?;
    let text = gemma2_model::tokenizer::trim_prompt_file(text);
    let tokens = tokenizer.encode_bytes(text, ADD_BOS, PARSE_SPECIAL).map_err(|e| format!("-f: {e}"))?;
    tracing::info!(tokens = tokens.len(), "tokenized calibration text");
    Ok(tokens)
}

/// Returns how many chunks the run will process, for the progress bar; the library reports
/// a text that is too short.
fn planned_chunks(n_tokens: usize, params: &CollectParams) -> usize {
    let available = n_tokens.saturating_sub(params.skip_chunks.saturating_mul(params.n_ctx)) / params.n_ctx.max(1);
    params.chunks.map_or(available, |chunks| chunks.min(available))
}

/// A model that refuses to start another chunk once Ctrl-C was pressed, so that collection
/// stops after the current chunk without saving.
struct Cancellable {
    model: Model,
    cancel: Arc<AtomicBool>,
}

impl ActivationModel for Cancellable {
    type Error = ModelError;

    fn bos_token(&self) -> u32 {
        ActivationModel::bos_token(&self.model)
    }

    fn n_vocab(&self) -> usize {
        ActivationModel::n_vocab(&self.model)
    }

    fn evaluate(&self, sequences: &[&[u32]], logits_from: usize, observer: &mut dyn MatmulObserver, on_logits: &mut dyn FnMut(usize, Vec<f32>)) -> Result<(), ModelError> {
        if self.cancel.load(Ordering::SeqCst) {
            return Err(ModelError::InvalidInput("interrupted".to_owned()));
        }
        self.model.evaluate(sequences, logits_from, observer, on_logits)
    }
}
