//! results.md, results.csv and results.json, and the call that writes every output.

use std::fmt::Write as _;

use crate::base::BaseModel;
use crate::cache::{write_atomic, write_json};
use crate::error::StudyError;
use crate::evaluate::Tokenized;
use crate::results::{StudyResults, TextEval};

/// Writes results.json, results.md, results.csv, the charts and manifest.json.
pub(crate) fn write_outputs(results: &StudyResults, base: &BaseModel, texts: &[Tokenized]) -> Result<(), StudyError> {
    let out = &results.spec.out;
    write_json(&out.join("results.json"), results)?;
    write_atomic(&out.join("results.md"), render_markdown(results).as_bytes())?;
    write_atomic(&out.join("results.csv"), render_csv(results).as_bytes())?;
    let charts = crate::chart::draw_charts(results)?;
    crate::manifest::write_manifest(results, base, texts, &charts)
}

fn ppl_cell(eval: Option<&TextEval>) -> String {
    match eval {
        Some(TextEval { ppl, ppl_err: Some(err), .. }) => format!("{ppl:.4} ± {err:.5}"),
        Some(TextEval { ppl, ppl_err: None, .. }) => format!("{ppl:.4}"),
        None => "-".to_owned(),
    }
}

/// Notes the cells whose quantized files are byte-identical, so that equal rows read as
/// expected rather than as a bug. On Gemma 3 270M, Q4_K_M's L variant equals M because the
/// tied token embedding already falls back to Q8_0 under M.
///
/// NOTE: two imatrix modes with equal sums (`enja` and `enja-mixed` at `--collect-chunks 8`)
/// give equal tensors but different files, because `quantize.imatrix.file` names the mode,
/// so they are not listed here.
fn write_identical_files(md: &mut String, results: &StudyResults) {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for cell in &results.cells {
        match groups.iter_mut().find(|(sha, _)| *sha == cell.model_sha256) {
            Some((_, labels)) => labels.push(&cell.label),
            None => groups.push((&cell.model_sha256, vec![&cell.label])),
        }
    }

    let same: Vec<String> = groups
        .iter()
        .filter(|(_, labels)| labels.len() > 1)
        .map(|(_, labels)| labels.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(" = "))
        .collect();
    if same.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\nThese cells wrote byte-identical files (same sha256), so their figures are equal: {}.",
        same.join("; ")
    );
}

