//! The HTTP side of a fetch: the client (no `Referer`, no redirect from https
//! down to http, bodies as sent), the conditional GET with its retries, the
//! validators a response leaves for the next fetch, and error chains that
//! never print a URL (a URL may carry a token).

use std::io;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};

use super::Extractor;
use crate::dataset::Limits;
use crate::error::{Error, Result};
use crate::landing::{Etag, NewRelease, Release};

impl Extractor {
    /// An extractor whose client keeps to `limits` (see [`Extractor::new`]).
    pub(super) fn build(limits: Limits) -> Result<Extractor> {
        let client = reqwest::blocking::Client::builder()
            .user_agent(concat!(
                "materia/",
                env!("CARGO_PKG_VERSION"),
                " (+https://github.com/materia/materia)"
            ))
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.read_timeout)
            // The URL may carry a token: never send it on as a Referer, and
            // never follow a redirect from https down to plain http.
            .referer(false)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let downgrade = attempt.url().scheme() == "http"
                    && attempt.previous().iter().any(|u| u.scheme() == "https");
                if downgrade {
                    attempt.error("refusing a redirect from https to plain http")
                } else if attempt.previous().len() > 10 {
                    attempt.error("more than 10 redirects")
                } else {
                    attempt.follow()
                }
            }))
            // Bodies are stored as sent: no transparent decompression.
            .build()
            .map_err(|e| Error::Config {
                origin: "http client".into(),
                reason: error_chain(&e),
                source: Some(Box::new(e)),
            })?;
        Ok(Extractor {
            client: Some(client),
            limits,
            progress: false,
        })
    }

    /// Sends a GET, conditional on `previous`, retrying what is worth retrying.
    pub(super) fn send(
        &self,
        url: reqwest::Url,
        previous: Option<&Release>,
        fail: &dyn Fn(String) -> Error,
    ) -> Result<reqwest::blocking::Response> {
        let mut headers = HeaderMap::new();
        if let Some(prev) = previous {
            let etag = prev.etag_header.as_deref().map(HeaderValue::from_str);
            if let Some(Ok(v)) = etag {
                headers.insert(header::IF_NONE_MATCH, v);
            }
            let since = prev.last_modified.as_deref().map(HeaderValue::from_str);
            if let Some(Ok(v)) = since {
                headers.insert(header::IF_MODIFIED_SINCE, v);
            }
        }
        let mut delay = self.limits.backoff;
        let mut attempt = 0;
        loop {
            let Some(client) = &self.client else {
                unreachable!("the client lives as long as the extractor")
            };
            let result = client.get(url.clone()).headers(headers.clone()).send();
            let retry_in = match result {
                Ok(r) if retryable(r.status()) => {
                    let why = format!("the server answered {}", r.status());
                    if attempt == self.limits.retries {
                        return Err(fail(format!("{why} (after {attempt} retries)")));
                    }
                    let wait = retry_after(r.headers()).unwrap_or(delay);
                    tracing::warn!("{why}; retrying in {wait:?}");
                    wait
                }
                Ok(r) => return Ok(r),
                Err(e) if (e.is_connect() || e.is_timeout()) && attempt < self.limits.retries => {
                    tracing::warn!("{}; retrying in {delay:?}", error_chain(&e));
                    delay
                }
                Err(e) => {
                    let retried = match attempt {
                        0 => String::new(),
                        n => format!(" (after {n} retries)"),
                    };
                    let err = fail(format!("request failed: {}{retried}", error_chain(&e)));
                    return Err(with_source(err, e));
                }
            };
            std::thread::sleep(retry_in);
            delay = (delay * 2).min(Duration::from_secs(30));
            attempt += 1;
        }
    }
}

/// `release` with the response's validators (`ETag`, `Last-Modified`), which
/// the next fetch of the same URL sends back.
pub(super) fn with_validators(mut release: NewRelease, headers: &HeaderMap) -> NewRelease {
    if let Some(raw) = headers.get(header::ETAG) {
        release = release.with_etag(Etag::from_header(raw.as_bytes()));
        if let Ok(raw) = raw.to_str() {
            release = release.with_etag_header(raw);
        }
    }
    let last_modified = headers.get(header::LAST_MODIFIED);
    if let Some(lm) = last_modified.and_then(|v| v.to_str().ok()) {
        release = release.with_last_modified(lm);
    }
    release
}

/// Keeps `cause` as the source of an [`Error::Extract`].
fn with_source(mut err: Error, cause: reqwest::Error) -> Error {
    if let Error::Extract { source, .. } = &mut err {
        // reqwest's errors print their URL, tokens and all: not this one.
        *source = Some(Box::new(cause.without_url()));
    }
    err
}

/// Whether a response status is worth another try.
fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// A `Retry-After` in seconds, capped at a minute.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(60)))
}

/// An error and its causes on one line, without any URL reqwest adds.
fn error_chain(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut out = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "HTTP error".to_owned()
    };
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// An I/O error and its causes on one line; a timeout says so first.
pub(super) fn io_chain(e: &io::Error) -> String {
    // A reqwest error inside prints its URL (and any token in it): use its
    // chain without the URL instead.
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<reqwest::Error>()) {
        return error_chain(inner);
    }
    let mut parts = vec![e.to_string()];
    let mut source = e.get_ref().and_then(|inner| inner.source());
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    let timed_out = e.kind() == io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout);
    if timed_out {
        parts.insert(0, "timed out waiting for data".into());
    }
    parts.dedup();
    parts.join(": ")
}
