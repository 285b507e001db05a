//! Perplexity and KL-divergence runs, each cached by its inputs.

use std::path::PathBuf;

use gemma2_model::Model;
use ppl_eval::{kl_divergence, perplexity, perplexity_with_kld_base, KldBaseReader, PerplexityConfig, PerplexityResult};
use serde::{Deserialize, Serialize};

use crate::cache::{cache_key, read_cached, sha256_file, write_json, Cached};
use crate::error::StudyError;
use crate::results::TextEval;
use crate::runner::{Runner, Timer};
use crate::spec::EvalText;
use crate::TOOL_VERSION;

/// An evaluation text, tokenized once for every model.
pub(crate) struct Tokenized {
    pub text: EvalText,
    pub sha256: String,
    pub tokens: Vec<u32>,
}

/// Reads and tokenizes every evaluation text with the base model's tokenizer, as
/// llama-perplexity does (BOS first, special-token text kept as text).
pub(crate) fn tokenize_texts(runner: &Runner<'_>, model: &Model) -> Result<Vec<Tokenized>, StudyError> {
    let mut texts = Vec::new();
    for text in &runner.spec.texts {
        let bytes = std::fs::read(&text.path).map_err(|e| StudyError::io(&text.path, e))?;
        // llama-perplexity drops one trailing newline of its `-f` file before tokenizing.
        let decoded = String::from_utf8_lossy(gemma2_model::tokenizer::trim_prompt_file(&bytes));
        let tokens = ppl_eval::gemma2::tokenize_for_perplexity(model, &decoded).map_err(|e| StudyError::Eval { what: format!("tokenizing {}", text.name), source: e })?;
        let needed = runner.spec.n_ctx * runner.spec.eval_chunks;
        if tokens.len() < needed {
            tracing::warn!(text = %text.name, tokens = tokens.len(), needed, "text is shorter than --chunks x n_ctx; fewer chunks are evaluated");
        }
        texts.push(Tokenized { text: text.clone(), sha256: sha256_file(&text.path)?, tokens });
    }
    Ok(texts)
}

/// A cached evaluation: the perplexity run with its per-token NLLs, and KL statistics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EvalRecord {
    pub ppl: PerplexityResult,
    pub kld: Option<ppl_eval::KldStats>,
}

impl EvalRecord {
    pub fn summary(&self, text: &str, seconds: f64) -> TextEval {
        TextEval {
            text: text.to_owned(),
            ppl: self.ppl.ppl,
            ppl_err: self.ppl.ppl_err,
            n_chunk: self.ppl.n_chunk,
            n_tokens: self.ppl.n_scored(),
            kld: self.kld.clone(),
            seconds,
        }
    }
}

/// Returns the cache key of evaluating the model with key `model_key` on `text`.
pub(crate) fn eval_key(runner: &Runner<'_>, model_key: &str, text: &Tokenized, kld_base_key: Option<&str>) -> String {
    cache_key(&[
        ("step", "evaluate"),
        ("tool", TOOL_VERSION),
        ("model", model_key),
        ("text", &text.sha256),
        ("chunks", &runner.spec.eval_chunks.to_string()),
        ("n_ctx", &runner.spec.n_ctx.to_string()),
        ("kld", kld_base_key.unwrap_or("none")),
    ])
}

/// Returns where the evaluation of `label` on `text` is cached.
pub(crate) fn eval_record_path(runner: &Runner<'_>, label: &str, text: &str) -> PathBuf {
    runner.folder("cache").join(format!("eval-{label}-{text}.json"))
}

/// A KL-divergence base file of one text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KldBase {
    pub path: PathBuf,
    pub key: String,
}

