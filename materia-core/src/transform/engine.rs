//! DuckDB for a build: the in-memory engine the history and the slot are
//! attached to, its errors as [`Error::Transform`], and SQL literals.

use std::path::Path;

use duckdb::{Config, Connection};

use super::TransformOptions;
use crate::error::{Error, Result, duckdb_message, duckdb_source};

/// DuckDB for a build: in memory (the files are attached), with the memory
/// limit and threads asked for, spilling to `spill` (a build file: a killed
/// build's is removed by the next).
pub(crate) fn engine(options: &TransformOptions, spill: &Path) -> Result<Connection> {
    let config = Config::default()
        .max_memory(&options.memory_limit)
        .and_then(|c| c.threads(options.threads as i64))
        .map_err(duck("configuring DuckDB"))?;
    let conn = Connection::open_in_memory_with_flags(config).map_err(duck("opening DuckDB"))?;
    conn.execute_batch(&format!(
        "SET temp_directory = {}",
        sql_string(&spill.to_string_lossy())
    ))
    .map_err(duck("temp_directory"))?;
    Ok(conn)
}

/// Maps a DuckDB error to [`Error::Transform`], prefixed with `context`
/// (DuckDB's message as `crate::error::duckdb_message` gives it).
pub(crate) fn duck(context: &str) -> impl Fn(duckdb::Error) -> Error + '_ {
    move |e| Error::Transform {
        reason: format!("{context}: {}", duckdb_message(&e)),
        source: duckdb_source(e),
    }
}

/// A SQL string literal.
pub(crate) fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Whether a DuckDB error is about the data read (so retrying cannot help),
/// not memory, interruption or the machine.
pub(crate) fn is_data_error(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["invalid input error", "conversion error", "csv error"]
        .iter()
        .any(|kind| lower.contains(kind))
        || (lower.contains("io error") && lower.contains("gzip"))
}

/// The object named `name` (`schema.table`) in `db`: `TABLE`, `VIEW` or none.
pub(crate) fn object_kind(conn: &Connection, db: &str, name: &str) -> Result<Option<String>> {
    use duckdb::OptionalExt;
    let (schema, table) = name.split_once('.').unwrap_or(("main", name));
    conn.query_row(
        "SELECT 'TABLE' FROM duckdb_tables() WHERE database_name = $1 AND schema_name = $2 \
           AND table_name = $3 \
         UNION ALL SELECT 'VIEW' FROM duckdb_views() WHERE database_name = $1 \
           AND schema_name = $2 AND view_name = $3",
        [db, schema, table],
        |r| r.get(0),
    )
    .optional()
    .map_err(duck("listing the lakehouse's tables"))
}
