//! Collecting each calibration set's imatrix once and combining them into each mode's.

use std::collections::BTreeMap;
use std::path::PathBuf;

use gemma2_model::Model;
use imatrix_collect::{collect_from_text, compare, mix, CollectParams, Imatrix, ImatrixFormat};
use kquant::pipeline::ImportanceMatrix;
use serde::{Deserialize, Serialize};

use crate::base::BaseModel;
use crate::cache::{cache_key, read_cached, sha256_file, write_json, Cached};
use crate::error::StudyError;
use crate::results::ImatrixComparisonRow;
use crate::runner::{Runner, Timer};
use crate::spec::{CalibrationSet, ImatrixMode};
use crate::TOOL_VERSION;

/// A collected calibration set's imatrix on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectedSet {
    /// The GGUF imatrix file.
    pub path: PathBuf,
    /// sha256 of the calibration text.
    pub text_sha256: String,
    /// Chunks collected.
    pub n_chunks: usize,
    /// Tokens collected.
    pub n_tokens: usize,
}

/// An imatrix mode's importance matrix, ready for the quantizer.
pub(crate) struct ModeImatrix {
    /// Cache key of the mode: its definition and its sets' keys.
    pub key: String,
    /// The imatrix in llama-quantize's form (per-column mean squares), `None` for `none`.
    pub importance: Option<ImportanceMatrix>,
    /// The combined imatrix, `None` for `none`.
    pub imatrix: Option<Imatrix>,
}

/// Returns the number of chunks a set will collect, for the progress total: its limit, or
/// an estimate of four bytes per token when it reads the whole text.
pub(crate) fn planned_chunks(set: &CalibrationSet, n_ctx: usize) -> u64 {
    const BYTES_PER_TOKEN_ESTIMATE: u64 = 4;
    let whole_text = std::fs::metadata(&set.path).map(|m| m.len() / BYTES_PER_TOKEN_ESTIMATE / n_ctx as u64).unwrap_or(0);
    match set.chunks {
        Some(limit) => (limit as u64).min(whole_text.max(1)),
        None => whole_text,
    }
}

/// Collects (or reuses) the imatrix of every calibration set that a mode reads, returning
/// each set's cache key and imatrix.
pub(crate) fn collect_sets(
    runner: &mut Runner<'_>,
    base: &BaseModel,
    model: &Model,
) -> Result<BTreeMap<String, (String, Imatrix)>, StudyError> {
    let spec = runner.spec;
    let mut used: Vec<&CalibrationSet> = spec.calibration.iter().filter(|c| spec.modes.iter().any(|m| m.set_names().contains(&c.name.as_str()))).collect();
    used.dedup_by(|a, b| a.name == b.name);

    let mut sets = BTreeMap::new();
    for set in used {
        runner.check_cancel()?;
        let step = format!("collect imatrix {}", set.name);
        runner.announce(&step);
        let planned = planned_chunks(set, spec.n_ctx);

        let text_sha256 = sha256_file(&set.path)?;
        let chunks = set.chunks.map_or("all".to_owned(), |c| c.to_string());
        let key = cache_key(&[
            ("step", "collect"),
            ("tool", TOOL_VERSION),
            ("base", &base.key),
            ("text", &text_sha256),
            ("chunks", &chunks),
            ("n_ctx", &spec.n_ctx.to_string()),
            // The batch sizes set the order of the sums, as in llama-imatrix.
            ("n_batch", &imatrix_collect::DEFAULT_N_BATCH.to_string()),
            ("n_ubatch", &imatrix_collect::DEFAULT_N_UBATCH.to_string()),
        ]);
        let path = runner.folder("imatrix").join(format!("{}.gguf", set.name));
        let record = runner.folder("cache").join(format!("imatrix-{}.json", set.name));

        if let Some(cached) = read_cached::<CollectedSet>(&record, &key) {
            if let Ok(imatrix) = Imatrix::load(&path) {
                runner.record(&step, cached.seconds, false);
                runner.advance(planned, &step);
                sets.insert(set.name.clone(), (key, imatrix));
                continue;
            }
        }

        let timer = Timer::start();
        let text = std::fs::read(&set.path).map_err(|e| StudyError::io(&set.path, e))?;
        let params = CollectParams {
            n_ctx: spec.n_ctx,
            chunks: set.chunks,
            compute_ppl: false,
            dataset: crate::runner::file_name(&set.path),
            ..CollectParams::default()
        };
        let start_done = runner.done;
        let outcome = collect_from_text(model, &text, &params, |report| {
            runner.done = start_done + report.done as u64;
            runner.announce(&step);
        })
        .map_err(|e| StudyError::Imatrix { name: set.name.clone(), source: e })?;
        runner.done = start_done;

        outcome.imatrix.save(&path, ImatrixFormat::Gguf).map_err(|e| StudyError::Imatrix { name: set.name.clone(), source: e })?;
        let collected = CollectedSet { path: path.clone(), text_sha256, n_chunks: outcome.n_chunks, n_tokens: outcome.n_tokens };
        let seconds = timer.seconds();
        write_json(&record, &Cached { key: key.clone(), seconds, value: collected })?;
        tracing::info!(set = %set.name, chunks = outcome.n_chunks, tokens = outcome.n_tokens, tokens_per_second = format!("{:.0}", outcome.tokens_per_second()), "collected imatrix");
        runner.record(&step, seconds, true);
        runner.advance(planned, &step);
        sets.insert(set.name.clone(), (key, outcome.imatrix));
    }
    Ok(sets)
}