/// Writes (or reuses) the base's `--kl-divergence-base` file of each text over the first
/// `kld_chunks` chunks. Returns one entry per text, `None` when KL divergence is off.
pub(crate) fn kld_bases(runner: &mut Runner<'_>, base_key: &str, base_model: &Model, texts: &[Tokenized]) -> Result<Vec<Option<KldBase>>, StudyError> {
    let chunks = runner.spec.kld_chunks;
    let mut bases = Vec::new();
    for text in texts {
        if chunks == 0 {
            bases.push(None);
            continue;
        }
        runner.check_cancel()?;
        let step = format!("KL-divergence base on {}", text.text.name);
        runner.announce(&step);

        let key = cache_key(&[
            ("step", "kld-base"),
            ("tool", TOOL_VERSION),
            ("base", base_key),
            ("text", &text.sha256),
            ("chunks", &chunks.to_string()),
            ("n_ctx", &runner.spec.n_ctx.to_string()),
        ]);
        let path = runner.folder("kld").join(format!("base-{}.kld", text.text.name));
        let record = runner.folder("cache").join(format!("kld-base-{}.json", text.text.name));
        if let Some(cached) = read_cached::<KldBase>(&record, &key) {
            if path.is_file() {
                runner.record(&step, cached.seconds, false);
                runner.advance(chunks as u64, &step);
                bases.push(Some(cached.value));
                continue;
            }
        }

        let timer = Timer::start();
        std::fs::create_dir_all(runner.folder("kld")).map_err(|e| StudyError::io(runner.folder("kld"), e))?;
        let config = PerplexityConfig::new(runner.spec.n_ctx).with_max_chunks(chunks);
        let mut model = base_model.clone();
        let start_done = runner.done;
        perplexity_with_kld_base(&mut model, &text.tokens, &config, &path, |report| {
            runner.done = start_done + report.chunk as u64;
            runner.announce(&step);
        })
        .map_err(|e| StudyError::Eval { what: step.clone(), source: e })?;
        runner.done = start_done;

        let base = KldBase { path, key: key.clone() };
        let seconds = timer.seconds();
        write_json(&record, &Cached { key, seconds, value: base.clone() })?;
        runner.record(&step, seconds, true);
        runner.advance(chunks as u64, &step);
        bases.push(Some(base));
    }
    Ok(bases)
}

/// Evaluates `model` on `text`: perplexity over `eval_chunks` chunks and, with a KL base,
/// KL divergence over that file's chunks. The caller caches the record.
pub(crate) fn evaluate(runner: &mut Runner<'_>, step: &str, model: &Model, text: &Tokenized, kld_base: Option<&KldBase>) -> Result<EvalRecord, StudyError> {
    let config = PerplexityConfig::new(runner.spec.n_ctx).with_max_chunks(runner.spec.eval_chunks);
    let mut model = model.clone();
    let start_done = runner.done;
    let ppl = perplexity(&mut model, &text.tokens, &config, |report| {
        runner.done = start_done + report.chunk as u64;
        runner.announce(step);
    })
    .map_err(|e| StudyError::Eval { what: step.to_owned(), source: e })?;

    let kld = match kld_base {
        None => None,
        Some(base) => {
            let mut reader = KldBaseReader::open(&base.path).map_err(|e| StudyError::Eval { what: step.to_owned(), source: e })?;
            let kld_start = runner.done;
            let result = kl_divergence(&mut model, &mut reader, |report| {
                runner.done = kld_start + report.chunk as u64;
                runner.announce(step);
            })
            .map_err(|e| StudyError::Eval { what: format!("{step} (KL divergence)"), source: e })?;
            Some(result.stats)
        }
    };
    runner.done = start_done;
    Ok(EvalRecord { ppl, kld })
}

/// Returns the cached record at `path` when its key matches.
pub(crate) fn cached_eval(path: &std::path::Path, key: &str) -> Option<Cached<EvalRecord>> {
    read_cached(path, key)
}

/// Caches an evaluation record.
pub(crate) fn store_eval(path: &std::path::Path, key: &str, seconds: f64, record: &EvalRecord) -> Result<(), StudyError> {
    write_json(path, &Cached { key: key.to_owned(), seconds, value: record.clone() })
}
