//! The study driver: every step in order, each reused from the cache when it can be.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use gemma2_model::Model;
use gguf_format::GgufFile;
use kquant::pipeline::quantize_model;
use serde::{Deserialize, Serialize};

use crate::base::{make_base, BaseModel};
use crate::cache::{cache_key, read_cached, sha256_file, write_json, Cached};
use crate::error::StudyError;
use crate::evaluate::{cached_eval, eval_key, eval_record_path, evaluate, kld_bases, store_eval, tokenize_texts, EvalRecord, KldBase, Tokenized};
use crate::imatrices::{collect_sets, compare_modes, mode_imatrix, planned_chunks, ModeImatrix};
use crate::results::{mode_pairs, paired, CellResult, PairedRow, StudyResults};
use crate::runner::{Runner, StudyProgress, Timer, QUANTIZE_UNITS};
use crate::spec::{Cell, StudySpec};
use crate::TOOL_VERSION;

/// A quantized cell's file, as its cache record stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct QuantizedFile {
    bytes: u64,
    sha256: String,
}

/// Runs the whole study described by `spec` and writes its outputs to `spec.out`.
///
/// `cancel`, once set (by a Ctrl-C handler, say), stops the study between steps and inside
/// a quantization; finished steps stay cached. `progress` receives the study-wide progress
/// after every chunk and step. Threads: every step runs on the current rayon pool (wrap the
/// call in `rayon::ThreadPool::install` to choose the count); no result depends on it.
///
/// # Errors
/// [`StudyError::InvalidSpec`] before any work when the specification is inconsistent,
/// [`StudyError::Cancelled`] when interrupted, and the error of the first step that fails,
/// naming the cell, text or file. Outputs already written stay complete.
pub fn run_study(spec: &StudySpec, cancel: Option<Arc<AtomicBool>>, progress: &mut dyn FnMut(&StudyProgress)) -> Result<StudyResults, StudyError> {
    spec.validate()?;
    check_inputs(spec)?;
    for folder in ["models", "imatrix", "cache", "kld", "charts"] {
        let path = spec.out.join(folder);
        std::fs::create_dir_all(&path).map_err(|e| StudyError::io(&path, e))?;
    }
    let wall = Timer::start();

    let mut runner = Runner { spec, cancel, progress, done: 0, total: planned_units(spec), timings: Vec::new(), recomputed: Vec::new() };
    tracing::info!(cells = spec.cells().len(), texts = spec.texts.len(), out = %spec.out.display(), "starting study");

    let base = make_base(&mut runner)?;
    runner.check_cancel()?;
    let base_model = Model::from_gguf(&base.path).map_err(|e| StudyError::Model { path: base.path.clone(), source: e })?;

    let sets = collect_sets(&mut runner, &base, &base_model)?;
    let mut modes: BTreeMap<String, ModeImatrix> = BTreeMap::new();
    for mode in &spec.modes {
        modes.insert(mode.name().to_owned(), mode_imatrix(&runner, mode, &sets)?);
    }

    let texts = tokenize_texts(&runner, &base_model)?;
    let kld = kld_bases(&mut runner, &base.key, &base_model, &texts)?;
    let base_records = evaluate_base(&mut runner, &base, &base_model, &texts)?;

    let mut cells = Vec::new();
    let mut records: BTreeMap<(String, String), EvalRecord> = BTreeMap::new();
    for cell in spec.cells() {
        runner.check_cancel()?;
        let (result, cell_records) = run_cell(&mut runner, &base, &modes[cell.mode.name()], &cell, &texts, &kld)?;
        for (text, record) in texts.iter().zip(cell_records) {
            records.insert((cell.label(), text.text.name.clone()), record);
        }
        cells.push(result);
    }

    let paired = paired_rows(spec, &texts, &records)?;
    let named: Vec<(String, &imatrix_collect::Imatrix)> = spec.modes.iter().filter_map(|m| modes[m.name()].imatrix.as_ref().map(|i| (m.name().to_owned(), i))).collect();
    let imatrix_comparisons = compare_modes(&named);

    let results = StudyResults {
        tool_version: TOOL_VERSION.to_owned(),
        spec: spec.clone(),
        base_from_quantized: base.from_quantized,
        base: texts.iter().zip(&base_records).map(|(t, (record, seconds))| record.summary(&t.text.name, *seconds)).collect(),
        cells,
        paired,
        imatrix_comparisons,
        timings: runner.timings.clone(),
        recomputed: runner.recomputed.clone(),
        wall_seconds: wall.seconds(),
    };
    crate::report::write_outputs(&results, &base, &texts)?;
    runner.advance(0, "done");
    tracing::info!(seconds = format!("{:.1}", results.wall_seconds), computed = results.recomputed.len(), out = %spec.out.display(), "study finished");
    Ok(results)
}

