//! Answers written in the request's format, within the request's time limit
//! and the server's byte cap (`--max-answer-mib`): JSON (rows in the
//! table's column order), CSV, an Arrow IPC stream or Parquet.

use std::io::{self, Write};
use std::time::Instant;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use duckdb::arrow::datatypes::SchemaRef;
use duckdb::arrow::record_batch::RecordBatch;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value as Json;

use super::error::ApiError;
use crate::transform::Rows;

/// How a response is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Format {
    Json,
    Csv,
    /// Arrow IPC stream.
    Arrow,
    Parquet,
}

/// The format of a request and how it was chosen.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Picked {
    pub format: Format,
    /// Chosen by the `Accept` header (the answer then carries `Vary:
    /// Accept`); a suffix fixes the format whatever `Accept` says.
    pub by_accept: bool,
}

impl Format {
    /// From a `.csv` / `.json` / `.arrow` / `.parquet` suffix of the last
    /// path segment (stripped from `name`), else `Accept`.
    pub fn pick(name: &mut String, headers: &HeaderMap) -> Picked {
        for (suffix, format) in [
            (".csv", Format::Csv),
            (".json", Format::Json),
            (".arrow", Format::Arrow),
            (".parquet", Format::Parquet),
        ] {
            if let Some(stripped) = name.strip_suffix(suffix) {
                *name = stripped.to_owned();
                return Picked {
                    format,
                    by_accept: false,
                };
            }
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let format = if accept.contains("text/csv") {
            Format::Csv
        } else if accept.contains("application/vnd.apache.arrow.stream") {
            Format::Arrow
        } else if accept.contains("parquet") {
            Format::Parquet
        } else {
            Format::Json
        };
        Picked {
            format,
            by_accept: true,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => "application/vnd.apache.arrow.stream",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// What a handler's query produced.
pub(crate) enum Body {
    Json(Json),
    /// Rows, written in the request's format.
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        /// Set for a table's page of rows.
        page: Option<Page>,
    },
}

/// Where a page of a table's rows sits in the whole answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Page {
    /// More rows follow this page.
    pub truncated: bool,
    /// The request for the next page (path and query), when truncated.
    pub next: Option<String>,
    /// Rows matching the filters in all, when asked for (`count=true`).
    pub count: Option<u64>,
}

/// An answer's bytes and the headers it adds (`Link`, `X-Total-Count`…),
/// kept together in the server's cache.
#[derive(Clone)]
pub(crate) struct Encoded {
    pub body: Vec<u8>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// The server's limits on writing one answer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    /// Bytes an answer may take (`--max-answer-mib`).
    pub max_bytes: usize,
    /// When the request's time is up.
    pub deadline: Instant,
}

/// Why an answer could not be written in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Over {
    Bytes,
    Time,
}

/// A `Write` into memory that refuses past the budget's bytes or deadline,
/// remembering which.
struct Capped {
    out: Vec<u8>,
    budget: Budget,
    over: Option<Over>,
    /// The deadline is read again after this many bytes.
    next_clock: usize,
}

/// How often (bytes written) a writer reads the clock.
const CLOCK_EVERY: usize = 64 * 1024;

impl Capped {
    fn new(budget: Budget) -> Capped {
        Capped {
            out: Vec::new(),
            budget,
            over: None,
            next_clock: 0,
        }
    }
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.len() + buf.len() > self.budget.max_bytes {
            self.over = Some(Over::Bytes);
            return Err(io::Error::other("over the answer byte cap"));
        }
        if self.out.len() >= self.next_clock {
            if Instant::now() >= self.budget.deadline {
                self.over = Some(Over::Time);
                return Err(io::Error::other("past the time limit"));
            }
            self.next_clock = self.out.len() + CLOCK_EVERY;
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How a refusal names the limit and what the client can do.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Blame {
    /// The request parameter that makes the answer smaller (`limit`, `sql`).
    pub parameter: &'static str,
    /// What to change, for the error message.
    pub hint: &'static str,
    /// The request's time limit, for the error message.
    pub timeout: std::time::Duration,
}

impl Blame {
    /// The 400 for an answer over `max_bytes`.
    pub fn too_big(&self, max_bytes: usize) -> ApiError {
        ApiError::bad(
            self.parameter,
            format!(
                "the answer is larger than {} MiB, this server's cap (--max-answer-mib): {}",
                max_bytes.div_ceil(1 << 20),
                self.hint
            ),
        )
    }

    /// The 503 for a request past its time limit.
    pub fn too_slow(&self) -> ApiError {
        ApiError::busy(format!(
            "the query took longer than {} s (the server's --timeout-secs)",
            self.timeout.as_secs_f64()
        ))
    }
}

/// Writes `body` in `format` within `budget`.
pub(crate) fn encode(
    format: Format,
    body: Body,
    budget: Budget,
    blame: &Blame,
) -> Result<Encoded, ApiError> {
    let mut out = Capped::new(budget);
    let (written, headers) = match body {
        Body::Json(v) => (
            serde_json::to_writer(&mut out, &v).map_err(|e| e.to_string()),
            Vec::new(),
        ),
        Body::Rows {
            schema,
            batches,
            page,
        } => {
            let headers = page.as_ref().map(page_headers).unwrap_or_default();
            (
                write_rows(&mut out, format, schema, &batches, page.as_ref()),
                headers,
            )
        }
    };
    match (written, out.over) {
        (Ok(()), _) => Ok(Encoded {
            body: out.out,
            headers,
        }),
        (Err(_), Some(Over::Bytes)) => Err(blame.too_big(budget.max_bytes)),
        (Err(_), Some(Over::Time)) => Err(blame.too_slow()),
        (Err(e), None) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("writing the answer: {e}"),
            None,
        )),
    }
}

/// `Link: <next>; rel="next"` and `X-Total-Count`, for every format (a CSV,
/// Arrow or Parquet answer has no room for them in its body).
fn page_headers(page: &Page) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::new();
    if let Some(next) = &page.next
        && let Ok(v) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\""))
    {
        headers.push((header::LINK, v));
    }
    headers.push((
        HeaderName::from_static("x-truncated"),
        HeaderValue::from_static(if page.truncated { "true" } else { "false" }),
    ));
    if let Some(count) = page.count {
        headers.push((HeaderName::from_static("x-total-count"), count.into()));
    }
    headers
}

