//! The bounds every fetch stays within: `[limits]` in the config file.

use std::time::Duration;

use serde::Deserialize;

/// Bounds on every fetch.
///
/// ```
/// use std::time::Duration;
/// let limits = materia_core::dataset::Limits::default();
/// assert_eq!(limits.retries, 3);
/// assert!(limits.read_timeout <= Duration::from_secs(60));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connecting to the server.
    pub connect_timeout: Duration,
    /// Waiting for the response head, or for any next piece of the body.
    pub read_timeout: Duration,
    /// A whole download, from request to last byte.
    pub total_timeout: Duration,
    /// Bytes the server may send (compressed, as transferred).
    pub max_body_bytes: u64,
    /// Bytes of CSV a release may inflate to (zip bombs stop here).
    pub max_content_bytes: u64,
    /// Retries after a connect error, a timeout before the response, a 5xx or a 429.
    pub retries: u32,
    /// First wait between tries; doubles each time, at most 30 s (a `Retry-After`
    /// of up to 60 s is honoured instead).
    pub backoff: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(30 * 60),
            max_body_bytes: 2 << 30,
            max_content_bytes: 16 << 30,
            retries: 3,
            backoff: Duration::from_secs(1),
        }
    }
}

/// `[limits]` as written: each bound is optional.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    connect_timeout_secs: Option<u64>,
    read_timeout_secs: Option<u64>,
    total_timeout_secs: Option<u64>,
    max_body_bytes: Option<u64>,
    max_content_bytes: Option<u64>,
    retries: Option<u32>,
    backoff_millis: Option<u64>,
}

impl RawLimits {
    /// The bounds written, the defaults for the others.
    pub(super) fn resolve(self) -> Limits {
        let d = Limits::default();
        let secs = Duration::from_secs;
        Limits {
            connect_timeout: self.connect_timeout_secs.map_or(d.connect_timeout, secs),
            read_timeout: self.read_timeout_secs.map_or(d.read_timeout, secs),
            total_timeout: self.total_timeout_secs.map_or(d.total_timeout, secs),
            max_body_bytes: self.max_body_bytes.unwrap_or(d.max_body_bytes),
            max_content_bytes: self.max_content_bytes.unwrap_or(d.max_content_bytes),
            retries: self.retries.unwrap_or(d.retries),
            backoff: self.backoff_millis.map_or(d.backoff, Duration::from_millis),
        }
    }
}
