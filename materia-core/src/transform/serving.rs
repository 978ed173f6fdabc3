//! The published file: its `table` and `view` models run on the slot being
//! written (`publish.rs`; the history attached as `history`), then the
//! audits (`audit.rs`).

use std::time::Instant;

use duckdb::Connection;

use super::audit;
use super::engine::duck;
use super::files::remove_build;
use super::models::{self, Kind, Model, Severity};
use super::publish::{self, Slot};
use super::report::{AuditFinding, Step, StepMode};
use crate::error::{Error, Result, duckdb_message, duckdb_source};

/// Builds the slot attached as `lake` (see `publish::attach`) from the
/// history: runs the `table` and `view` models and the audits, records
/// `models_print` (the models' fingerprint), checkpoints and detaches it;
/// returns the audits' warnings. A failing `error` audit fails the build; a fresh file is then
/// removed, a slot updated in place is left for the next build to redo.
pub(crate) fn build(
    conn: &Connection,
    models: &[Model],
    models_print: &str,
    slot: &Slot,
    steps: &mut Vec<Step>,
) -> Result<Vec<AuditFinding>> {
    let started = Instant::now();
    let built = run_models(conn, models, steps)
        .and_then(|w| publish::record_models(conn, models_print).map(|()| w));
    let closed = conn
        .execute_batch("USE history; CHECKPOINT lake; DETACH lake")
        .map_err(duck("closing the build"));
    let outcome = built.and_then(|w| closed.map(|()| w));
    if outcome.is_err()
        && let Slot::Fresh { file, .. } = slot
    {
        remove_build(file);
    }
    steps.push(Step {
        model: "lakehouse".into(),
        mode: match slot {
            Slot::Update(_) => StepMode::Append,
            Slot::Fresh { .. } => StepMode::Rebuild,
        },
        millis: started.elapsed().as_millis() as u64,
    });
    outcome
}

fn run_models(
    conn: &Connection,
    models: &[Model],
    steps: &mut Vec<Step>,
) -> Result<Vec<AuditFinding>> {
    for m in models.iter().filter(|m| m.kind.builds_relation()) {
        let started = Instant::now();
        m.run(conn)?;
        let millis = started.elapsed().as_millis() as u64;
        tracing::debug!(model = %m.name, millis, "model done");
        steps.push(Step {
            model: m.name.clone(),
            mode: match m.kind {
                Kind::View => StepMode::View,
                _ => StepMode::Table,
            },
            millis,
        });
    }
    let mut warnings = Vec::new();
    for m in models.iter().filter(|m| m.kind == Kind::Audit) {
        let started = Instant::now();
        for audit in models::audits(m)? {
            let Some(finding) = audit::check(conn, &audit)? else {
                continue;
            };
            if finding.severity == Severity::Error {
                return Err(Error::Transform {
                    reason: format!("audit failed: {}", finding.summary()),
                    source: None,
                });
            }
            tracing::warn!(audit = %finding.audit, rows = finding.rows, at = %finding.at, "audit warning");
            warnings.push(finding);
        }
        steps.push(Step {
            model: m.name.clone(),
            mode: StepMode::Audit,
            millis: started.elapsed().as_millis() as u64,
        });
    }
    Ok(warnings)
}