/// Renders the results as Markdown: the perplexity table laid out like the published study
/// (one row per quantization and imatrix mode, one column per text), then the paired
/// comparisons, KL divergence, the imatrix comparison and the timings.
pub fn render_markdown(results: &StudyResults) -> String {
    let spec = &results.spec;
    let mut md = String::new();
    let texts: Vec<&str> = spec.texts.iter().map(|t| t.name.as_str()).collect();

    let _ = writeln!(md, "# Quantization study\n");
    let _ = writeln!(
        md,
        "Model `{}`; perplexity with n_ctx = {} on the first {} chunks of each text; KL divergence against the base on the first {} chunks. quant-study {}.\n",
        spec.model.display(),
        spec.n_ctx,
        spec.eval_chunks,
        spec.kld_chunks,
        results.tool_version
    );
    if results.base_from_quantized {
        let _ = writeln!(md, "The base is the exact F32 dequantization of the quantized input file, not the original full-precision weights.\n");
    }

    let _ = writeln!(md, "## Perplexity\n");
    let _ = writeln!(md, "| model | imatrix | {} |", texts.iter().map(|t| format!("{t} PPL")).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(md, "|---|---|{}", "---|".repeat(texts.len()));
    let base_cells: Vec<String> = texts.iter().map(|t| ppl_cell(results.base.iter().find(|e| e.text == *t))).collect();
    let _ = writeln!(md, "| base (F32) | - | {} |", base_cells.join(" | "));
    for cell in &results.cells {
        let values: Vec<String> = texts.iter().map(|t| ppl_cell(cell.evals.iter().find(|e| e.text == *t))).collect();
        let _ = writeln!(md, "| {} | {} | {} |", cell.quantization.label(), cell.mode, values.join(" | "));
    }
    write_identical_files(&mut md, results);

    if !results.paired.is_empty() {
        let _ = writeln!(md, "\n## Paired comparisons\n");
        let _ = writeln!(md, "Both models scored on the same tokens. Ratio = PPL(B) / PPL(A); below 1 means B is better. The chunk-level interval allows for correlation between the tokens of one chunk. \"yes\" means neither 95 % interval contains a ratio of 1 (no difference).\n");
        let _ = writeln!(md, "| quantization | text | A | B | PPL(B)/PPL(A) | 95 % CI (tokens) | mean Δ ln p ± s.e. (chunks) | significant |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
        for row in &results.paired {
            let c = &row.comparison;
            let chunk = c.chunk_std_error.map_or("-".to_owned(), |e| format!("{:+.5} ± {e:.5}", c.mean_log_prob_diff));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.4} | {:.4} – {:.4} | {} | {} |",
                row.quantization,
                row.text,
                row.base_mode,
                row.candidate_mode,
                c.ppl_ratio,
                c.ppl_ratio_ci95.low,
                c.ppl_ratio_ci95.high,
                chunk,
                if row.significant { "yes" } else { "no" }
            );
        }
    }

    if results.cells.iter().any(|c| c.evals.iter().any(|e| e.kld.is_some())) {
        let _ = writeln!(md, "\n## KL divergence against the base\n");
        let _ = writeln!(md, "| model | imatrix | text | mean KLD | 99 % KLD | RMS Δp | same top p |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|");
        for cell in &results.cells {
            for eval in &cell.evals {
                let Some(k) = &eval.kld else { continue };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.6} ± {:.6} | {:.6} | {:.3} ± {:.3} % | {:.3} ± {:.3} % |",
                    cell.quantization.label(),
                    cell.mode,
                    eval.text,
                    k.kld.value,
                    k.kld.uncertainty,
                    k.kld_quantiles.p99,
                    100.0 * k.rms_p_diff.value,
                    100.0 * k.rms_p_diff.uncertainty,
                    100.0 * k.same_top_p.value,
                    100.0 * k.same_top_p.uncertainty
                );
            }
        }
    }

    if !results.imatrix_comparisons.is_empty() {
        let _ = writeln!(md, "\n## Imatrix comparison\n");
        let _ = writeln!(md, "Per tensor, the per-column mean squares of two imatrices compared; the least similar tensors by Spearman correlation.\n");
        let _ = writeln!(md, "| A | B | tensors | min cosine | mean Spearman | mean top-1 % overlap | least similar |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|");
        for row in &results.imatrix_comparisons {
            let number = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.4}"));
            let least: Vec<String> = row.least_similar.iter().map(|(name, s)| format!("{name} ({s:.3})")).collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                row.a,
                row.b,
                row.n_tensors,
                number(row.min_cosine),
                number(row.mean_spearman),
                number(row.mean_top_overlap),
                least.join(", ")
            );
        }
    }

    // Adding 0.0 turns the empty sum's -0.0 into 0.0, which prints without a sign.
    let computed: f64 = results.timings.iter().filter(|t| t.computed).map(|t| t.seconds).sum::<f64>() + 0.0;
    let total: f64 = results.timings.iter().map(|t| t.seconds).sum::<f64>() + 0.0;
    let _ = writeln!(md, "\n## Timings\n");
    let _ = writeln!(
        md,
        "This run: {:.0} s wall time, {} steps computed ({computed:.0} s), {} reused from the cache. All steps when computed: {total:.0} s.",
        results.wall_seconds,
        results.recomputed.len(),
        results.timings.len() - results.recomputed.len()
    );
    md
}

/// Renders one CSV row per model and text: perplexity, its uncertainty and the KL
/// statistics, with the base first.
pub fn render_csv(results: &StudyResults) -> String {
    let mut csv = String::from("model,quantization,variant,imatrix,text,ppl,ppl_err,n_chunk,n_tokens,mean_kld,mean_kld_err,kld_p99,rms_dp,same_top_p,model_bytes,seconds\n");
    let number = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    let mut row = |model: &str, quantization: &str, variant: &str, mode: &str, eval: &TextEval, bytes: Option<u64>| {
        let k = eval.kld.as_ref();
        let _ = writeln!(
            csv,
            "{model},{quantization},{variant},{mode},{},{},{},{},{},{},{},{},{},{},{},{:.2}",
            eval.text,
            eval.ppl,
            number(eval.ppl_err),
            eval.n_chunk,
            eval.n_tokens,
            number(k.map(|k| k.kld.value)),
            number(k.map(|k| k.kld.uncertainty)),
            number(k.map(|k| k.kld_quantiles.p99)),
            number(k.map(|k| k.rms_p_diff.value)),
            number(k.map(|k| k.same_top_p.value)),
            bytes.map_or(String::new(), |b| b.to_string()),
            eval.seconds
        );
    };
    for eval in &results.base {
        row("base", "F32", "", "none", eval, None);
    }
    for cell in &results.cells {
        for eval in &cell.evals {
            row(&cell.label, cell.quantization.file_type.name(), cell.quantization.variant.name(), &cell.mode, eval, Some(cell.model_bytes));
        }
    }
    csv
}
