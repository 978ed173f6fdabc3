//! `materia serve`: a read-only HTTP API over the published lakehouse.
//!
//! - `GET /`: a page — the World coffee balance over market years (units on
//!   every figure, a stocks-to-use line), a country picker, how one
//!   production estimate moved release by release, the CFTC Coffee C
//!   managed-money positioning when `serving.cot_coffee` has rows, a CSV link
//!   under each table. Its script and style are files (`/page.js`,
//!   `/page.css`), every value is inserted as text, and it is sent with a
//!   Content-Security-Policy allowing nothing inline or from elsewhere.
//! - `GET /v1/health`: the build id, when it was published, its age — from
//!   memory, without a DuckDB connection or a request permit, so it answers
//!   while every connection is busy.
//! - `GET /v1/tables`: every table and view (in `raw`, `serving` — user
//!   models' tables and views too — and `materia`), its columns with types,
//!   its rows.
//! - `GET /v1/tables/{schema.name}`: rows; filters `column=value` and
//!   `column=from..to` on any column (values bound and cast to the column's
//!   type), `columns=a,b` (the answer keeps this order, else the table's),
//!   `sort=a,-b` (then every column: a total order), `limit=` (default 1000,
//!   at most 10000), `offset=`, `count=true`. JSON (`{"rows": [...],
//!   "truncated": bool, "next": "/v1/tables/…&offset=…", "count": n}`) or
//!   CSV, Arrow, Parquet (`Accept` or a `.csv`/`.arrow`/`.parquet` suffix),
//!   those with `Link: <…>; rel="next"`, `X-Truncated` and `X-Total-Count`.
//! - `GET /v1/releases`: the loaded releases.
//! - `POST /v1/sql` (only with `allow_sql`): one read-only query in the body
//!   (DuckDB's `query()` table function accepts exactly one `SELECT`:
//!   `CREATE` — `TEMP` too —, `INSERT`, `COPY`, `PRAGMA`, `SET`, `ATTACH` and
//!   several statements are refused, naming why), on the hardened read-only
//!   connection (no files, `ATTACH`, extensions or `SET`), at most 10000 rows
//!   (body at most 64 KiB).
//!
//! A parameter given twice is a `400` naming it (one request, one meaning:
//! its answer, its ETag and its kept copy agree). Every answer about a build
//! carries an `ETag` (the build id and a hash of the request: path, sorted
//! parameters, format), `Last-Modified` (the publish time),
//! `Cache-Control`, and `Vary: Accept` when its format followed `Accept` (a
//! suffix fixes the format: the form for shared caches); an
//! `If-None-Match` holding the ETag is answered `304` before anything is
//! queried. Answers are kept in memory for the build being served
//! (`cache_bytes`, oldest out first, all dropped on a new publish; `X-Cache:
//! hit|miss` says which), so a repeated request costs no query; a request
//! with `Cache-Control: no-cache` is computed anew.
//!
//! The server never blocks a transform nor waits for one: each request takes
//! the newest build ([`Readers`]), in-flight ones finish on theirs. No SQL
//! comes from the client unless allowed. Bounded, each limit named in its
//! error: a time limit per request (`timeout`, then `503`) counted from its
//! arrival — waiting for a connection, the query and writing the answer; a
//! request whose time is up before it has a connection never runs, a running
//! query is interrupted, and DuckDB's `max_execution_time` backs this up;
//! requests in flight (`max_in_flight`, then `503`); the readers' DuckDB
//! `memory_limit` (`memory_limit_bytes`, shared by a build's connections;
//! a query needing more is a `503`); an answer's bytes (`max_answer_bytes`,
//! then `400` naming `limit` or `sql`); bad parameters `400` with the
//! parameter named, unknown tables `404`.

mod answer;
mod api;
mod app;
mod cache;
mod encode;
mod error;
mod page;
mod params;
mod query;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::transform::{Readers, Snapshot};
pub use params::{DEFAULT_LIMIT, MAX_LIMIT};

use crate::error::{Error, Result};

/// The name of every thread the server runs (its runtime's and DuckDB's).
pub const THREAD_NAME: &str = "materia-serve";

