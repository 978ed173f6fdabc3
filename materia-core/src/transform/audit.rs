//! Running one audit statement (see `models.rs` for how they are written).
//!
//! An audit selects the offending rows of the published file, as dbt's tests
//! do: no row passes; otherwise it reports how many rows and the first
//! [`FIRST_ROWS`] of them. The older form counts them instead — `SELECT
//! count(*) FROM … WHERE …` — and keeps working. It is recognised by its
//! result, never by parsing the SQL: **exactly one row of exactly one
//! integer column named `count_star()` or `count(…)`** (DuckDB's names for an
//! unaliased `count(*)` and `count(x)`); its value is the number of
//! offending rows. Any other result is rows (so `SELECT count(*) AS n …` is
//! one offending row: the error then says how to write a count).
//!
//! The result is streamed: the rows are counted batch by batch and only the
//! first few are kept, so an audit that finds millions of rows costs no more
//! memory than one batch.

use duckdb::Connection;
use duckdb::arrow::datatypes::Schema;

use super::models::Audit;
use super::report::AuditFinding;
use super::rows::Rows;
use crate::error::{Error, Result, duckdb_message, duckdb_source};

/// How many offending rows a finding keeps (and a failure shows).
pub(crate) const FIRST_ROWS: usize = 5;

/// Runs `audit` on `conn`: `None` when it passes, else what it found.
pub(crate) fn check(conn: &Connection, audit: &Audit) -> Result<Option<AuditFinding>> {
    let found = offending(conn, &audit.sql).map_err(|e| Error::Transform {
        reason: format!(
            "audit {:?} ({}): {}",
            audit.description,
            audit.at,
            duckdb_message(&e)
        ),
        source: duckdb_source(e),
    })?;
    Ok((found.rows > 0).then(|| AuditFinding {
        severity: audit.severity,
        audit: audit.description.clone(),
        rows: found.rows,
        at: audit.at.clone(),
        first_rows: found.first,
    }))
}

/// What an audit statement found.
struct Found {
    /// Offending rows (the count, in the `count(*)` form).
    rows: u64,
    /// The first of them (none in the `count(*)` form).
    first: Rows,
}

/// Runs the statement once, counting its rows and keeping the first few.
fn offending(conn: &Connection, sql: &str) -> std::result::Result<Found, duckdb::Error> {
    let mut stmt = conn.prepare(sql)?;
    let stream = stmt.stream_arrow([])?;
    let schema = stream.get_schema();
    let (mut rows, mut room, mut kept) = (0u64, FIRST_ROWS, Vec::new());
    for batch in stream {
        let batch = batch?;
        let take = batch.num_rows().min(room);
        if take > 0 {
            kept.push(batch.slice(0, take));
            room -= take;
        }
        rows += batch.num_rows() as u64;
    }
    let first = Rows::from_batches(&schema, &kept)?;
    let value = first.rows.first().and_then(|r| r.first());
    if rows == 1
        && is_count(&schema)
        && let Some(count) = value.and_then(serde_json::Value::as_u64)
    {
        return Ok(Found {
            rows: count,
            first: Rows {
                columns: Vec::new(),
                rows: Vec::new(),
            },
        });
    }
    Ok(Found { rows, first })
}

/// Whether a result's one column is an unaliased `count(*)` or `count(x)`.
fn is_count(schema: &Schema) -> bool {
    let [field] = &schema.fields()[..] else {
        return false;
    };
    let name = field.name();
    field.data_type().is_integer()
        && (name == "count_star()" || (name.starts_with("count(") && name.ends_with(')')))
}
