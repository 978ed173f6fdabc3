//! Extract: fetch a dataset release over HTTP (or from a `file://` URL) and land
//! it in the [`LandingStore`].
//!
//! The common run finds nothing new, so that path is nearly free: the request is
//! conditional (`If-None-Match` with the last release's ETag, `If-Modified-Since`
//! with its `Last-Modified`) and a `304` lands nothing without a body. A server that
//! honours neither still lands nothing new: a known ETag is refused before the body
//! is read, and the same content under a new ETag is a duplicate by content.
//!
//! A `200` body streams — never whole in memory — through these steps:
//! 1. at most `max_body_bytes`, within `total_timeout`;
//! 2. unpacking by its first bytes: a zip (`PK\x03\x04`) is spooled to
//!    `{LANDING_DIR}/.materia/spool/` and its one CSV member (or the configured
//!    one) is read, CRC-checked; gzip is decompressed; anything else is taken as CSV;
//! 3. at most `max_content_bytes` of CSV (zip bombs stop here);
//! 4. the header line is checked against the dataset's columns before any byte
//!    goes on — an HTML error page served with `200` fails here;
//! 5. [`LandingStore::put`] compresses, hashes, fsyncs and publishes.
//!
//! A failure at any step lands nothing and names the URL and the reason.
//!
//! The HTTP client is `reqwest`'s blocking client (rustls): call [`Extractor`]
//! from a plain thread, or from `spawn_blocking` in async code.

mod client;

use std::io::{self, BufReader, Read};
use std::time::Instant;

use flate2::read::MultiGzDecoder;
use reqwest::StatusCode;
use serde::Serialize;

pub use crate::text::{redact, redact_secret_url};

use crate::dataset::{DatasetSpec, Limits};
use crate::error::{Error, Result};
use crate::guard::{Limited, refusal};
use crate::landing::{
    DuplicateOf, LandingKey, LandingStore, Month, NewRelease, PutOutcome, Release, Sha256Digest,
    Year, current_month,
};
use client::{io_chain, with_validators};

/// What an extraction did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// A new release landed.
    Landed {
        /// Where.
        key: LandingKey,
        /// Bytes downloaded.
        bytes_in: u64,
        /// Bytes of CSV content.
        content_bytes: u64,
        /// Bytes stored (gzip).
        bytes_out: u64,
        /// SHA-256 of the CSV content.
        sha256: Sha256Digest,
    },
    /// The server answered `304 Not Modified`: nothing downloaded, nothing landed.
    Unchanged,
    /// The release is already landed (same ETag, or same content).
    Duplicate {
        /// Where it already is.
        existing: LandingKey,
        /// Matched by etag or by content.
        of: DuplicateOf,
    },
    /// The archive for that month does not exist (yet): the server said `404`.
    NotPublished,
    /// The fetch failed; nothing landed. [`Extractor`] returns the error
    /// instead: this is how `materia extract` reports a dataset that failed
    /// while it goes on with the others (see [`Extracted::failed`]).
    Failed {
        /// The error, with its causes.
        error: String,
    },
}

/// The result of one fetch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Extracted {
    /// The dataset.
    pub dataset: String,
    /// The URL fetched, without any password.
    pub url: String,
    /// What happened.
    #[serde(flatten)]
    pub status: Status,
}

impl Extracted {
    /// The report of a fetch of `spec` from `url` that failed with `error`:
    /// the line `materia extract --json` prints for it (the URL's secrets
    /// removed, see [`redact`]).
    ///
    /// ```
    /// use materia_core::dataset::DatasetSpec;
    /// use materia_core::extract::Extracted;
    /// let spec = DatasetSpec::new("weather".parse()?, "https://u:pw@example.org/w.csv");
    /// let line = serde_json::to_value(Extracted::failed(&spec, &spec.url, "HTTP 500"))?;
    /// assert_eq!(line["dataset"], "weather");
    /// assert_eq!(line["status"], "failed");
    /// assert_eq!(line["error"], "HTTP 500");
    /// assert_eq!(line["url"], "https://u:***@example.org/w.csv");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failed(spec: &DatasetSpec, url: &str, error: impl Into<String>) -> Extracted {
        Extracted {
            dataset: spec.name.to_string(),
            url: redact(url),
            status: Status::Failed {
                error: error.into(),
            },
        }
    }
}

