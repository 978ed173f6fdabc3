//! Materia keeps a market-data pipeline on one server: it downloads dataset
//! releases (the USDA PSD coffee data first), lands each one on local disk as an
//! immutable gzipped CSV, builds a DuckDB lakehouse from the landing zone and
//! mirrors the landing zone to an S3-compatible bucket.
//!
//! # Layout
//!
//! Modules stand in layers: each uses only the layers below it (and, within a
//! layer, never two modules each other); `tests/it/architecture.rs` holds the
//! table and checks every `crate::` path against it.
//!
//! 0. The vocabulary: [`Error`], the one error type, with variants a caller can
//!    match; the landing keys ([`landing::LandingKey`] and its parts); `text`,
//!    small helpers (durations written as text, URLs with their secrets
//!    removed); `blocking` (blocking calls made safe from async code) and
//!    `progress` (byte progress bars).
//! 1. What one file or one declaration needs:
//!    - [`landing`]: the landing zone — the crash-safe, deduplicating
//!      [`LandingStore`](landing::LandingStore). Everything above builds on it.
//!    - [`dataset`]: what each dataset is — its URL, CSV header, cadence and
//!      table — and the fetch limits, from the config file or built in.
//!    - [`csv`] (a header line split and checked), `guard` (readers that
//!      refuse too many bytes, too much time, non-text) and `archive`
//!      (feature `archive`: the CSV member of a zip).
//! 2. Moving data:
//!    - `extract` (feature `http`, on by default): fetch releases over HTTP
//!      (conditional, bounded, retried) or from `file://`, unpack zip/gzip,
//!      check the CSV header, land.
//!    - `transform` (feature `duckdb`, on by default): the landing zone into a
//!      DuckDB lakehouse, built aside and published atomically; `Lakehouse`
//!      reads it.
//!    - `bucket` (feature `s3`, on by default): the S3-compatible bucket (R2) —
//!      its connection settings, error kinds and listing.
//!    - `mirror` (feature `s3`): push the landing zone to the bucket and
//!      restore it from there.
//! 3. The jobs the `materia` binary runs:
//!    - `publish` (features `s3` and `duckdb`): the published lakehouse as
//!      Parquet files and a manifest per build on the bucket.
//!    - `check` (feature `duckdb`): freshness of each dataset's newest release
//!      and of the lakehouse (`materia check`).
//!    - `drill` (features `s3` and `duckdb`): restore the bucket into a
//!      temporary directory, rebuild the lakehouse from it and compare with the
//!      published one.
//!    - `serve` (feature `serve`): the read API over the published lakehouse.
//!    - [`init`]: a starter project (`materia init`) — a config declaring a
//!      dataset, a model of each kind and an environment example.
//!    - [`supervise`]: the daily cycle of steps as child processes, with
//!      timeouts, a run lock and a state file, and the status report it keeps
//!      (`supervise::Status`, what `materia status` prints).
//!
//! # Example
//!
//! ```
//! # fn main() -> materia_core::Result<()> {
//! use materia_core::landing::{LandingStore, NewRelease, PutOutcome};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = LandingStore::open(dir.path())?;
//! let csv = "Commodity_Code,Country_Code,Value\n0711100,BR,63000.0000\n";
//! let release = NewRelease::new("psd".parse()?, 2026, 11)?;
//! match store.put(release.clone(), csv.as_bytes())? {
//!     PutOutcome::Landed(r) => println!("landed {}", r.key),
//!     PutOutcome::Duplicate { existing, .. } => println!("already have {existing}"),
//! }
//! // The same content again lands nothing.
//! assert!(matches!(store.put(release, csv.as_bytes())?, PutOutcome::Duplicate { .. }));
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

#[cfg(feature = "archive")]
pub mod archive;
#[cfg(feature = "http")]
mod blocking;
#[cfg(feature = "s3")]
pub mod bucket;
#[cfg(feature = "duckdb")]
pub mod check;
pub mod csv;
pub mod dataset;
#[cfg(all(feature = "s3", feature = "duckdb"))]
pub mod drill;
mod error;
#[cfg(feature = "http")]
pub mod extract;
mod guard;
pub mod init;
pub mod landing;
#[cfg(feature = "s3")]
pub mod mirror;
#[cfg(any(feature = "http", feature = "duckdb"))]
mod progress;
#[cfg(feature = "publish")]
pub mod publish;
#[cfg(feature = "serve")]
pub mod serve;
pub mod supervise;
mod text;
#[cfg(feature = "duckdb")]
pub mod transform;

#[cfg(feature = "duckdb")]
pub use error::DuckDbError;
pub use error::{BoxError, Error, RemoteKind, Result};
