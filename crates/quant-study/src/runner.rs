//! Shared state of a running study: the output layout, progress, timings and cancellation.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::error::StudyError;
use crate::results::StepTiming;
use crate::spec::StudySpec;

/// Progress of the whole study, in work units: one unit per evaluated or collected chunk
/// and [`QUANTIZE_UNITS`] per quantized model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyProgress {
    /// Units finished, including those reused from the cache.
    pub done: u64,
    /// Units in the whole study.
    pub total: u64,
    /// The current step, e.g. `evaluate Q4_0-pure-en on wiki`.
    pub step: String,
}

/// Work units of one quantization, about the time of one evaluated chunk on a small model.
pub const QUANTIZE_UNITS: u64 = 2;

/// The running study's context, passed to every step.
pub(crate) struct Runner<'a> {
    pub spec: &'a StudySpec,
    pub cancel: Option<Arc<AtomicBool>>,
    pub progress: &'a mut dyn FnMut(&StudyProgress),
    pub done: u64,
    pub total: u64,
    pub timings: Vec<StepTiming>,
    pub recomputed: Vec<String>,
}

impl Runner<'_> {
    /// Returns the folder for a kind of output (`models`, `imatrix`, `cache`, `kld`, `charts`).
    pub fn folder(&self, kind: &str) -> PathBuf {
        self.spec.out.join(kind)
    }

    /// Returns `Err(Cancelled)` once the cancel flag is set.
    pub fn check_cancel(&self) -> Result<(), StudyError> {
        match &self.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(StudyError::Cancelled),
            _ => Ok(()),
        }
    }

    /// Reports that the study now works on `step`.
    pub fn announce(&mut self, step: &str) {
        (self.progress)(&StudyProgress { done: self.done, total: self.total, step: step.to_owned() });
    }

    /// Advances the progress by `units` while working on `step`.
    pub fn advance(&mut self, units: u64, step: &str) {
        self.done = (self.done + units).min(self.total);
        self.announce(step);
    }

    /// Records a step's time; `computed` is false for a step reused from the cache.
    pub fn record(&mut self, step: &str, seconds: f64, computed: bool) {
        if computed {
            tracing::info!(step, seconds = format!("{seconds:.1}"), "step finished");
            self.recomputed.push(step.to_owned());
        } else {
            tracing::info!(step, "reused from the cache");
        }
        self.timings.push(StepTiming { step: step.to_owned(), seconds, computed });
    }
}

/// Measures a step's wall time.
pub(crate) struct Timer(Instant);

impl Timer {
    pub fn start() -> Timer {
        Timer(Instant::now())
    }

    pub fn seconds(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// Returns a path's file name as text, for logs and metadata.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}
