//! `tokenize -m MODEL (-p PROMPT | -f FILE) [--ids]`: llama-tokenize's interface over
//! `gemma2_model::GemmaTokenizer`. MODEL is a GGUF file or a Hugging Face `tokenizer.json`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Parser};
use gemma_quant_examples::cli;
use gemma2_model::GemmaTokenizer;
use gguf_format::GgufFile;

/// Tokenize a prompt with a Gemma vocabulary, printing token ids as llama-tokenize does.
#[derive(Parser)]
#[command(name = "tokenize", version)]
#[command(group(ArgGroup::new("input").required(true).args(["prompt", "file"])))]
struct Args {
    /// Model: a GGUF file with tokenizer.ggml.* keys, or a Hugging Face tokenizer.json.
    #[arg(short = 'm', long, value_name = "MODEL")]
    model: PathBuf,

    /// Text to tokenize.
    #[arg(short = 'p', long, value_name = "PROMPT")]
    prompt: Option<String>,

    /// Read the text from this file (invalid UTF-8 is replaced with U+FFFD, with a warning).
    #[arg(short = 'f', long, value_name = "FILE")]
    file: Option<PathBuf>,

    /// Print only the ids, as a bracketed list: [2, 9259, 1902].
    #[arg(long)]
    ids: bool,

    /// Do not prepend the BOS token (default: prepend it, as llama-tokenize does).
    #[arg(long)]
    no_bos: bool,

    /// Keep special-token text such as <start_of_turn> as plain text (default: parse it).
    #[arg(long)]
    no_parse_special: bool,

    /// Keep backslash escapes such as \n as typed (default: turn \n, \t, \r, \\, \', \" and
    /// \xHH into their characters).
    #[arg(long)]
    no_escape: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tokenize: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let tokenizer = load_tokenizer(&args.model)?;
    let text = match (&args.prompt, &args.file) {
        (Some(prompt), _) => prompt.clone(),
        (None, Some(file)) => cli::read_text_lossy(file)?,
        (None, None) => return Err("give the text with -p PROMPT or -f FILE".to_owned()),
    };
    let text = if args.no_escape { text.into_bytes() } else { process_escapes(&text) };

    let add_bos = !args.no_bos;
    let ids = tokenizer.encode_bytes(&text, add_bos, !args.no_parse_special).map_err(|e| e.to_string())?;

    let mut out = std::io::stdout().lock();
    let written = if args.ids { print_ids(&mut out, &ids) } else { print_pieces(&mut out, &tokenizer, &ids) };
    written.and_then(|()| out.flush()).map_err(|e| format!("cannot write to stdout: {e}"))
}

/// Loads the vocabulary from a GGUF file's `tokenizer.ggml.*` keys or from a `tokenizer.json`,
/// detected by the file's first bytes.
fn load_tokenizer(path: &Path) -> Result<GemmaTokenizer, String> {
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut magic));
    let read = read.map_err(|e| format!("-m {}: {e}", path.display()))?;

    if read == magic.len() && &magic == b"GGUF" {
        let file = GgufFile::open(path).map_err(|e| format!("-m {}: {e}", path.display()))?;
        GemmaTokenizer::from_gguf_metadata(file.metadata()).map_err(|e| format!("-m {}: {e}", path.display()))
    } else {
        GemmaTokenizer::from_tokenizer_json(path)
            .map_err(|e| format!("-m {}: neither a GGUF file nor a readable tokenizer.json: {e}", path.display()))
    }
}

/// Writes `[id, id, ...]` and a newline, llama-tokenize's `--ids` format.
fn print_ids(out: &mut impl Write, ids: &[u32]) -> std::io::Result<()> {
    let list: Vec<String> = ids.iter().map(u32::to_string).collect();
    writeln!(out, "[{}]", list.join(", "))
}

/// Writes one `    id -> 'piece'` line per token, the piece as the detokenizer gives it
/// (byte tokens as their raw byte).
fn print_pieces(out: &mut impl Write, tokenizer: &GemmaTokenizer, ids: &[u32]) -> std::io::Result<()> {
    for &id in ids {
        let piece = tokenizer.decode_bytes(&[id]).map_err(std::io::Error::other)?;
        write!(out, "{id:6} -> '")?;
        out.write_all(&piece)?;
        writeln!(out, "'")?;
    }
    Ok(())
}

/// Replaces the backslash escapes llama.cpp's prompt options understand: `\n`, `\r`, `\t`,
/// `\'`, `\"`, `\\` and `\xHH`; any other backslash is kept as typed.
fn process_escapes(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }

        let escaped = match bytes[i + 1] {
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'\'' => Some(b'\''),
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            _ => None,
        };
        if let Some(byte) = escaped {
            out.push(byte);
            i += 2;
        } else if let Some(byte) = hex_escape(&bytes[i + 1..]) {
            out.push(byte);
            i += 4;
        } else {
            out.push(b'\\');
            i += 1;
        }
    }
    out
}

/// Reads `xHH` (two hex digits) at the start of `rest`.
fn hex_escape(rest: &[u8]) -> Option<u8> {
    let digits = rest.strip_prefix(b"x")?.get(..2)?;
    u8::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}
