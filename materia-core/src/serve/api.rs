//! The HTTP API: tables, releases and health of the published lakehouse.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use duckdb::ToSql;
use duckdb::arrow::datatypes::SchemaRef;
use duckdb::arrow::record_batch::RecordBatch;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::cache::{Cache, Cached};
use crate::transform::Rows;
use crate::transform::{Readers, Snapshot, quoted_name as quoted};

/// Rows a table request returns at most (`limit` above it is a 400).
pub const MAX_LIMIT: usize = 10_000;
/// Rows a table request returns without `limit`.
pub const DEFAULT_LIMIT: usize = 1_000;

#[derive(Clone)]
pub(crate) struct App {
    pub readers: Readers,
    pub permits: Arc<Semaphore>,
    pub timeout: Duration,
    pub allow_sql: bool,
    pub cache: Arc<Cache>,
}

pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/v1/health", get(health))
        .route("/v1/releases", get(releases))
        .route("/v1/tables", get(tables))
        .route("/v1/tables/{name}", get(table))
        .route("/v1/sql", axum::routing::post(sql))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint", None) })
        .with_state(app)
}

/// The page: the World balance, a country picker and a revision history, from
/// this API (plain HTML, SVG and a little script; nothing fetched elsewhere).
async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("page.html"),
    )
        .into_response()
}

/// A JSON error: `{"error": "...", "parameter": "..."}`.
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    parameter: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>, parameter: Option<&str>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            parameter: parameter.map(str::to_owned),
        }
    }

    fn bad(parameter: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message, Some(parameter))
    }

    fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(p) = self.parameter {
            body["parameter"] = p.into();
        }
        (self.status, axum::Json(body)).into_response()
    }
}

/// How a response is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    Json,
    Csv,
    /// Arrow IPC stream.
    Arrow,
    Parquet,
}

impl Format {
    /// From a `.csv` / `.json` / `.arrow` / `.parquet` suffix of the last
    /// path segment, else `Accept`.
    fn pick(name: &mut String, headers: &HeaderMap) -> Format {
        for (suffix, format) in [
            (".csv", Format::Csv),
            (".json", Format::Json),
            (".arrow", Format::Arrow),
            (".parquet", Format::Parquet),
        ] {
            if let Some(stripped) = name.strip_suffix(suffix) {
                *name = stripped.to_owned();
                return format;
            }
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.contains("text/csv") {
            Format::Csv
        } else if accept.contains("application/vnd.apache.arrow.stream") {
            Format::Arrow
        } else if accept.contains("parquet") {
            Format::Parquet
        } else {
            Format::Json
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => "application/vnd.apache.arrow.stream",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// The ETag of a request on a build: the build id and a hash of the
/// normalised request (path, sorted parameters, format).
fn etag(snap: &Snapshot, path: &str, params: &[(String, String)], format: Format) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut h = Sha256::new();
    h.update(path.as_bytes());
    for (k, v) in sorted {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([1]);
        h.update(v.as_bytes());
    }
    h.update(format!("{format:?}").as_bytes());
    let digest = crate::landing::Sha256Digest::from_hasher(h).to_string();
    format!("\"{}.{}\"", snap.build, &digest[..16])
}

/// Headers every answer about a build carries, and whether the client's
/// `If-None-Match` already holds this ETag (answer 304, nothing queried).
fn caching(snap: &Snapshot, etag: &str, request: &HeaderMap) -> (HeaderMap, bool) {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    let modified = snap
        .published_at
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    if let Ok(v) = HeaderValue::from_str(&modified) {
        h.insert(header::LAST_MODIFIED, v);
    }
    // Data changes at most daily: cache briefly, always revalidate after.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300, must-revalidate"),
    );
    let matched = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t == etag || t.strip_prefix("W/") == Some(etag)
        });
    (h, matched)
}

