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
        /// The source, with its secrets removed (see `extract::redact`).
        url: String,
        /// What went wrong.
        reason: String,
        /// The HTTP client's error, when the request failed.
        #[source]
        source: Option<BoxError>,
    },

    /// A transform failed: a model, an audit, or DuckDB. Nothing was published.
    #[error("transform: {reason}")]
    Transform {
        /// What went wrong.
        reason: String,
        /// DuckDB's error, when DuckDB failed.
        #[source]
        source: Option<BoxError>,
    },

    /// The lakehouse file could not be opened or read.
    #[error("lakehouse {}: {reason}", path.display())]
    Lakehouse {
        /// The DuckDB file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
        /// DuckDB's error, when DuckDB failed.
        #[source]
        source: Option<BoxError>,
    },

    /// Talking to the mirror bucket failed.
    #[error("mirror {url}: {reason}")]
    Mirror {
        /// The bucket URL (`s3://bucket/prefix`; never a credential).
        url: String,
        /// What went wrong.
        reason: String,
        /// What kind of failure it is: an R2 auth failure is not a network blip.
        kind: RemoteKind,
        /// The S3 client's error (`object_store::Error`), when it failed.
        #[source]
        source: Option<BoxError>,
    },

    /// Publishing the lakehouse to a bucket failed (`materia publish`); what
    /// `latest.json` pointed to before is untouched.
    #[error("publish {url}: {reason}")]
    Publish {
        /// The bucket URL (`s3://bucket/prefix`; never a credential).
        url: String,
        /// What went wrong.
        reason: String,
        /// What kind of failure it is; [`RemoteKind::Conflict`]: another
        /// publish moved `latest.json` first.
        kind: RemoteKind,
        /// The S3 client's error, when it failed.
        #[source]
        source: Option<BoxError>,
    },

    /// A configuration file or value is not valid.
    #[error("config {origin}: {reason}")]
    Config {
        /// Where the configuration came from (a path, or `built-in`).
        origin: String,
        /// What is wrong, naming the key.
        reason: String,
        /// The parser's or the OS's error, when there is one.
        #[source]
        source: Option<BoxError>,
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

    /// A system facility failed outside any file: installing a signal
    /// handler, starting a thread or a runtime.
    #[error("{what}: {source}")]
    System {
        /// What was being done.
        what: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
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

/// A boxed error kept as a [`std::error::Error::source`], so callers can reach
/// the library error beneath (`object_store`'s; DuckDB's as a `DuckDbError`)
/// by downcasting.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of failure a remote (bucket) operation met: what a caller matches
/// to decide between fixing credentials, retrying later and giving up.
///
/// ```
/// use materia_core::{Error, RemoteKind};
/// fn retry_later(e: &Error) -> bool {
///     matches!(e, Error::Mirror { kind: RemoteKind::Transient | RemoteKind::Timeout, .. })
/// }
/// # let _ = retry_later;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RemoteKind {
    /// The credentials were refused (401, 403).
    Auth,
    /// The bucket or object does not exist.
    NotFound,
    /// The object exists already, or a condition on it failed.
    Conflict,
    /// The network or the server failed (connect errors, 5xx, 429), after
    /// retries: trying later may work.
    Transient,
    /// A request timed out, after retries.
    Timeout,
    /// The configuration is wrong (a URL, a size, a missing setting).
    Config,
    /// Anything else (an object refused, a corrupt answer).
    Other,
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

/// DuckDB's error as the [`source`](std::error::Error::source) of an
/// [`Error`]: DuckDB's message without duckdb-rs's "Error code 1: Unknown
/// error code" (the text of the C API's state, the same for every failure,
/// which a chain printed cause by cause would end with). The DuckDB error
/// itself is [`DuckDbError::duckdb`].
///
/// ```
/// use materia_core::DuckDbError;
/// use materia_core::transform::duckdb::Connection;
/// let conn = Connection::open_in_memory().expect("DuckDB");
/// let e = DuckDbError::from(conn.execute_batch("SELEC 1").expect_err("a syntax error"));
/// assert!(e.to_string().contains("syntax error"), "{e}");
/// assert!(!e.to_string().contains("Error code"), "{e}");
/// assert!(std::error::Error::source(&e).is_none());
/// ```
#[cfg(feature = "duckdb")]
#[derive(Debug)]
pub struct DuckDbError(duckdb::Error);

#[cfg(feature = "duckdb")]
impl DuckDbError {
    /// The DuckDB error.
    pub fn duckdb(&self) -> &duckdb::Error {
        &self.0
    }
}

#[cfg(feature = "duckdb")]
impl From<duckdb::Error> for DuckDbError {
    fn from(e: duckdb::Error) -> Self {
        DuckDbError(e)
    }
}

#[cfg(feature = "duckdb")]
impl std::fmt::Display for DuckDbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&duckdb_message(&self.0))
    }
}

#[cfg(feature = "duckdb")]
impl std::error::Error for DuckDbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            // Its source is the C API's state: "Error code 1: Unknown error code".
            duckdb::Error::DuckDBFailure(..) => None,
            e => e.source(),
        }
    }
}

/// DuckDB's message for `e`, without "Error code N: Unknown error code": the
/// one place a DuckDB error becomes text.
#[cfg(feature = "duckdb")]
pub(crate) fn duckdb_message(e: &duckdb::Error) -> String {
    let text = without_error_code(&e.to_string());
    if text.trim().is_empty() {
        "DuckDB failed without a message".to_owned()
    } else {
        text
    }
}

/// `e` as the source of an [`Error`] variant (see [`DuckDbError`]).
#[cfg(feature = "duckdb")]
pub(crate) fn duckdb_source(e: duckdb::Error) -> Option<BoxError> {
    Some(Box::new(DuckDbError(e)))
}

/// `text` without any "Error code N: Unknown error code" (and the `: ` or
/// newline before it).
#[cfg_attr(not(feature = "duckdb"), allow(dead_code))]
fn without_error_code(text: &str) -> String {
    const HEAD: &str = "Error code ";
    const TAIL: &str = ": Unknown error code";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(HEAD) {
        let after = &rest[at + HEAD.len()..];
        let digits = after
            .find(|c: char| !(c.is_ascii_digit() || c == '-'))
            .unwrap_or(after.len());
        if digits > 0 && after[digits..].starts_with(TAIL) {
            let kept = rest[..at].trim_end_matches([':', ' ', '\n']);
            out.push_str(kept);
            rest = &after[digits + TAIL.len()..];
        } else {
            out.push_str(&rest[..at + HEAD.len()]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::without_error_code;

    #[test]
    fn the_unknown_error_code_is_dropped_wherever_it_is() {
        for (text, want) in [
            (
                "Parser Error: syntax error at or near \"SELEC\": Error code 1: Unknown error code",
                "Parser Error: syntax error at or near \"SELEC\"",
            ),
            ("Error code 1: Unknown error code", ""),
            ("a\nError code 1: Unknown error code\nb", "a\nb"),
            ("Error code 12 is not ours", "Error code 12 is not ours"),
            ("Binder Error: column x", "Binder Error: column x"),
        ] {
            assert_eq!(without_error_code(text), want, "{text:?}");
        }
    }
}
