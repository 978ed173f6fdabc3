//! Materia keeps a market-data pipeline on one server: it downloads dataset
//! releases (the USDA PSD coffee data first), lands each one on local disk as an
//! immutable gzipped CSV, builds a DuckDB lakehouse from the landing zone and
//! mirrors the landing zone to an S3-compatible bucket.
//!
//! # Layout
//!
//! - [`landing`]: the landing zone — validated keys and the crash-safe,
//!   deduplicating [`LandingStore`](landing::LandingStore). Everything else builds
//!   on it.
//! - `extract` (feature `http`, on by default): fetch releases over HTTP (conditional, bounded, retried) or
//!   from `file://`, unpack zip/gzip, check the CSV header, land.
//! - `transform` (feature `duckdb`, on by default): the landing zone into a
//!   DuckDB lakehouse, built aside and published atomically; `Lakehouse` reads it.
//! - `mirror` (feature `s3`, on by default): push the landing zone to an
//!   S3-compatible bucket (R2) and restore it from there.
//! - `publish` (features `s3` and `duckdb`): the published lakehouse as
//!   Parquet files and a manifest per build on the bucket (`materia publish`).
//! - `check` (features `http` and `duckdb`): freshness of each dataset's newest
//!   release and of the lakehouse (`materia check`).
//! - `drill` (features `s3` and `duckdb`): restore the bucket into a temporary
//!   directory, rebuild the lakehouse from it and compare with the published one.
//! - [`supervise`]: the daily cycle of steps as child processes, with timeouts,
//!   a run lock and a state file.
//! - [`Error`]: the one error type, with variants a caller can match.
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
#[cfg(all(feature = "http", feature = "duckdb"))]
pub mod check;
pub mod csv;
#[cfg(all(feature = "s3", feature = "duckdb"))]
pub mod drill;
mod error;
#[cfg(feature = "http")]
pub mod extract;
mod guard;
pub mod landing;
#[cfg(feature = "s3")]
pub mod mirror;
#[cfg(feature = "http")]
mod progress;
#[cfg(feature = "publish")]
pub mod publish;
#[cfg(feature = "serve")]
pub mod serve;
pub mod supervise;
#[cfg(feature = "duckdb")]
pub mod transform;

pub use error::{BoxError, Error, RemoteKind, Result};