/// Fetches releases and lands them. Holds one HTTP client (connection pool).
///
/// Blocking. From async code, call it inside `tokio::task::spawn_blocking`;
/// created, called or dropped on an executor thread it still works (the blocking
/// part moves to a thread of its own: the caller waits, nothing panics).
///
/// ```no_run
/// # fn main() -> materia_core::Result<()> {
/// use materia_core::dataset::Config;
/// use materia_core::extract::Extractor;
/// use materia_core::landing::LandingStore;
///
/// let store = LandingStore::open("/data/materia/landing")?;
/// let config = Config::default();
/// let extractor = Extractor::new(config.limits.clone())?;
/// let done = extractor.fetch(&store, config.dataset("psd")?)?;
/// println!("{}: {:?}", done.url, done.status);
/// # Ok(()) }
/// ```
pub struct Extractor {
    /// Always `Some` until dropped (see the `Drop` impl).
    client: Option<reqwest::blocking::Client>,
    limits: Limits,
    progress: bool,
}

impl Extractor {
    /// An extractor that fetches within `limits`.
    pub fn new(limits: Limits) -> Result<Extractor> {
        crate::blocking::off_runtime(|| Extractor::build(limits))
    }

    /// Shows a progress bar on stderr for large downloads when stderr is a terminal.
    pub fn with_progress(mut self, show: bool) -> Self {
        self.progress = show;
        self
    }

    /// Fetches the dataset's current release into the current UTC month,
    /// conditionally on the last release fetched from the same URL.
    pub fn fetch(&self, store: &LandingStore, spec: &DatasetSpec) -> Result<Extracted> {
        self.fetch_url(store, spec, &spec.url)
    }

    /// Like [`Extractor::fetch`], from another URL (`--url`). `{YYYY}` in it
    /// is the current UTC year.
    pub fn fetch_url(
        &self,
        store: &LandingStore,
        spec: &DatasetSpec,
        url: &str,
    ) -> Result<Extracted> {
        let (year, month) = current_month();
        let url = url.replace("{YYYY}", &format!("{:04}", year.get()));
        crate::blocking::off_runtime(|| self.fetch_into(store, spec, &url, year, month, false))
    }

    /// Fetches the archived release of `year`/`month` into that year/month. A
    /// `404` is [`Status::NotPublished`].
    pub fn fetch_archive(
        &self,
        store: &LandingStore,
        spec: &DatasetSpec,
        year: Year,
        month: Month,
    ) -> Result<Extracted> {
        let url = spec
            .archive_url(year.get(), month.get())
            .ok_or_else(|| Error::Config {
                source: None,
                origin: format!("datasets.{}", spec.name),
                reason: "no archive_url is declared for this dataset".into(),
            })?;
        crate::blocking::off_runtime(|| self.fetch_into(store, spec, &url, year, month, true))
    }

    /// Fetches one URL (on a thread of its own when called from async code:
    /// see `blocking::off_runtime`, applied by the callers).
    fn fetch_into(
        &self,
        store: &LandingStore,
        spec: &DatasetSpec,
        url: &str,
        year: Year,
        month: Month,
        archive: bool,
    ) -> Result<Extracted> {
        let job = Fetch {
            store,
            spec,
            shown: redact(url),
        };
        let parsed =
            reqwest::Url::parse(url).map_err(|e| job.fail(format!("not a valid URL: {e}")))?;
        let release = NewRelease::new(spec.name.clone(), year.get().into(), month.get().into())?
            .with_source(job.shown.clone());
        // A total timeout too large to add is no deadline at all (never a panic).
        let deadline = Instant::now().checked_add(self.limits.total_timeout);
        tracing::info!(dataset = %spec.name, url = %job.shown, "fetching");
        let opened = match parsed.scheme() {
            "file" => job.open_file(&parsed, release)?,
            "http" | "https" => self.open_http(&job, parsed, release, archive)?,
            other => return Err(job.fail(format!("unsupported URL scheme {other:?}"))),
        };
        let status = match opened {
            Opened::Done(status) => status,
            Opened::Body {
                release,
                body,
                length,
            } => self.download(&job, release, body, length, deadline)?,
        };
        Ok(self.done(spec, job.shown, status))
    }

