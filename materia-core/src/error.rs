//! The one public error type of `materia-core`.

use std::io;
use std::path::PathBuf;

use crate::landing::LandingKey;

/// Everything that can go wrong in `materia-core`, as variants a caller can match.
///
/// Every variant that concerns a file names its path; every variant about bad input
/// names the thing that was bad. No operation leaves a partial file under a final
/// name when it returns an error.
///
/// ```
/// use materia_core::{Error, landing::LandingKey};
/// match "psd/2026/13/x.csv.gzip".parse::<LandingKey>() {
///     Err(Error::InvalidKey { what, .. }) => assert_eq!(what, "month"),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key, or one of its parts, is not valid.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidKey {
        /// Which part was invalid: `dataset`, `year`, `month`, `etag`, `landing key`…
        what: &'static str,
        /// The offending value (shortened when long).
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// The key is already landed, for operations that require a new landing
    /// (see [`crate::landing::PutOutcome::landed`]).
    #[error("{key} is already landed")]
    Duplicate {
        /// The existing key.
        key: LandingKey,
    },

    /// The key is not in the store.
    #[error("{key} is not in the landing store")]
    NotFound {
        /// The key that was asked for.
        key: LandingKey,
    },

    /// Reading or writing a file of the store failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Reading the input to be landed failed (a pipe, a file, an HTTP body).
    #[error("reading the input failed: {source}")]
    Input {
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The input to be landed is not acceptable (empty, or broken gzip).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// Why it was rejected.
        reason: String,
    },

    /// A landed file does not match what was recorded, or is not valid gzip.
    #[error("corrupt file {}: {reason}", path.display())]
    Corrupt {
        /// The corrupt file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Fetching a release failed, or what was fetched is not acceptable (wrong
    /// header, an HTML page, broken zip, over a limit). Nothing was landed.
    #[error("extract {url}: {reason}")]
    Extract {
        /// The source, with any password removed.
        url: String,
        /// What went wrong.
        reason: String,
    },

    /// A transform failed: a model, an audit, or DuckDB. Nothing was published.
    #[error("transform: {reason}")]
    Transform {
        /// What went wrong.
        reason: String,
    },

    /// The lakehouse file could not be opened or read.
    #[error("lakehouse {}: {reason}", path.display())]
    Lakehouse {
        /// The DuckDB file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// Talking to the mirror bucket failed.
    #[error("mirror {url}: {reason}")]
    Mirror {
        /// The bucket URL (`s3://bucket/prefix`; never a credential).
        url: String,
        /// What went wrong.
        reason: String,
    },

    /// A configuration file or value is not valid.
    #[error("config {origin}: {reason}")]
    Config {
        /// Where the configuration came from (a path, or `built-in`).
        origin: String,
        /// What is wrong, naming the key.
        reason: String,
    },

    /// Another process holds a lock this one needs.
    #[error("{what} is already running (it holds {}); {hint}", lock.display())]
    Busy {
        /// What holds it, e.g. `another materia run or supervise`.
        what: String,
        /// The lock file.
        lock: PathBuf,
        /// What to do about it.
        hint: String,
    },

    /// A supervised step failed, ran past its timeout or was interrupted.
    #[error("step {step}: {reason}")]
    Step {
        /// The step's name.
        step: String,
        /// How it ended.
        reason: String,
    },
}

/// `Result` with [`Error`] as its default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a path to an [`io::Error`].
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}