/// What to serve, and how.
///
/// ```
/// let o = materia_core::serve::ServeOptions::new("/data/materia/lakehouse.duckdb");
/// assert_eq!(o.bind.to_string(), "127.0.0.1:8080");
/// ```
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The published lakehouse (`DUCKDB_PATH`).
    pub duckdb_path: PathBuf,
    /// Where to listen (default 127.0.0.1:8080; port 0 picks one).
    pub bind: SocketAddr,
    /// Requests in flight at most; more are answered 503.
    pub max_in_flight: usize,
    /// DuckDB connections per build (default twice the cores: a query
    /// waits on the client side as much as it computes).
    pub connections: usize,
    /// A request's time limit, from its arrival: the wait for a connection,
    /// the query and writing the answer (then 503).
    pub timeout: Duration,
    /// Whether `POST /v1/sql` runs clients' SQL (on the hardened read-only
    /// connection, at most [`MAX_LIMIT`] rows); off by default.
    pub allow_sql: bool,
    /// Bytes of answers kept in memory for the current build (0: none).
    pub cache_bytes: usize,
    /// DuckDB's `memory_limit` for the readers of a build, all connections
    /// together (default: a quarter of the machine's memory, at most 1 GiB).
    pub memory_limit_bytes: u64,
    /// Bytes one answer may take, written (default 64 MiB; more: `400`).
    pub max_answer_bytes: usize,
}

/// A quarter of the machine's memory (`/proc/meminfo`), at most 1 GiB.
pub fn default_memory_limit() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(4 << 30, |kib| kib * 1024);
    (total / 4).min(1 << 30)
}

impl ServeOptions {
    /// Defaults for serving `duckdb_path`.
    pub fn new(duckdb_path: impl Into<PathBuf>) -> ServeOptions {
        ServeOptions {
            duckdb_path: duckdb_path.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_in_flight: 64,
            connections: 2 * std::thread::available_parallelism().map_or(2, usize::from),
            timeout: Duration::from_secs(10),
            allow_sql: false,
            cache_bytes: 64 << 20,
            memory_limit_bytes: default_memory_limit(),
            max_answer_bytes: 64 << 20,
        }
    }
}

/// A server bound to its address, not yet serving.
pub struct Server {
    listener: tokio::net::TcpListener,
    router: axum::Router,
    runtime: tokio::runtime::Runtime,
    timeout: Duration,
}

impl Server {
    /// Opens the lakehouse and binds (an error names what failed).
    pub fn bind(options: &ServeOptions) -> Result<Server> {
        // Every thread of the server is named `materia-serve`: the runtime's,
        // and DuckDB's workers, which take the name of the thread that opens
        // the database (so `top -H` tells the server's CPU from the rest).
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name(THREAD_NAME)
            .build()
            .map_err(|source| Error::System {
                what: "starting the server's runtime".into(),
                source,
            })?;
        let limits = crate::transform::ReadLimits {
            memory_bytes: Some(options.memory_limit_bytes),
            // DuckDB's own deadline, behind the server's (which also counts
            // the wait for a connection).
            query_time: Some(options.timeout),
        };
        let (path, connections) = (options.duckdb_path.clone(), options.connections);
        let readers = runtime
            .block_on(async move {
                tokio::task::spawn_blocking(move || {
                    Readers::open_limited(path, connections, limits)
                })
                .await
            })
            .map_err(|e| Error::System {
                what: "opening the lakehouse for serving".into(),
                source: std::io::Error::other(e),
            })??;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(options.bind))
            .map_err(|source| Error::System {
                what: format!("listening on {}", options.bind),
                source,
            })?;
        let router = api::router(app::App {
            readers,
            permits: Arc::new(tokio::sync::Semaphore::new(options.max_in_flight.max(1))),
            timeout: options.timeout,
            allow_sql: options.allow_sql,
            cache: Arc::new(cache::Cache::new(options.cache_bytes)),
            max_answer_bytes: options.max_answer_bytes,
            memory_bytes: options.memory_limit_bytes,
        });
        Ok(Server {
            listener,
            router,
            runtime,
            timeout: options.timeout,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|source| Error::System {
            what: "the listening address".into(),
            source,
        })
    }

    /// Serves until `shutdown` resolves (e.g. SIGTERM), finishing requests in
    /// flight.
    pub fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let Server {
            listener,
            router,
            runtime,
            timeout,
        } = self;
        let served = runtime.block_on(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        });
        // Queries still running past their time limit are not waited for.
        runtime.shutdown_timeout(timeout);
        served.map_err(|source| Error::System {
            what: "serving".into(),
            source,
        })
    }
}
