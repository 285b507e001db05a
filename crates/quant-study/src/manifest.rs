//! manifest.json: what went into a study and how long each step took, enough to rerun and
//! verify it.

use std::path::PathBuf;

use serde::Serialize;

use crate::base::BaseModel;
use crate::cache::{sha256_file, write_json};
use crate::error::StudyError;
use crate::evaluate::Tokenized;
use crate::results::{StepTiming, StudyResults};
use crate::spec::StudySpec;

/// An input file with its sha256.
#[derive(Debug, Serialize)]
struct Input {
    role: String,
    path: PathBuf,
    sha256: String,
}

#[derive(Debug, Serialize)]
struct Manifest<'a> {
    tool: &'static str,
    tool_version: &'static str,
    command_line: Vec<String>,
    spec: &'a StudySpec,
    base: &'a BaseModel,
    base_note: &'static str,
    inputs: Vec<Input>,
    outputs: Vec<Input>,
    wall_seconds: f64,
    recomputed: &'a [String],
    timings: &'a [StepTiming],
}

/// Writes `manifest.json` with the sha256 of every input and output, the parameters, the
/// command line and the timings.
pub(crate) fn write_manifest(results: &StudyResults, base: &BaseModel, texts: &[Tokenized], charts: &[PathBuf]) -> Result<(), StudyError> {
    let spec = &results.spec;
    let mut inputs = vec![Input { role: "model".into(), path: spec.model.clone(), sha256: base.source_sha256.clone() }];
    for set in &spec.calibration {
        if set.path.is_file() {
            inputs.push(Input { role: format!("calibration {}", set.name), path: set.path.clone(), sha256: sha256_file(&set.path)? });
        }
    }
    for text in texts {
        inputs.push(Input { role: format!("evaluation {}", text.text.name), path: text.text.path.clone(), sha256: text.sha256.clone() });
    }

    let mut outputs = vec![Input { role: "base".into(), path: base.path.clone(), sha256: base.sha256.clone() }];
    for name in ["results.json", "results.md", "results.csv"] {
        let path = spec.out.join(name);
        outputs.push(Input { role: name.into(), path: path.clone(), sha256: sha256_file(&path)? });
    }
    for chart in charts {
        outputs.push(Input { role: "chart".into(), path: chart.clone(), sha256: sha256_file(chart)? });
    }
    for cell in &results.cells {
        outputs.push(Input { role: format!("model {}", cell.label), path: spec.out.join("models").join(format!("{}.gguf", cell.label)), sha256: cell.model_sha256.clone() });
    }

    let manifest = Manifest {
        tool: env!("CARGO_PKG_NAME"),
        tool_version: crate::TOOL_VERSION,
        command_line: std::env::args().collect(),
        spec,
        base,
        base_note: if base.from_quantized {
            "the base is derived from a quantized file: it is that file's exact F32 dequantization"
        } else {
            "the base holds the input's weights in F32"
        },
        inputs,
        outputs,
        wall_seconds: results.wall_seconds,
        recomputed: &results.recomputed,
        timings: &results.timings,
    };
    write_json(&spec.out.join("manifest.json"), &manifest)
}
