//! Computes perplexity or KL divergence of a Gemma GGUF model, with
//! llama-perplexity's options and output.
//!
//! ```text
//! cargo run --release -p ppl-eval --features gemma2 --example text_perplexity -- \
//!     -m models/gemma-3-270m-q4_k_m.gguf -f data/wiki.test.raw -c 512 --chunks 20 -t 2
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use gemma2_model::Model;
use ppl_eval::gemma2::tokenize_for_perplexity;
use ppl_eval::{kl_divergence, perplexity, perplexity_with_kld_base, KldBaseReader, PerplexityConfig};

#[derive(Debug, Parser)]
#[command(about = "Perplexity and KL divergence as llama-perplexity computes them")]
struct Args {
    /// GGUF model file.
    #[arg(short = 'm', long)]
    model: PathBuf,

    /// Text file to score; not needed with --kl-divergence, which reads the tokens from the base file.
    #[arg(short = 'f', long)]
    file: Option<PathBuf>,

    /// Tokens per chunk.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    n_ctx: usize,

    /// Maximum number of chunks; all full chunks when absent.
    #[arg(long)]
    chunks: Option<usize>,

    /// Base file of log-probabilities: written during a perplexity run, read with --kl-divergence.
    #[arg(long = "kl-divergence-base")]
    kl_divergence_base: Option<PathBuf>,

    /// Compare the model with the base file given by --kl-divergence-base.
    #[arg(long = "kl-divergence")]
    kl_divergence: bool,

    /// Worker threads; rayon's default (all cores) when absent.
    #[arg(short = 't', long)]
    threads: Option<usize>,

    /// Also write the result, per-token values included, as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    if let Some(threads) = args.threads {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build_global()?;
    }

    let mut model = Model::from_gguf(&args.model)?;
    let start = Instant::now();

    let (json, n_evaluated) = if args.kl_divergence {
        let base_path = args
            .kl_divergence_base
            .as_ref()
            .ok_or("--kl-divergence needs --kl-divergence-base FILE")?;
        let mut reader = KldBaseReader::open(base_path)?;
        let n_evaluated = reader.header().n_ctx * reader.header().n_chunk;

        println!("chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS            Same top p");
        let result = kl_divergence(&mut model, &mut reader, |report| println!("{report}"))?;
        println!("\n{}", result.stats);
        (serde_json::to_string(&result)?, n_evaluated)
    } else {
        let file = args.file.as_ref().ok_or("perplexity needs -f TEXT")?;
        let text = std::fs::read_to_string(file)?;
        let tokens = tokenize_for_perplexity(&model, &text)?;
        let mut config = PerplexityConfig::new(args.n_ctx);
        config.max_chunks = args.chunks;

        let mut print_chunk = |report: &ppl_eval::ChunkReport| {
            print!("{report}");
            let _ = std::io::stdout().flush();
        };
        let result = match &args.kl_divergence_base {
            Some(path) => perplexity_with_kld_base(&mut model, &tokens, &config, path, &mut print_chunk)?,
            None => perplexity(&mut model, &tokens, &config, &mut print_chunk)?,
        };
        println!("\n{result}");
        (serde_json::to_string(&result)?, result.n_chunk * result.n_ctx)
    };

    let seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "evaluated {n_evaluated} tokens in {seconds:.2} s: {:.1} tokens/s",
        n_evaluated as f64 / seconds
    );

    if let Some(path) = &args.json {
        std::fs::write(path, json)?;
    }
    Ok(())
}