    /// Sends the request. A `304`, an archive's `404` or an ETag already
    /// landed ends the fetch here, the body unread.
    fn open_http(
        &self,
        job: &Fetch<'_>,
        url: reqwest::Url,
        release: NewRelease,
        archive: bool,
    ) -> Result<Opened> {
        let previous = job.store.latest_from(&job.spec.name, &job.shown);
        let response = self.send(url, previous.as_ref(), &|reason| job.fail(reason))?;
        match response.status() {
            StatusCode::NOT_MODIFIED => {
                tracing::info!(url = %job.shown, "unchanged (304)");
                return Ok(Opened::Done(Status::Unchanged));
            }
            StatusCode::NOT_FOUND if archive => return Ok(Opened::Done(Status::NotPublished)),
            s if !s.is_success() => return Err(job.fail(format!("the server answered {s}"))),
            _ => {}
        }
        let release = with_validators(release, response.headers());
        if let Some(etag) = &release.etag
            && let Some(existing) = job.store.find(&job.spec.name, etag)
        {
            tracing::info!(url = %job.shown, %existing, "duplicate etag; body not read");
            let status = Status::Duplicate {
                existing,
                of: DuplicateOf::Etag,
            };
            return Ok(Opened::Done(status));
        }
        let length = response.content_length();
        Ok(Opened::Body {
            release,
            body: Box::new(response),
            length,
        })
    }

    /// Streams `body` (at most `max_body_bytes`, before `deadline`) into the
    /// store; a refusal or a broken body becomes the fetch's error.
    fn download(
        &self,
        job: &Fetch<'_>,
        release: NewRelease,
        body: Box<dyn Read>,
        length: Option<u64>,
        deadline: Option<Instant>,
    ) -> Result<Status> {
        let mut body = Limited::new(body, self.limits.max_body_bytes, "body", deadline);
        let bar = crate::progress::bytes_bar(length, self.progress);
        let outcome = {
            let reader = bar.wrap_read(&mut body);
            self.land(job.store, job.spec, release, reader)
        };
        bar.finish_and_clear();
        let bytes_in = body.bytes;
        let outcome = outcome.map_err(|e| match e {
            Error::Input { source } => match refusal(&source) {
                Some(r) => job.fail(r.to_string()),
                None => job.fail(format!(
                    "reading the download failed after {bytes_in} bytes: {}",
                    io_chain(&source)
                )),
            },
            Error::InvalidInput { reason } => job.fail(reason),
            other => other,
        })?;
        Ok(match outcome {
            PutOutcome::Landed(r) => landed(r, bytes_in),
            PutOutcome::Duplicate { existing, of } => Status::Duplicate { existing, of },
        })
    }

    fn done(&self, spec: &DatasetSpec, url: String, status: Status) -> Extracted {
        match &status {
            Status::Landed { key, bytes_in, .. } => {
                tracing::info!(%url, %key, bytes_in, "landed");
            }
            Status::Duplicate { existing, of } => {
                tracing::info!(%url, %existing, ?of, "duplicate: nothing landed");
            }
            Status::NotPublished => tracing::info!(%url, "not published (404)"),
            Status::Unchanged | Status::Failed { .. } => {}
        }
        Extracted {
            dataset: spec.name.to_string(),
            url,
            status,
        }
    }

