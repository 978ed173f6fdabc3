//! The published file: its `table` models run on the slot being written
//! (`publish.rs`; the history attached as `history`), then the audits.

use std::time::Instant;

use duckdb::Connection;

use super::engine::duck;
use super::files::remove_build;
use super::models::{self, Kind, Model, Severity};
use super::publish::{self, Slot};
use super::report::{AuditFinding, Step, StepMode};
use crate::error::{Error, Result, duckdb_message, duckdb_source};

/// Builds the slot attached as `lake` (see `publish::attach`) from the
/// history: runs the `table` models and the audits, records `models_print`
/// (the models' fingerprint), checkpoints and detaches it; returns the audits'
/// warnings. A failing `error` audit fails the build; a fresh file is then
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
    for m in models.iter().filter(|m| m.kind == Kind::Table) {
        let started = Instant::now();
        m.run(conn)?;
        let millis = started.elapsed().as_millis() as u64;
        tracing::debug!(model = %m.name, millis, "model done");
        steps.push(Step {
            model: m.name.clone(),
            mode: StepMode::Table,
            millis,
        });
    }
    let started = Instant::now();
    let mut warnings = Vec::new();
    for m in models.iter().filter(|m| m.kind == Kind::Audit) {
        for audit in models::audits(m)? {
            let rows: i64 =
                conn.query_row(&audit.sql, [], |r| r.get(0))
                    .map_err(|e| Error::Transform {
                        reason: format!(
                            "audit {:?} ({}): {}",
                            audit.description,
                            audit.at,
                            duckdb_message(&e)
                        ),
                        source: duckdb_source(e),
                    })?;
            if rows == 0 {
                continue;
            }
            if audit.severity == Severity::Error {
                return Err(Error::Transform {
                    reason: format!(
                        "audit failed: {} ({rows} offending rows; {})",
                        audit.description, audit.at
                    ),
                    source: None,
                });
            }
            tracing::warn!(audit = %audit.description, rows, "audit warning");
            warnings.push(AuditFinding {
                severity: audit.severity,
                audit: audit.description,
                rows: rows as u64,
            });
        }
    }
    tracing::debug!(millis = started.elapsed().as_millis() as u64, "audits");
    Ok(warnings)
}