/// Checks that every input file exists before any work starts.
fn check_inputs(spec: &StudySpec) -> Result<(), StudyError> {
    let missing = |what: &str, path: &std::path::Path| StudyError::InvalidSpec(format!("{what} {} not found (relative paths start at the current folder; see --model, --data and --out)", path.display()));
    if !spec.model.exists() {
        return Err(missing("model", &spec.model));
    }
    for set in &spec.calibration {
        if spec.modes.iter().any(|m| m.set_names().contains(&set.name.as_str())) && !set.path.is_file() {
            return Err(missing(&format!("calibration text '{}'", set.name), &set.path));
        }
    }
    for text in &spec.texts {
        if !text.path.is_file() {
            return Err(missing(&format!("evaluation text '{}'", text.name), &text.path));
        }
    }
    Ok(())
}

/// Returns the study's work units (see [`StudyProgress`]).
fn planned_units(spec: &StudySpec) -> u64 {
    let texts = spec.texts.len() as u64;
    let per_text = spec.eval_chunks as u64 + spec.kld_chunks as u64;
    let sets: u64 = spec.calibration.iter().filter(|c| spec.modes.iter().any(|m| m.set_names().contains(&c.name.as_str()))).map(|c| planned_chunks(c, spec.n_ctx)).sum();
    let base = QUANTIZE_UNITS + texts * per_text;
    let cells = spec.cells().len() as u64 * (QUANTIZE_UNITS + texts * per_text);
    base + sets + cells
}

/// Evaluates the base on every text (perplexity only: its KL divergence is zero).
fn evaluate_base(runner: &mut Runner<'_>, base: &BaseModel, model: &Model, texts: &[Tokenized]) -> Result<Vec<(EvalRecord, f64)>, StudyError> {
    let mut records = Vec::new();
    for text in texts {
        runner.check_cancel()?;
        let step = format!("evaluate base on {}", text.text.name);
        runner.announce(&step);
        let key = eval_key(runner, &base.key, text, None);
        let path = eval_record_path(runner, "base", &text.text.name);
        let units = runner.spec.eval_chunks as u64;

        if let Some(cached) = cached_eval(&path, &key) {
            runner.record(&step, cached.seconds, false);
            runner.advance(units, &step);
            records.push((cached.value, cached.seconds));
            continue;
        }
        let timer = Timer::start();
        let record = evaluate(runner, &step, model, text, None)?;
        let seconds = timer.seconds();
        store_eval(&path, &key, seconds, &record)?;
        runner.record(&step, seconds, true);
        runner.advance(units, &step);
        records.push((record, seconds));
    }
    Ok(records)
}