    /// Unpacks `body` by its first bytes and lands the CSV inside.
    fn land(
        &self,
        store: &LandingStore,
        spec: &DatasetSpec,
        release: NewRelease,
        body: impl Read,
    ) -> Result<PutOutcome> {
        // The store checks the CSV text and header as it lands.
        let release = release.with_csv_header(spec.header.clone());
        let (head, body) = peek(body, 4)?;
        let mut body = BufReader::with_capacity(256 * 1024, body);
        let max = self.limits.max_content_bytes;
        if head.starts_with(b"PK\x03\x04") {
            let mut spool = store.spool()?;
            io::copy(&mut body, spool.file()).map_err(|source| Error::Input { source })?;
            let mut archive =
                zip::ZipArchive::new(spool.file()).map_err(|e| Error::InvalidInput {
                    reason: format!(
                        "not a complete zip archive (truncated download or missing central directory): {e}"
                    ),
                })?;
            let index = crate::archive::pick_csv_member(&mut archive, spec.zip_member.as_deref())?;
            let member = archive.by_index(index).map_err(|e| Error::InvalidInput {
                reason: format!("cannot read zip member: {e}"),
            })?;
            store.put(release, Limited::new(member, max, "CSV content", None))
        } else if head.starts_with(&[0x1f, 0x8b]) {
            let csv = MultiGzDecoder::new(body);
            store.put(release, Limited::new(csv, max, "CSV content", None))
        } else {
            store.put(release, Limited::new(body, max, "CSV content", None))
        }
    }
}

/// One fetch under way: the dataset, its store, and the URL as shown.
struct Fetch<'a> {
    store: &'a LandingStore,
    spec: &'a DatasetSpec,
    /// The URL without its secrets (see [`redact`]): logs and errors show this.
    shown: String,
}

impl Fetch<'_> {
    /// The fetch's error: its URL (as shown) and `reason`.
    fn fail(&self, reason: String) -> Error {
        Error::Extract {
            url: self.shown.clone(),
            reason,
            source: None,
        }
    }

    /// Opens a `file://` URL.
    fn open_file(&self, url: &reqwest::Url, release: NewRelease) -> Result<Opened> {
        let path = url
            .to_file_path()
            .map_err(|()| self.fail("not a local file path".into()))?;
        let file = std::fs::File::open(&path)
            .map_err(|e| self.fail(format!("cannot open {}: {e}", path.display())))?;
        let length = file.metadata().ok().map(|m| m.len());
        Ok(Opened::Body {
            release,
            body: Box::new(file),
            length,
        })
    }
}

/// What opening a URL gave: a body to land, or an answer that lands nothing.
enum Opened {
    /// A body to read, `length` bytes long if the server said so.
    Body {
        release: NewRelease,
        body: Box<dyn Read>,
        length: Option<u64>,
    },
    /// Nothing to read: unchanged, not published, or a known ETag.
    Done(Status),
}

impl Drop for Extractor {
    fn drop(&mut self) {
        // The blocking client joins its own runtime's thread when dropped,
        // which tokio forbids on an executor thread: drop it on a thread of
        // its own there.
        if let Some(client) = self.client.take()
            && crate::blocking::in_runtime()
        {
            std::thread::spawn(move || drop(client));
        }
    }
}

fn landed(r: Release, bytes_in: u64) -> Status {
    Status::Landed {
        key: r.key,
        bytes_in,
        content_bytes: r.content_bytes,
        bytes_out: r.file_bytes,
        sha256: r.content_sha256,
    }
}

/// Reads the first `n` bytes of `body` (fewer only when it ends sooner), however
/// the server splits them, and returns them with a reader of the whole body.
fn peek<R: Read>(mut body: R, n: usize) -> Result<(Vec<u8>, impl Read)> {
    let mut head = Vec::with_capacity(n);
    (&mut body)
        .take(n as u64)
        .read_to_end(&mut head)
        .map_err(|source| Error::Input { source })?;
    let whole = io::Cursor::new(head.clone()).chain(body);
    Ok((head, whole))
}
