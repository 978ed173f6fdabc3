//! What a build reports: the releases it loaded and quarantined, the audits'
//! warnings and the time each step took.

use std::path::PathBuf;

use serde::Serialize;

use super::models::Severity;
use super::runs::RunReason;

/// An audit that found offending rows (a warning; errors fail the build).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditFinding {
    /// Error or warning.
    pub severity: Severity,
    /// What the audit checks.
    pub audit: String,
    /// Offending rows.
    pub rows: u64,
}

/// What a transform did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TransformReport {
    /// New landing files loaded by this build.
    pub releases_loaded: u64,
    /// Rows read from the new releases.
    pub rows_loaded: u64,
    /// Rows written to the change history (values that appeared, changed or
    /// disappeared).
    pub changes: u64,
    /// Releases in the lakehouse after the build.
    pub releases_total: u64,
    /// The published lakehouse; `None` when there was nothing new to publish.
    pub published: Option<PathBuf>,
    /// Landing files this build found unloadable and quarantined: recorded in
    /// `raw.rejected` and skipped by every later build.
    pub rejected: Vec<Rejected>,
    /// Warnings from the audits.
    pub warnings: Vec<AuditFinding>,
    /// What each model did and how long it took, in run order.
    pub steps: Vec<Step>,
    /// Wall time of the build, in milliseconds.
    pub millis: u64,
}

/// A landing file that cannot be loaded, and why.
///
/// ```
/// let r = materia_core::transform::Rejected { landing_key: "psd/2026/11/x.csv.gzip".into(), reason: "bad gzip".into() };
/// assert_eq!(serde_json::to_value(&r).unwrap()["reason"], "bad gzip");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// The file's landing key.
    pub landing_key: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One model's part of a build.
///
/// ```
/// use materia_core::transform::{RunReason, Step, StepMode};
/// let step = Step { model: "serving.brazil".into(), mode: StepMode::Table, millis: 12, reasons: vec![RunReason::SqlChanged] };
/// let json = serde_json::to_value(&step).unwrap();
/// assert_eq!(json["mode"], "table");
/// assert_eq!(json["reasons"][0]["reason"], "sql_changed");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The model's name, e.g. `serving.psd_revisions`.
    pub model: String,
    /// What ran.
    pub mode: StepMode,
    /// Wall time, in milliseconds.
    pub millis: u64,
    /// Why it ran (empty for the lakehouse's own step and a copied table).
    pub reasons: Vec<RunReason>,
}

/// How a model was brought up to date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StepMode {
    /// An incremental model appended the new releases only.
    Append,
    /// An incremental model was rebuilt over the whole history (first build, or a
    /// release that landed out of order).
    Rebuild,
    /// A `table` model, run.
    Table,
    /// A `table` model that did not run: the slot being written got the
    /// published build's table.
    Copied,
}