/// Quantizes one cell (unless every evaluation of it is cached) and evaluates it on every text.
fn run_cell(
    runner: &mut Runner<'_>,
    base: &BaseModel,
    mode: &ModeImatrix,
    cell: &Cell,
    texts: &[Tokenized],
    kld: &[Option<KldBase>],
) -> Result<(CellResult, Vec<EvalRecord>), StudyError> {
    let label = cell.label();
    let quantization = cell.quantization;
    let options_text = format!("{:?}", quantization.options().plan);
    let key = cache_key(&[
        ("step", "quantize"),
        ("tool", TOOL_VERSION),
        ("base", &base.key),
        ("imatrix", &mode.key),
        ("file_type", quantization.file_type.name()),
        ("options", &options_text),
    ]);
    let model_path = runner.folder("models").join(format!("{label}.gguf"));
    let quantize_record = runner.folder("cache").join(format!("quantize-{label}.json"));
    let step = format!("quantize {label}");
    runner.announce(&step);

    let eval_keys: Vec<String> = texts.iter().zip(kld).map(|(t, k)| eval_key(runner, &key, t, k.as_ref().map(|b| b.key.as_str()))).collect();
    let mut cached: Vec<Option<Cached<EvalRecord>>> =
        texts.iter().zip(&eval_keys).map(|(t, k)| cached_eval(&eval_record_path(runner, &label, &t.text.name), k)).collect();
    let quantized_cached = read_cached::<QuantizedFile>(&quantize_record, &key).filter(|c| cached.iter().all(Option::is_some) || model_path.is_file() && file_size(&model_path) == Some(c.value.bytes));

    let file = match quantized_cached {
        Some(record) => {
            runner.record(&step, record.seconds, false);
            record.value
        }
        None => {
            let timer = Timer::start();
            let source = GgufFile::open(&base.path).map_err(|e| StudyError::InvalidSpec(format!("base {}: {e}", base.path.display())))?;
            let mut options = quantization.options();
            options.imatrix = mode.importance.clone();
            options.cancel = runner.cancel.clone();
            std::fs::create_dir_all(runner.folder("models")).map_err(|e| StudyError::io(runner.folder("models"), e))?;
            let report = quantize_model(&source, &model_path, &options, &mut |_| {}).map_err(|e| match e {
                kquant::pipeline::PipelineError::Cancelled => StudyError::Cancelled,
                other => StudyError::Quantize { cell: label.clone(), source: other },
            })?;
            // The token embedding is a row lookup, never collected, and quantized without an
            // imatrix by llama-quantize too; only other missing tensors are worth a warning.
            let missing: Vec<&String> = report.missing_imatrix.iter().filter(|name| *name != "token_embd.weight").collect();
            if !missing.is_empty() {
                tracing::warn!(cell = %label, tensors = ?missing, "imatrix has no data for these tensors; they were quantized without it");
            }
            let file = QuantizedFile { bytes: report.output_bytes.max(file_size(&model_path).unwrap_or(0)), sha256: sha256_file(&model_path)? };
            let seconds = timer.seconds();
            write_json(&quantize_record, &Cached { key: key.clone(), seconds, value: file.clone() })?;
            runner.record(&step, seconds, true);
            // Evaluations of an earlier file with the same key stay valid: the bytes are the same.
            file
        }
    };
    runner.advance(QUANTIZE_UNITS, &step);

    let mut model: Option<Model> = None;
    let mut evals = Vec::new();
    let mut records = Vec::new();
    for (index, text) in texts.iter().enumerate() {
        runner.check_cancel()?;
        let step = format!("evaluate {label} on {}", text.text.name);
        runner.announce(&step);
        let units = runner.spec.eval_chunks as u64 + kld[index].as_ref().map_or(0, |_| runner.spec.kld_chunks as u64);

        if let Some(hit) = cached[index].take() {
            runner.record(&step, hit.seconds, false);
            runner.advance(units, &step);
            evals.push(hit.value.summary(&text.text.name, hit.seconds));
            records.push(hit.value);
            continue;
        }

        if model.is_none() {
            if !model_path.is_file() {
                // The file was deleted after an earlier run evaluated other texts; make it again.
                std::fs::remove_file(&quantize_record).map_err(|e| StudyError::io(&quantize_record, e))?;
                return run_cell(runner, base, mode, cell, texts, kld);
            }
            model = Some(Model::from_gguf(&model_path).map_err(|e| StudyError::Model { path: model_path.clone(), source: e })?);
        }
        let timer = Timer::start();
        let record = evaluate(runner, &step, model.as_ref().expect("loaded above"), text, kld[index].as_ref())?;
        let seconds = timer.seconds();
        store_eval(&eval_record_path(runner, &label, &text.text.name), &eval_keys[index], seconds, &record)?;
        tracing::info!(cell = %label, text = %text.text.name, ppl = format!("{:.4}", record.ppl.ppl), kld = ?record.kld.as_ref().map(|k| k.kld.value), "evaluated");
        runner.record(&step, seconds, true);
        runner.advance(units, &step);
        evals.push(record.summary(&text.text.name, seconds));
        records.push(record);
    }

    drop(model);
    if !runner.spec.keep_models && model_path.is_file() {
        std::fs::remove_file(&model_path).map_err(|e| StudyError::io(&model_path, e))?;
    }

    let result = CellResult { label, quantization, mode: cell.mode.name().to_owned(), model_bytes: file.bytes, model_sha256: file.sha256, evals };
    Ok((result, records))
}

fn file_size(path: &std::path::Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Compares the cells of each quantization on each text, token by token.
fn paired_rows(spec: &StudySpec, texts: &[Tokenized], records: &BTreeMap<(String, String), EvalRecord>) -> Result<Vec<PairedRow>, StudyError> {
    let pairs = mode_pairs(&spec.modes);
    let mut rows = Vec::new();
    for quantization in &spec.quantizations {
        for text in texts {
            for (base_mode, candidate_mode) in &pairs {
                let label = |mode: &str| format!("{}-{mode}", quantization.label());
                let key = |mode: &str| (label(mode), text.text.name.clone());
                let (Some(a), Some(b)) = (records.get(&key(base_mode)), records.get(&key(candidate_mode))) else { continue };
                let what = format!("{} vs {} on {}", label(base_mode), label(candidate_mode), text.text.name);
                let comparison = paired(&a.ppl, &b.ppl).map_err(|e| StudyError::Eval { what, source: e })?;
                rows.push(PairedRow {
                    quantization: quantization.label(),
                    text: text.text.name.clone(),
                    base_mode: base_mode.clone(),
                    candidate_mode: candidate_mode.clone(),
                    significant: comparison.is_significant(),
                    comparison,
                });
            }
        }
    }
    Ok(rows)
}