/// Rows in `format`: JSON `{"rows": [...]}` (and the page's `truncated`,
/// `next`, `count`), CSV with a header, an Arrow IPC stream, or a Parquet
/// file.
fn write_rows(
    out: &mut Capped,
    format: Format,
    schema: SchemaRef,
    batches: &[RecordBatch],
    page: Option<&Page>,
) -> Result<(), String> {
    let text = |e: &dyn std::fmt::Display| e.to_string();
    match format {
        Format::Json => {
            let rows = Rows::from_batches(&schema, batches).map_err(|e| text(&e))?;
            serde_json::to_writer(out, &RowsAnswer { rows: &rows, page }).map_err(|e| text(&e))
        }
        Format::Csv => {
            let rows = Rows::from_batches(&schema, batches).map_err(|e| text(&e))?;
            rows.write_csv(out).map_err(|e| text(&e))
        }
        Format::Arrow => {
            let mut w =
                arrow_ipc::writer::StreamWriter::try_new(out, &schema).map_err(|e| text(&e))?;
            for b in batches {
                w.write(b).map_err(|e| text(&e))?;
            }
            w.finish().map_err(|e| text(&e))
        }
        Format::Parquet => {
            let mut w =
                parquet::arrow::ArrowWriter::try_new(out, schema, None).map_err(|e| text(&e))?;
            for b in batches {
                w.write(b).map_err(|e| text(&e))?;
            }
            w.close().map(drop).map_err(|e| text(&e))
        }
    }
}

/// `{"rows": [...], "truncated": …, "next": …, "count": …}`: each row an
/// object with the columns in the query's order.
struct RowsAnswer<'a> {
    rows: &'a Rows,
    page: Option<&'a Page>,
}

impl Serialize for RowsAnswer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("rows", &self.rows.ordered())?;
        if let Some(page) = self.page {
            map.serialize_entry("truncated", &page.truncated)?;
            if let Some(next) = &page.next {
                map.serialize_entry("next", next)?;
            }
            if let Some(count) = page.count {
                map.serialize_entry("count", &count)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use duckdb::arrow::array::{ArrayRef, Int64Array, StringArray};
    use duckdb::arrow::record_batch::RecordBatch;

    use super::*;

    fn rows(n: i64) -> Body {
        let batch = RecordBatch::try_from_iter([
            (
                "z",
                Arc::new(Int64Array::from_iter_values(0..n)) as ArrayRef,
            ),
            (
                "a",
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("r{i}")),
                )) as ArrayRef,
            ),
        ])
        .expect("batch");
        Body::Rows {
            schema: batch.schema(),
            batches: vec![batch],
            page: Some(Page {
                truncated: true,
                next: Some("/v1/tables/s.t?offset=2".into()),
                count: Some(9),
            }),
        }
    }

    fn blame() -> Blame {
        Blame {
            parameter: "limit",
            hint: "ask for less",
            timeout: Duration::from_secs(3),
        }
    }

    fn budget(max_bytes: usize, left: Duration) -> Budget {
        Budget {
            max_bytes,
            deadline: Instant::now() + left,
        }
    }

    #[test]
    fn json_rows_keep_the_column_order_and_say_where_the_page_sits() {
        let out = encode(
            Format::Json,
            rows(2),
            budget(1 << 20, Duration::from_secs(9)),
            &blame(),
        )
        .expect("encodes");
        assert_eq!(
            String::from_utf8(out.body).expect("utf-8"),
            r#"{"rows":[{"z":0,"a":"r0"},{"z":1,"a":"r1"}],"truncated":true,"next":"/v1/tables/s.t?offset=2","count":9}"#
        );
        let names: Vec<&str> = out.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["link", "x-truncated", "x-total-count"]);
    }

    #[test]
    fn every_format_is_refused_past_the_byte_cap_or_the_deadline() {
        for format in [Format::Json, Format::Csv, Format::Arrow, Format::Parquet] {
            let e = encode(
                format,
                rows(50_000),
                budget(64 << 10, Duration::from_secs(9)),
                &blame(),
            )
            .err()
            .unwrap_or_else(|| panic!("{format:?} over the cap was written"));
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{format:?}");
            assert_eq!(e.parameter.as_deref(), Some("limit"));
            assert!(e.message.contains("--max-answer-mib"), "{}", e.message);
            let e = encode(
                format,
                rows(50_000),
                budget(1 << 30, Duration::ZERO),
                &blame(),
            )
            .err()
            .unwrap_or_else(|| panic!("{format:?} past the deadline was written"));
            assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE, "{format:?}");
            assert!(e.message.contains("longer than 3 s"), "{}", e.message);
        }
    }
}
