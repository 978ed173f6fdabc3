//! A step's report of each dataset's outcome: how the supervisor learns that
//! `extract` failed for one dataset and fetched the others (its exit status
//! says only that something failed).
//!
//! For a step marked [`Step::with_report`](super::Step::with_report) the
//! supervisor sets [`STEP_REPORT_ENV`] to `{LANDING_DIR}/.materia/step-report.jsonl`
//! (removed before the step starts). The step writes there, with
//! [`write_step_report`], one JSON object per dataset — the lines `materia
//! extract --json` prints: `{"dataset": …, "status": "landed" | "unchanged" |
//! … | "failed", "error": …}`. A step that failed for some datasets and not
//! for others is then [`Outcome::Partial`](super::Outcome::Partial): the steps
//! that need it still run, and the cycle still fails, naming the datasets.
//! No report (the step crashed, or ran past its timeout) is a whole failure.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};
use crate::landing::durable;

/// The environment variable that names the file a step writes its report to.
///
/// ```
/// assert_eq!(materia_core::supervise::STEP_REPORT_ENV, "MATERIA_STEP_REPORT");
/// ```
pub const STEP_REPORT_ENV: &str = "MATERIA_STEP_REPORT";

/// The `status` of a dataset that failed.
const FAILED: &str = "failed";

/// Writes a step's report to `path`: each of `lines` as one JSON object on its
/// own line, the file replaced durably (see the module doc).
///
/// ```
/// use materia_core::supervise::write_step_report;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("report.jsonl");
/// write_step_report(&path, &[serde_json::json!({"dataset": "psd", "status": "failed", "error": "HTTP 500"})])?;
/// let text = std::fs::read_to_string(&path)?;
/// assert_eq!(text.lines().count(), 1);
/// let line: serde_json::Value = serde_json::from_str(&text)?;
/// assert_eq!(line["status"], "failed");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_step_report(path: &Path, lines: &[impl Serialize]) -> Result<()> {
    let mut bytes = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut bytes, line)
            .map_err(std::io::Error::other)
            .at(path)?;
        bytes.push(b'\n');
    }
    durable::replace_file(path, &bytes)
}

/// One dataset's line of a report, as the supervisor reads it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub(super) struct DatasetLine {
    pub dataset: String,
    pub status: String,
    #[serde(default)]
    pub error: Option<String>,
}

impl DatasetLine {
    pub fn failed(&self) -> bool {
        self.status == FAILED
    }
}

/// The report at `path`: `None` when the step wrote none, or one that cannot
/// be read (then the step's exit status alone tells).
pub(super) fn read(path: &Path) -> Option<Vec<DatasetLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot read the step's report: {e}");
            return None;
        }
    };
    let lines = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<std::result::Result<Vec<DatasetLine>, _>>();
    match lines {
        Ok(lines) => Some(lines),
        Err(e) => {
            tracing::warn!(path = %path.display(), "the step's report is not JSON lines: {e}");
            None
        }
    }
}

/// Removes the report at `path`, if any: a step must never be judged by an
/// earlier step's report. `false` when it is there and could not be removed.
pub(super) fn remove(path: &Path) -> bool {
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot remove the last step's report: {e}");
            false
        }
    }
}
