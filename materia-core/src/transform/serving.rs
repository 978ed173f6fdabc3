//! The published file: built from scratch from the history by the `table`
//! models, then audited.

use std::path::Path;
use std::time::Instant;

use duckdb::Connection;

use super::models::{self, Kind, Model, Severity};
use super::{AuditFinding, Step, StepMode, duck, sql_string};
use crate::error::{Error, Result};

/// Builds the next published file at `build` (which must not exist) from the
/// history attached to `conn`; returns the audits' warnings. A failing `error`
/// audit fails the build. The file is checkpointed and detached either way.
pub(crate) fn build(
    conn: &Connection,
    models: &[Model],
    build: &Path,
    steps: &mut Vec<Step>,
) -> Result<Vec<AuditFinding>> {
    conn.execute_batch(&format!(
        "ATTACH {} AS lake; USE lake",
        sql_string(&build.to_string_lossy())
    ))
    .map_err(duck("creating the build"))?;
    let built = run_models(conn, models, steps);
    let closed = conn
        .execute_batch("USE history; CHECKPOINT lake; DETACH lake")
        .map_err(duck("closing the build"));
    let warnings = built?;
    closed?;
    Ok(warnings)
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
                        reason: format!("audit {:?} ({}): {e}", audit.description, audit.at),
                        source: Some(Box::new(e)),
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
