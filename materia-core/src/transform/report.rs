//! What a build reports: the releases it loaded and quarantined, the audits'
//! warnings and the time each step took.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value as Json;

use super::models::Severity;
use super::rows::Rows;
use super::runs::RunReason;

/// An audit that found offending rows (a warning; errors fail the build
/// with [`AuditFinding::summary`] as their message).
///
/// ```
/// use materia_core::transform::{AuditFinding, Rows, Severity};
/// let first_rows = Rows {
///     columns: vec!["country_code".into(), "market_year".into()],
///     rows: vec![vec!["BR".into(), serde_json::Value::Null]],
/// };
/// let finding = AuditFinding {
///     severity: Severity::Warn,
///     audit: "a market year".into(),
///     rows: 1,
///     at: "models/checks.sql:5".into(),
///     first_rows,
/// };
/// assert_eq!(
///     finding.summary(),
///     "a market year (1 offending row; models/checks.sql:5): (country_code=BR, market_year=NULL)"
/// );
/// let json = serde_json::to_value(&finding)?;
/// assert_eq!(json["first_rows"][0]["country_code"], "BR");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditFinding {
    /// Error or warning.
    pub severity: Severity,
    /// What the audit checks.
    pub audit: String,
    /// Offending rows.
    pub rows: u64,
    /// `file:line` of the audit's statement.
    pub at: String,
    /// The first offending rows (up to 5), as objects in column order; none
    /// when the audit counts them (`SELECT count(*) …`).
    #[serde(serialize_with = "ordered_rows")]
    pub first_rows: Rows,
}

impl AuditFinding {
    /// One line: what the audit checks, how many rows offend and where the
    /// audit is, then the first rows (`(column=value, …)`, NULL as `NULL`).
    pub fn summary(&self) -> String {
        let plural = if self.rows == 1 { "" } else { "s" };
        let mut line = format!(
            "{} ({} offending row{plural}; {})",
            self.audit, self.rows, self.at
        );
        let shown: Vec<String> = self.first_rows.rows.iter().map(|r| self.row(r)).collect();
        if !shown.is_empty() {
            let first = if self.rows as usize > shown.len() {
                format!(" first {}:", shown.len())
            } else {
                String::new()
            };
            line.push_str(&format!(":{first} {}", shown.join("; ")));
        }
        if self.rows == 1 && self.is_uncounted_count() {
            line.push_str(
                " (a count of 0? only an unaliased count(*) or count(x) column is read as the \
                 number of offending rows; any other result is the offending rows themselves)",
            );
        }
        line
    }

    /// One row as `(column=value, …)`, long texts cut.
    fn row(&self, row: &[Json]) -> String {
        let cells: Vec<String> = self
            .first_rows
            .columns
            .iter()
            .zip(row)
            .map(|(c, v)| format!("{c}={}", cell(v)))
            .collect();
        format!("({})", cells.join(", "))
    }

    /// One row of one column holding 0: a count under another name, meant
    /// to pass.
    fn is_uncounted_count(&self) -> bool {
        let rows = &self.first_rows.rows;
        rows.len() == 1 && rows[0].len() == 1 && rows[0][0].as_i64() == Some(0)
    }
}

/// A value as a summary shows it: NULL, text up to 40 characters.
fn cell(v: &Json) -> String {
    const MAX: usize = 40;
    match v {
        Json::Null => "NULL".into(),
        Json::String(s) if s.chars().count() > MAX => {
            format!("{}…", s.chars().take(MAX).collect::<String>())
        }
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// [`Rows`] as JSON objects in column order.
fn ordered_rows<S: serde::Serializer>(rows: &Rows, s: S) -> Result<S::Ok, S::Error> {
    rows.ordered().serialize(s)
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
    /// A `view` model, created.
    View,
    /// An `audit` model: its statements ran.
    Audit,
    /// A `table` model that did not run: the slot being written got the
    /// published build's table.
    Copied,
}