/// Runs `work` on a connection of the current build, bounded by the server's
/// permits and timeout (a query past it is interrupted); a `cacheable` answer
/// carries the caching headers, is a 304 when the client holds its ETag, and
/// is kept in memory for the next client asking the same of this build
/// (`Cache-Control: no-cache` in a request skips the kept copy); an
/// uncacheable one is `no-store`.
async fn answer<F>(
    app: &App,
    cacheable: bool,
    path: &str,
    params: Vec<(String, String)>,
    format: Format,
    request: &HeaderMap,
    work: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(&Snapshot, &duckdb::Connection, &[(String, String)]) -> Result<Body, ApiError>
        + Send
        + 'static,
{
    let Ok(_permit) = app.permits.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests in flight",
            None,
        ));
    };
    let snap = match app.readers.current().map_err(ApiError::internal)? {
        Some(snap) => snap,
        None => {
            let readers = app.readers.clone();
            tokio::task::spawn_blocking(move || readers.snapshot())
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?
        }
    };
    let (mut headers, tag) = if cacheable {
        let tag = etag(&snap, path, &params, format);
        let (mut headers, matched) = caching(&snap, &tag, request);
        if matched {
            return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
        }
        if !no_cache(request)
            && let Some(kept) = app.cache.get(&snap.build, &tag)
        {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(kept.content_type),
            );
            headers.insert("x-cache", HeaderValue::from_static("hit"));
            return Ok((StatusCode::OK, headers, kept.body).into_response());
        }
        headers.insert("x-cache", HeaderValue::from_static("miss"));
        (headers, Some(tag))
    } else {
        let headers =
            HeaderMap::from_iter([(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))]);
        (headers, None)
    };
    let build = snap.build.clone();
    let running: Arc<Mutex<Option<Arc<duckdb::InterruptHandle>>>> = Arc::default();
    let job = tokio::task::spawn_blocking({
        let running = Arc::clone(&running);
        move || {
            snap.with_connection(|conn| {
                *lock(&running) = Some(conn.interrupt_handle());
                let out = work(&snap, conn, &params);
                *lock(&running) = None;
                out
            })
        }
    });
    let body = match tokio::time::timeout(app.timeout, job).await {
        Ok(joined) => joined.map_err(ApiError::internal)??,
        Err(_) => {
            // Stop the query so the connection serves others again (the
            // closure clears the handle under the same lock once done, so
            // only a query of this request is ever interrupted).
            if let Some(handle) = lock(&running).take() {
                handle.interrupt();
            }
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the query took longer than {} s", app.timeout.as_secs()),
                None,
            ));
        }
    };
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let bytes = Bytes::from(match body {
        Body::Json(v) => serde_json::to_vec(&v).map_err(ApiError::internal)?,
        Body::Batches(schema, batches) => encode(format, schema, &batches)?,
    });
    if let Some(tag) = tag {
        let kept = Cached {
            content_type: format.content_type(),
            body: bytes.clone(),
        };
        app.cache.put(&build, tag, kept);
    }
    Ok((StatusCode::OK, headers, bytes).into_response())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether the request asks for an answer computed anew (`Cache-Control:
/// no-cache`).
fn no_cache(request: &HeaderMap) -> bool {
    request
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
        })
}

/// What a handler's query produced.
pub(crate) enum Body {
    Json(Json),
    /// Rows, written in the request's format.
    Batches(SchemaRef, Vec<RecordBatch>),
}

/// Rows in `format`: JSON `{"rows": [...]}`, CSV with a header, an Arrow IPC
/// stream, or a Parquet file.
fn encode(format: Format, schema: SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ApiError> {
    match format {
        Format::Json | Format::Csv => {
            let rows = Rows::from_batches(&schema, batches).map_err(ApiError::internal)?;
            if format == Format::Json {
                return serde_json::to_vec(&json!({ "rows": rows.json() }))
                    .map_err(ApiError::internal);
            }
            let mut out = Vec::new();
            rows.write_csv(&mut out).map_err(ApiError::internal)?;
            Ok(out)
        }
        Format::Arrow => {
            let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema)
                .map_err(ApiError::internal)?;
            for b in batches {
                w.write(b).map_err(ApiError::internal)?;
            }
            w.finish().map_err(ApiError::internal)?;
            w.into_inner().map_err(ApiError::internal)
        }
        Format::Parquet => {
            let mut w = parquet::arrow::ArrowWriter::try_new(Vec::new(), schema, None)
                .map_err(ApiError::internal)?;
            for b in batches {
                w.write(b).map_err(ApiError::internal)?;
            }
            w.into_inner().map_err(ApiError::internal)
        }
    }
}

