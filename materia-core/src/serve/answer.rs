//! Answering one request: a permit, the current build, revalidation and the
//! kept answer, then the query on a pooled connection and the encoding, all
//! within the request's time limit.
//!
//! The time limit counts from the request's arrival and covers the wait for
//! a connection, the query and the encoding. A request whose time runs out
//! before it gets a connection never runs its query (the pool's
//! `with_connection_until`); one whose query is running is interrupted
//! (DuckDB's `InterruptHandle`, repeated until the query has stopped, since
//! an interrupt landing between two of DuckDB's checks could be missed);
//! DuckDB's own `max_execution_time` (set on the readers) backs both up.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::app::App;
use super::cache::Cached;
use super::encode::{Blame, Body, Budget, Encoded, Format, Picked, encode};
use super::error::ApiError;
use super::params::refuse_repeats;
use crate::transform::Snapshot;

/// What a request asks of [`answer`].
pub(crate) struct Ask<'a> {
    /// The path, for the ETag (the format is part of it separately).
    pub path: String,
    pub params: Vec<(String, String)>,
    pub picked: Picked,
    pub request: &'a HeaderMap,
    /// What a refusal names: the parameter to change, the time limit.
    pub blame: Blame,
}

/// Answers `ask` with `work`'s rows or JSON: bounded by the server's permits
/// and time limit; the answer carries the caching headers, is a 304 when the
/// client holds its ETag, and is kept in memory for the next client asking
/// the same of this build (`Cache-Control: no-cache` in a request skips the
/// kept copy).
pub(crate) async fn answer<F>(app: &App, ask: Ask<'_>, work: F) -> Result<Response, ApiError>
where
    F: FnOnce(&Snapshot, &duckdb::Connection, &[(String, String)]) -> Result<Body, ApiError>
        + Send
        + 'static,
{
    let deadline = Instant::now() + app.timeout;
    let Ok(_permit) = app.permits.clone().try_acquire_owned() else {
        return Err(ApiError::busy(
            "too many requests in flight (the server's --max-in-flight): try again",
        ));
    };
    refuse_repeats(&ask.params)?;
    let snap = current(app).await?;
    let format = ask.picked.format;
    let tag = etag(&snap, &ask.path, &ask.params, format);
    let (mut headers, matched) = caching(&snap, &tag, ask.picked, ask.request);
    if matched {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    if !no_cache(ask.request)
        && let Some(kept) = app.cache.get(&snap.build, &tag)
    {
        extend(&mut headers, &kept.headers);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(kept.content_type),
        );
        headers.insert("x-cache", HeaderValue::from_static("hit"));
        return Ok((StatusCode::OK, headers, kept.body).into_response());
    }
    headers.insert("x-cache", HeaderValue::from_static("miss"));
    let build = snap.build.clone();
    let budget = Budget {
        max_bytes: app.max_answer_bytes,
        deadline,
    };
    let encoded = run(snap, ask.params, format, budget, ask.blame, work).await?;
    extend(&mut headers, &encoded.headers);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let body = Bytes::from(encoded.body);
    let kept = Cached {
        content_type: format.content_type(),
        body: body.clone(),
        headers: encoded.headers,
    };
    app.cache.put(&build, tag, kept);
    Ok((StatusCode::OK, headers, body).into_response())
}

fn extend(headers: &mut HeaderMap, more: &[(axum::http::HeaderName, HeaderValue)]) {
    for (k, v) in more {
        headers.insert(k.clone(), v.clone());
    }
}

/// The build being served: the one open if still published (no blocking
/// work), else the new one, opened off the async threads.
pub(crate) async fn current(app: &App) -> Result<Arc<Snapshot>, ApiError> {
    if let Some(snap) = app.readers.current().map_err(ApiError::internal)? {
        return Ok(snap);
    }
    let readers = app.readers.clone();
    tokio::task::spawn_blocking(move || readers.snapshot())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// Where a request's query is: shared by the request (which gives up at its
/// deadline) and the blocking task running it.
#[derive(Default)]
struct Run {
    /// The request gave up: a query not yet started never starts.
    abandoned: bool,
    /// The query has started (it had a connection).
    started: bool,
    /// The running query's interrupt handle (none before it starts and after
    /// it ends, so only this request's query is ever interrupted).
    running: Option<Arc<duckdb::InterruptHandle>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How often an abandoned query is interrupted again until it has stopped.
const INTERRUPT_EVERY: Duration = Duration::from_millis(20);

/// Runs `work` on a connection of `snap` and encodes its answer, off the
/// async threads, all by `budget.deadline` (see the module docs).
async fn run<F>(
    snap: Arc<Snapshot>,
    params: Vec<(String, String)>,
    format: Format,
    budget: Budget,
    blame: Blame,
    work: F,
) -> Result<Encoded, ApiError>
where
    F: FnOnce(&Snapshot, &duckdb::Connection, &[(String, String)]) -> Result<Body, ApiError>
        + Send
        + 'static,
{
    let state: Arc<Mutex<Run>> = Arc::default();
    let connections = snap.connections();
    let mut job = tokio::task::spawn_blocking({
        let state = Arc::clone(&state);
        move || {
            let ran = snap.with_connection_until(budget.deadline, |conn| {
                guarded(&state, conn, || work(&snap, conn, &params))
            });
            let body = match ran {
                Some(Some(body)) => body?,
                // Given up on while it waited: its client has its 503.
                Some(None) => return Err(blame.too_slow()),
                None => return Err(no_connection(&blame, connections)),
            };
            encode(format, body, budget, &blame)
        }
    });
    match tokio::time::timeout_at(budget.deadline.into(), &mut job).await {
        Ok(joined) => joined.map_err(ApiError::internal)?,
        Err(_) => {
            let started = {
                let mut run = lock(&state);
                run.abandoned = true;
                run.started
            };
            tokio::spawn(async move {
                while !job.is_finished() {
                    if let Some(handle) = &lock(&state).running {
                        handle.interrupt();
                    }
                    tokio::time::sleep(INTERRUPT_EVERY).await;
                }
            });
            Err(if started {
                blame.too_slow()
            } else {
                no_connection(&blame, connections)
            })
        }
    }
}

/// The 503 of a request whose time ran out before a connection was free.
fn no_connection(blame: &Blame, connections: usize) -> ApiError {
    ApiError::busy(format!(
        "no connection was free within the time limit ({} s, the server's --timeout-secs; \
         all {connections} busy): try again",
        blame.timeout.as_secs_f64()
    ))
}

/// Runs `f` (the query on `conn`) unless the request already gave up, with
/// `conn`'s interrupt handle published while it runs; `None` when it did not
/// run.
fn guarded<T>(state: &Mutex<Run>, conn: &duckdb::Connection, f: impl FnOnce() -> T) -> Option<T> {
    {
        let mut run = lock(state);
        if run.abandoned {
            return None;
        }
        run.running = Some(conn.interrupt_handle());
        run.started = true;
    }
    let out = f();
    let abandoned = {
        let mut run = lock(state);
        run.running = None;
        run.abandoned
    };
    if abandoned {
        // An interrupt that arrived after DuckDB's last check would stop the
        // next query on this connection (another client's): spend it here.
        for _ in 0..2 {
            if conn.execute_batch("SELECT 1").is_ok() {
                break;
            }
        }
    }
    Some(out)
}

/// The ETag of a request on a build: the build id and a hash of the
/// normalised request (path, sorted parameters — each given once —, format).
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

/// Headers every answer about a build carries (`Vary: Accept` when the
/// format followed `Accept`), and whether the client's `If-None-Match`
/// already holds this ETag (answer 304, nothing queried).
fn caching(snap: &Snapshot, etag: &str, picked: Picked, request: &HeaderMap) -> (HeaderMap, bool) {
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
    if picked.by_accept {
        // A shared cache must not give one client's CSV to a JSON client.
        h.insert(header::VARY, HeaderValue::from_static("Accept"));
    }
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
