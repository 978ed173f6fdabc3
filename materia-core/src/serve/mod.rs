//! `materia serve`: a read-only HTTP API over the published lakehouse.
//!
//! - `GET /`: a page — the World coffee balance over market years, a country
//!   picker, how one production estimate moved release by release.
//! - `GET /v1/health`: the build id, when it was published, its age.
//! - `GET /v1/tables`: every table and view, its columns with types, its rows.
//! - `GET /v1/tables/{schema.name}`: rows; filters `column=value` and
//!   `column=from..to` on any column (values bound and cast to the column's
//!   type), `columns=a,b`, `limit=` (default 1000, at most 10000); ordered by
//!   every column. JSON (`{"rows": [...]}`) or CSV (`Accept: text/csv` or a
//!   `.csv` suffix).
//! - `GET /v1/releases`: the loaded releases.
//! - `POST /v1/sql` (only with `allow_sql`): one query in the body, on the
//!   hardened read-only connection (no files, `ATTACH`, extensions or `SET`),
//!   at most 10000 rows (body at most 64 KiB).
//!
//! Every answer about a build carries an `ETag` (the build id and a hash of
//! the normalised request), `Last-Modified` (the publish time) and
//! `Cache-Control`; an `If-None-Match` holding the ETag is answered `304`
//! before anything is queried. Answers are kept in memory for the build
//! being served (`cache_bytes`, oldest out first, all dropped on a new
//! publish; `X-Cache: hit|miss` says which), so a repeated request costs no
//! query; a request with `Cache-Control: no-cache` is computed anew.
//!
//! The server never blocks a transform nor waits for one: each request takes
//! the newest build ([`Readers`]), in-flight ones finish on theirs. No SQL
//! comes from the client unless allowed. Bounded: a query timeout (then `503`;
//! the query is interrupted, its connection freed), requests in flight (then
//! `503`), bad parameters `400` with the parameter named, unknown tables `404`.

mod api;
mod cache;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::transform::{Readers, Snapshot};
pub use api::{DEFAULT_LIMIT, MAX_LIMIT};

use crate::error::{Error, Result};

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
    /// A query's time limit (then 503).
    pub timeout: Duration,
    /// Whether `POST /v1/sql` runs clients' SQL (on the hardened read-only
    /// connection, at most [`MAX_LIMIT`] rows); off by default.
    pub allow_sql: bool,
    /// Bytes of answers kept in memory for the current build (0: none).
    pub cache_bytes: usize,
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
        let readers = Readers::open(&options.duckdb_path, options.connections)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::System {
                what: "starting the server's runtime".into(),
                source,
            })?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(options.bind))
            .map_err(|source| Error::System {
                what: format!("listening on {}", options.bind),
                source,
            })?;
        let router = api::router(api::App {
            readers,
            permits: Arc::new(tokio::sync::Semaphore::new(options.max_in_flight.max(1))),
            timeout: options.timeout,
            allow_sql: options.allow_sql,
            cache: Arc::new(cache::Cache::new(options.cache_bytes)),
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
