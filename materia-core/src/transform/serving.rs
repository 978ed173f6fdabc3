//! The published file: its `table` and `view` models run on the slot being
//! written (`publish.rs`; the history attached as `history`), then the
//! audits (`audit.rs`).
//!
//! Which models run is `runs.rs`'s answer; a model that does not run keeps
//! the published build's table. The slot's own is that table when the slot
//! recorded the same build of the model (`materia.models`): for the built-in
//! and generated models, which read only the history, the same fingerprint
//! and history generation; for a caller's model, which may read `random()`
//! or `now()`, the same build. Else a caller's model's table (the one named
//! by its `-- model:`) is copied from the published file (attached read-only
//! as `published`), and any other model runs again. The models the slot has
//! and this build left out are dropped.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use duckdb::Connection;

use super::audit;
use super::engine::{duck, object_kind, sql_string};
use super::files::remove_build;
use super::models::{self, Kind, Model, Severity};
use super::publish::Slot;
use super::record::{ModelRecord, Record, USER};
use super::report::{AuditFinding, Step, StepMode};
use super::runs::RunReason;
use crate::error::{Error, Result};

/// What a build of the slot runs and records.
pub(crate) struct Build<'a> {
    /// Every model, in run order.
    pub models: &'a [Model],
    /// What the build records.
    pub record: &'a Record,
    /// The table models to run, with why (`runs::decide`).
    pub runs: &'a BTreeMap<String, Vec<RunReason>>,
    /// The published file and its record, where the models that do not run
    /// get their tables.
    pub published: Option<(&'a Path, &'a Record)>,
    /// The history's generation.
    pub generation: i64,
}

/// Builds the slot attached as `lake` (see `publish::attach`) from the
/// history: runs the `table` and `view` models and the audits, records the build,
/// checkpoints and detaches it; returns the audits' warnings. A failing
/// `error` audit fails the build; a fresh file is then removed, a slot
/// updated in place is left without its record (`materia.published`), so the
/// next build writes it afresh.
pub(crate) fn build(
    conn: &Connection,
    build: &Build<'_>,
    slot: &Slot,
    steps: &mut Vec<Step>,
) -> Result<Vec<AuditFinding>> {
    let started = Instant::now();
    let built_by = format!(
        "{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    );
    let built = run_tables(conn, build, steps).and_then(|carried| {
        let warnings = run_audits(conn, build.models, steps)?;
        build
            .record
            .write(conn, (build.generation, &built_by), &carried)?;
        Ok(warnings)
    });
    let closed = conn
        .execute_batch(
            "USE history; CHECKPOINT lake; DETACH lake; DETACH DATABASE IF EXISTS published",
        )
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
        reasons: Vec::new(),
    });
    outcome
}

/// Runs the table models `build.runs` names; brings every other one to the
/// published build's table; drops those the slot has and the build left
/// out. Returns the records of the tables kept or copied.
fn run_tables(
    conn: &Connection,
    build: &Build<'_>,
    steps: &mut Vec<Step>,
) -> Result<BTreeMap<String, ModelRecord>> {
    let in_slot = Record::read(conn, Some("lake")).ok().flatten();
    if in_slot.is_some() {
        // The slot's record holds only while this build's models have not
        // touched it: a build that fails (a model, an audit, a kill) leaves
        // a slot without one, which the next build writes afresh.
        conn.execute_batch("DROP TABLE lake.materia.published")
            .map_err(duck("voiding the slot's record"))?;
    }
    let in_slot = in_slot.unwrap_or_default();
    drop_left_out(conn, &in_slot, build.record)?;
    let mut carried = BTreeMap::new();
    let mut attached = false;
    for m in build.models.iter().filter(|m| m.kind.builds_relation()) {
        let reasons = match (build.runs.get(&m.name), build.published) {
            (Some(reasons), _) => reasons.clone(),
            (None, Some((path, published))) => {
                let Some(want) = published.model(&m.name) else {
                    continue;
                };
                if let Some(have) = in_slot.model(&m.name).filter(|have| same_table(have, want)) {
                    carried.insert(m.name.clone(), have.clone());
                    continue;
                }
                if want.origin == USER {
                    if !attached {
                        attach_published(conn, path)?;
                        attached = true;
                    }
                    if copy_table(conn, &m.name, steps)? {
                        carried.insert(m.name.clone(), want.clone());
                        continue;
                    }
                }
                vec![RunReason::CatchUp]
            }
            (None, None) => continue,
        };
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
            reasons,
        });
    }
    Ok(carried)
}

/// Whether the slot's build of a model (`have`) made the same table as the
/// published build's (`want`): a caller's model the same build, any other
/// the same SQL over the same history.
fn same_table(have: &ModelRecord, want: &ModelRecord) -> bool {
    have.fingerprint == want.fingerprint
        && have.generation == want.generation
        && (want.origin != USER || have.built_by == want.built_by)
}

/// `ATTACH` the published file read-only as `published`.
fn attach_published(conn: &Connection, path: &Path) -> Result<()> {
    conn.execute_batch(&format!(
        "ATTACH {} AS published (READ_ONLY)",
        sql_string(&path.to_string_lossy())
    ))
    .map_err(duck("attaching the published lakehouse"))
}

/// Copies the table `name` from the published file into the slot; `false`
/// when the published file has no table of that name.
fn copy_table(conn: &Connection, name: &str, steps: &mut Vec<Step>) -> Result<bool> {
    if object_kind(conn, "published", name)?.as_deref() != Some("TABLE") {
        return Ok(false);
    }
    let started = Instant::now();
    let (schema, _) = name.split_once('.').unwrap_or(("main", name));
    let quoted = super::quoted_name(name);
    let sql = format!(
        "CREATE SCHEMA IF NOT EXISTS lake.{}; \
         CREATE OR REPLACE TABLE lake.{quoted} AS FROM published.{quoted}",
        super::quoted_ident(schema)
    );
    conn.execute_batch(&sql).map_err(duck(&format!(
        "copying {name} from the published lakehouse"
    )))?;
    steps.push(Step {
        model: name.to_owned(),
        mode: StepMode::Copied,
        millis: started.elapsed().as_millis() as u64,
        reasons: Vec::new(),
    });
    Ok(true)
}

/// Drops the tables (or views) of the models the slot was built with and
/// `record` leaves out.
fn drop_left_out(conn: &Connection, in_slot: &Record, record: &Record) -> Result<()> {
    for m in in_slot.models.iter().filter(|m| m.has_table()) {
        if record.model(&m.name).is_some() {
            continue;
        }
        if let Some(kind) = object_kind(conn, "lake", &m.name)? {
            tracing::info!(model = %m.name, "dropping a model this build left out");
            let sql = format!("DROP {kind} lake.{}", super::quoted_name(&m.name));
            conn.execute_batch(&sql).map_err(duck(&sql))?;
        }
    }
    Ok(())
}

/// Runs the audits, a step per audit model.
fn run_audits(
    conn: &Connection,
    models: &[Model],
    steps: &mut Vec<Step>,
) -> Result<Vec<AuditFinding>> {
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
            reasons: Vec::new(),
        });
    }
    Ok(warnings)
}