/// Builds a mode's imatrix from the collected sets and writes it to
/// `out/imatrix/mode-<name>.gguf`, whose path the quantized files record.
pub(crate) fn mode_imatrix(runner: &Runner<'_>, mode: &ImatrixMode, sets: &BTreeMap<String, (String, Imatrix)>) -> Result<ModeImatrix, StudyError> {
    let error = |source| StudyError::Imatrix { name: mode.name().to_owned(), source };
    let set = |name: &str| sets.get(name).ok_or_else(|| StudyError::InvalidSpec(format!("calibration set '{name}' was not collected")));

    let (imatrix, parts) = match mode {
        ImatrixMode::None => return Ok(ModeImatrix { key: cache_key(&[("mode", "none")]), importance: None, imatrix: None }),
        ImatrixMode::Merged { sets: names, .. } => {
            let mut merged: Option<Imatrix> = None;
            let mut parts = vec![("mode".to_owned(), "merged".to_owned())];
            for name in names {
                let (key, imatrix) = set(name)?;
                parts.push((name.clone(), key.clone()));
                match &mut merged {
                    None => merged = Some(imatrix.clone()),
                    Some(total) => total.merge(imatrix).map_err(error)?,
                }
            }
            (merged.ok_or_else(|| StudyError::InvalidSpec(format!("imatrix mode '{}' has no sets", mode.name())))?, parts)
        }
        ImatrixMode::Mixed { sets: weighted, .. } => {
            let mut sources = Vec::new();
            let mut parts = vec![("mode".to_owned(), "mixed".to_owned())];
            for (name, weight) in weighted {
                let (key, imatrix) = set(name)?;
                parts.push((name.clone(), format!("{key}:{weight}")));
                sources.push((imatrix, *weight));
            }
            (mix(&sources).map_err(error)?, parts)
        }
    };

    let borrowed: Vec<(&str, &str)> = parts.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let key = cache_key(&borrowed);
    let path = runner.folder("imatrix").join(format!("mode-{}.gguf", mode.name()));
    imatrix.save(&path, ImatrixFormat::Gguf).map_err(error)?;

    let importance = ImportanceMatrix {
        file: format!("imatrix/mode-{}.gguf", mode.name()),
        datasets: imatrix.datasets().to_vec(),
        chunk_count: imatrix.chunk_count(),
        entries: imatrix.entries().iter().map(|(name, entry)| (name.clone(), entry.mean_squares())).collect(),
    };
    Ok(ModeImatrix { key, importance: Some(importance), imatrix: Some(imatrix) })
}

/// Compares the imatrices of every two modes that have one.
pub(crate) fn compare_modes(modes: &[(String, &Imatrix)]) -> Vec<ImatrixComparisonRow> {
    const LEAST_SIMILAR_COUNT: usize = 3;

    let mut rows = Vec::new();
    for (i, (a_name, a)) in modes.iter().enumerate() {
        for (b_name, b) in &modes[i + 1..] {
            let comparison = compare(a, b);
            let mut by_spearman: Vec<(String, f64)> = comparison.tensors.iter().filter_map(|t| t.spearman.map(|s| (t.name.clone(), s))).collect();
            by_spearman.sort_by(|x, y| x.1.total_cmp(&y.1));
            by_spearman.truncate(LEAST_SIMILAR_COUNT);
            rows.push(ImatrixComparisonRow {
                a: a_name.clone(),
                b: b_name.clone(),
                n_tensors: comparison.tensors.len(),
                min_cosine: comparison.min_cosine(),
                mean_spearman: comparison.mean_spearman(),
                mean_top_overlap: comparison.mean_top_overlap(),
                least_similar: by_spearman,
            });
        }
    }
    rows
}
