//! Running a request's query: Arrow batches collected under the row and byte
//! caps, DuckDB's refusals turned into named errors, and the check that a
//! client's SQL is one read-only query.

use axum::http::StatusCode;
use duckdb::ToSql;
use duckdb::arrow::datatypes::SchemaRef;
use duckdb::arrow::record_batch::RecordBatch;

use super::encode::Blame;
use super::error::ApiError;

/// The caps on one query's rows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caps {
    /// Rows at most (more: refused), if capped.
    pub rows: Option<usize>,
    /// Bytes of Arrow batches at most (`--max-answer-mib`): the answer is
    /// refused as soon as they pass it, before any is encoded.
    pub bytes: usize,
    /// The readers' memory limit, for the error of a query that needs more.
    pub memory_bytes: u64,
}

/// Why a query gave no answer.
pub(crate) enum Failed {
    /// More rows than `Caps::rows`.
    Rows(usize),
    /// More bytes than `Caps::bytes`.
    Bytes,
    DuckDb(duckdb::Error),
}

impl From<duckdb::Error> for Failed {
    fn from(e: duckdb::Error) -> Failed {
        Failed::DuckDb(e)
    }
}

/// Runs `stmt` with `params`, collecting its Arrow batches under `caps`.
pub(crate) fn collect(
    stmt: &mut duckdb::Statement<'_>,
    params: &[&dyn ToSql],
    caps: Caps,
) -> Result<(SchemaRef, Vec<RecordBatch>), Failed> {
    let stream = stmt.stream_arrow(params)?;
    let schema = stream.get_schema();
    let (mut rows, mut bytes) = (0, 0);
    let mut batches = Vec::new();
    for batch in stream {
        let batch = batch?;
        rows += batch.num_rows();
        bytes += batch.get_array_memory_size();
        if let Some(max) = caps.rows
            && rows > max
        {
            return Err(Failed::Rows(max));
        }
        if bytes > caps.bytes {
            return Err(Failed::Bytes);
        }
        batches.push(batch);
    }
    Ok((schema, batches))
}

/// What DuckDB's refusal of a query means for the client: out of memory
/// and past the time limit are the server's limits (503, named); anything
/// else is the query's fault when the client wrote it (`client_sql`: 400
/// naming the parameter), else the server's (500).
pub(crate) fn refusal(e: &duckdb::Error, caps: Caps, blame: &Blame, client_sql: bool) -> ApiError {
    let text = crate::error::duckdb_message(e);
    if text.contains("Out of Memory") {
        return ApiError::busy(format!(
            "the query needs more memory than this server's readers have ({} MiB for all queries running, --memory-limit): ask for less, or try again ({text})",
            caps.memory_bytes >> 20
        ));
    }
    if text.contains("Interrupt") || text.contains("maximum execution time") {
        return blame.too_slow();
    }
    if client_sql {
        ApiError::bad(blame.parameter, text)
    } else {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, text, None)
    }
}

/// The failure as the client's error.
pub(crate) fn failed(f: Failed, caps: Caps, blame: &Blame, client_sql: bool) -> ApiError {
    match f {
        Failed::Rows(max) => ApiError::bad(
            blame.parameter,
            format!("more than {max} rows: add a LIMIT"),
        ),
        Failed::Bytes => blame.too_big(caps.bytes),
        Failed::DuckDb(e) => refusal(&e, caps, blame, client_sql),
    }
}

/// The statement DuckDB runs for a client's `sql`: DuckDB's own `query()`
/// table function over it, which parses the text and accepts exactly one
/// `SELECT` statement (as `FROM`, `WITH`, `VALUES`, `DESCRIBE`, `SUMMARIZE`
/// are) — so `CREATE` (a `TEMP` table too), `INSERT`, `COPY`, `PRAGMA`,
/// `SET`, `ATTACH`, `CALL` and several statements never run. The text is a
/// string literal (quotes doubled), never SQL of the outer statement.
pub(crate) fn read_only(sql: &str) -> String {
    format!("SELECT * FROM query('{}')", sql.replace('\'', "''"))
}

/// DuckDB's refusal of a statement that is not one read-only query, said
/// plainly (other errors pass as they are).
pub(crate) fn explain_refusal(e: ApiError) -> ApiError {
    if e.message.contains("Expected a single SELECT statement") {
        return ApiError::bad(
            "sql",
            "only one read-only query runs here (SELECT, FROM, WITH, VALUES, DESCRIBE, SUMMARIZE): \
             CREATE (TEMP tables too), INSERT, UPDATE, DELETE, COPY, PRAGMA, SET, ATTACH, CALL and \
             several statements are refused",
        );
    }
    e
}