/// Runs `sql` for a rows answer.
fn rows_body(
    conn: &duckdb::Connection,
    sql: &str,
    params: &[&dyn ToSql],
) -> Result<Body, ApiError> {
    let (schema, batches) =
        crate::transform::rows::batches(conn, sql, params).map_err(ApiError::internal)?;
    Ok(Body::Batches(schema, batches))
}

async fn health(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    answer(
        &app,
        false,
        "/v1/health",
        Vec::new(),
        Format::Json,
        &headers,
        |snap, _, _| {
            let age = jiff::Timestamp::now()
                .duration_since(snap.published_at)
                .as_secs()
                .max(0);
            Ok(Body::Json(json!({
                "build": snap.build,
                "published_at": snap.published_at.to_string(),
                "age_seconds": age,
            })))
        },
    )
    .await
}

async fn releases(
    State(app): State<App>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let format = Format::pick(&mut String::new(), &headers);
    answer(
        &app,
        true,
        "/v1/releases",
        params,
        format,
        &headers,
        |_, conn, _| {
            rows_body(
                conn,
                "SELECT * FROM serving.releases ORDER BY dataset, ord",
                &[],
            )
        },
    )
    .await
}

async fn tables(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    answer(&app, true, "/v1/tables", Vec::new(), Format::Json, &headers, |snap, conn, _| {
        let mut list = Vec::new();
        for (name, (kind, columns)) in snap.catalog(conn).map_err(ApiError::internal)? {
            let rows: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {}", quoted(name)), [], |r| r.get(0))
                .map_err(ApiError::internal)?;
            list.push(json!({
                "name": name,
                "kind": if kind == "VIEW" { "view" } else { "table" },
                "columns": columns.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>(),
                "rows": rows,
            }));
        }
        Ok(Body::Json(json!({ "build": snap.build, "tables": list })))
    })
    .await
}

async fn table(
    State(app): State<App>,
    UrlPath(mut name): UrlPath<String>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let format = Format::pick(&mut name, &headers);
    let path = format!("/v1/tables/{name}");
    answer(
        &app,
        true,
        &path,
        params,
        format,
        &headers,
        move |snap, conn, params| {
            let catalog = snap.catalog(conn).map_err(ApiError::internal)?;
            let Some((_, columns)) = catalog.get(&name) else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no table {name:?}; GET /v1/tables lists them"),
                    None,
                ));
            };
            let query = TableQuery::parse(&name, columns, params)?;
            let args: Vec<&dyn ToSql> = query.args.iter().map(|a| a as &dyn ToSql).collect();
            // A value that does not cast fails the query: then name it.
            rows_body(conn, &query.sql, &args).or_else(|e| {
                query.check_values(conn)?;
                Err(e)
            })
        },
    )
    .await
}

/// A table request as SQL: allow-listed columns, equality or `from..to`
/// filters on any column (values bound, cast to the column's type: a value
/// that does not cast fails the query, and [`TableQuery::check_values`] then
/// names it), a limit.
struct TableQuery {
    sql: String,
    args: Vec<String>,
    /// (parameter, value, type) of each bound value, to check it casts.
    casts: Vec<(String, String, String)>,
}

impl TableQuery {
    fn parse(
        name: &str,
        columns: &[(String, String)],
        params: &[(String, String)],
    ) -> Result<TableQuery, ApiError> {
        let type_of = |c: &str| columns.iter().find(|(n, _)| n == c).map(|(_, t)| t.clone());
        let mut select = "*".to_owned();
        let mut limit = DEFAULT_LIMIT;
        let mut wheres = Vec::new();
        let mut args = Vec::new();
        let mut casts = Vec::new();
        for (key, value) in params {
            match key.as_str() {
                "columns" => {
                    let mut picked = Vec::new();
                    for c in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                        if type_of(c).is_none() {
                            return Err(ApiError::bad(
                                "columns",
                                format!("{name} has no column {c:?}"),
                            ));
                        }
                        picked.push(quoted(c));
                    }
                    if picked.is_empty() {
                        return Err(ApiError::bad("columns", "names no column"));
                    }
                    select = picked.join(", ");
                }
                "limit" => {
                    limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad(
                                "limit",
                                format!("must be 1 to {MAX_LIMIT}, got {value:?}"),
                            )
                        })?;
                }
                column => {
                    let Some(ty) = type_of(column) else {
                        return Err(ApiError::bad(
                            column,
                            format!(
                                "unknown parameter: {name} has no column {column:?} (filters are column=value or column=from..to; also columns=, limit=)"
                            ),
                        ));
                    };
                    let col = quoted(column);
                    let cast =
                        |v: &str,
                         args: &mut Vec<String>,
                         casts: &mut Vec<(String, String, String)>| {
                            args.push(v.to_owned());
                            casts.push((column.to_owned(), v.to_owned(), ty.clone()));
                            format!("CAST(? AS {ty})")
                        };
                    match value.split_once("..") {
                        Some((from, to)) => {
                            if !from.is_empty() {
                                let v = cast(from, &mut args, &mut casts);
                                wheres.push(format!("{col} >= {v}"));
                            }
                            if !to.is_empty() {
                                let v = cast(to, &mut args, &mut casts);
                                wheres.push(format!("{col} <= {v}"));
                            }
                        }
                        None => {
                            let v = cast(value, &mut args, &mut casts);
                            wheres.push(format!("{col} = {v}"));
                        }
                    }
                }
            }
        }
        let filter = if wheres.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", wheres.join(" AND "))
        };
        Ok(TableQuery {
            sql: format!(
                "SELECT {select} FROM {}{filter} ORDER BY ALL LIMIT {limit}",
                quoted(name)
            ),
            args,
            casts,
        })
    }

    /// Every value casts to its column's type, or a 400 naming the parameter.
    fn check_values(&self, conn: &duckdb::Connection) -> Result<(), ApiError> {
        for (param, value, ty) in &self.casts {
            let ok: bool = conn
                .query_row(
                    &format!("SELECT TRY_CAST(? AS {ty}) IS NOT NULL"),
                    [value],
                    |r| r.get(0),
                )
                .map_err(ApiError::internal)?;
            if !ok {
                return Err(ApiError::bad(param, format!("{value:?} is not a {ty}")));
            }
        }
        Ok(())
    }
}

/// `POST /v1/sql` (only with `--allow-sql`): the body is one SQL query, run
/// on the build's hardened connection (no files, no `ATTACH`, no extensions,
/// no `SET`); at most [`MAX_LIMIT`] rows, the server's time limit.
async fn sql(
    State(app): State<App>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    if !app.allow_sql {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "SQL is off: start the server with --allow-sql",
            None,
        ));
    }
    let format = Format::pick(&mut String::new(), &headers);
    let params = vec![("sql".to_owned(), body)];
    answer(
        &app,
        true,
        "/v1/sql",
        params,
        format,
        &headers,
        |_, conn, params| {
            let text = &params[0].1;
            let refused = |e: duckdb::Error| ApiError::bad("sql", e.to_string());
            let mut stmt = conn.prepare(text).map_err(refused)?;
            let stream = stmt.stream_arrow([]).map_err(refused)?;
            let schema = stream.get_schema();
            let mut batches = Vec::new();
            let mut rows = 0;
            for batch in stream {
                let batch = batch.map_err(refused)?;
                rows += batch.num_rows();
                if rows > MAX_LIMIT {
                    return Err(ApiError::bad(
                        "sql",
                        format!("more than {MAX_LIMIT} rows: add a LIMIT"),
                    ));
                }
                batches.push(batch);
            }
            Ok(Body::Batches(schema, batches))
        },
    )
    .await
}
