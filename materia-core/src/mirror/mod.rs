//! Mirror and restore: the landing zone ⇄ an S3-compatible bucket (Cloudflare R2)
//! through `object_store`.
//!
//! - **Push** uploads every landed file the bucket lacks to
//!   `{prefix}/{dataset}/{year}/{month}/{etag}.csv.gzip`. Landed files are
//!   immutable, so a push never overwrites and never deletes: each upload is a
//!   conditional create (`If-None-Match: *`), and an object that is already there is
//!   compared with the local file — the same bytes count as uploaded, other bytes
//!   are reported as a conflict and left alone.
//! - **Integrity:** every PUT carries `x-amz-checksum-sha256`, which the server
//!   checks against what it received; `Content-Type: application/gzip` and no
//!   `Content-Encoding` (R2 would otherwise decompress it — rclone issue 8137).
//! - **Large files** (from [`MirrorOptions::multipart_threshold`]) go up in
//!   equal-sized parts (R2 requires that), each part with its own SHA-256 checksum;
//!   the object is checked for first (a multipart upload cannot be a conditional
//!   create here). Every upload in flight is recorded first and a killed run's are
//!   aborted by the next push. Memory stays within
//!   [`MirrorOptions::memory_budget`] whatever the file sizes.
//! - **Fast no-op:** what was confirmed uploaded is recorded in
//!   `{LANDING_DIR}/.materia/mirror/{hash of the URL}.jsonl`; a push with nothing new
//!   makes no request at all. `--full` re-lists the bucket to catch remote loss.
//! - **Retries:** 5xx, 429 and timeouts are retried with backoff by `object_store`.
//! - **Restore** downloads every object under the prefix that is missing locally.
//!   Object keys are untrusted: each must parse as a [`LandingKey`]; anything else
//!   is reported and skipped (`--create-bucket`'s own probe objects are only
//!   counted: see `bucket.rs`). Each download is streamed to a spool file, checked
//!   (gzip end to end, a content address must match its content) and landed
//!   through [`LandingStore::put`], so nothing partial ever appears.
//!
//! One push or restore per URL runs at a time (a lock under
//! `.materia/mirror/`); a second one is refused with a message naming the lock.

mod bucket;
mod list;
mod record;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, Checksum};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions,
    PutOptions, PutPayload, RetryConfig,
};
use serde::Serialize;
use sha2::Digest;
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

use crate::error::{Error, IoContext, RemoteKind, Result};
use crate::landing::durable::Staged;
use crate::landing::{
    Entry, LandingKey, LandingStore, NewRelease, PutOutcome, Release, Sha256Digest,
};
pub use bucket::BucketReport;
use list::Listed;
#[cfg_attr(not(feature = "publish"), allow(unused_imports))]
pub(crate) use list::{RawLister, Stored};
use record::{Pending, Record, SampleCursor};

/// User metadata on every uploaded object: the file's SHA-256 (so `--full`
/// compares content without downloading) and its landing time (so a restore
/// keeps the order of releases within a month).
const META_SHA256: &str = "sha256";
const META_LANDED_AT: &str = "landed-at";

const MIB: u64 = 1 << 20;

/// How to reach the bucket and how hard to push.
///
/// Values left `None` come from the standard variables, as `object_store` reads
/// them: `AWS_ENDPOINT` (R2: `https://<account>.r2.cloudflarestorage.com`),
/// `AWS_REGION` (`auto` for R2), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_ALLOW_HTTP`. `Debug` never shows the secret.
#[derive(Clone)]
pub struct MirrorOptions {
    /// `s3://bucket/prefix`.
    pub url: String,
    /// The S3 endpoint.
    pub endpoint: Option<String>,
    /// The region.
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<String>,
    /// Allow `http://` endpoints (loopback tests).
    pub allow_http: Option<bool>,
    /// Requests (uploads, parts, downloads) in flight at once.
    pub concurrency: usize,
    /// Retries of a failed request (5xx, 429, timeouts), with backoff.
    pub retries: usize,
    /// Files this size or larger go up as multipart uploads; smaller ones in one
    /// conditional PUT.
    pub multipart_threshold: u64,
    /// The size of every multipart part but the last (at least 5 MiB on S3 and R2).
    pub part_size: u64,
    /// File bytes held in memory at once by uploads in flight.
    pub memory_budget: u64,
    /// Show a progress bar on stderr (the CLI sets it when stderr is a terminal).
    pub progress: bool,
    /// A push lists the bucket (as `--full`) when the last full push is older
    /// than this, so that objects lost remotely are uploaded again; `None`
    /// only when asked.
    pub full_every: Option<Duration>,
}

impl std::fmt::Debug for MirrorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorOptions")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("allow_http", &self.allow_http)
            .field("concurrency", &self.concurrency)
            .field("retries", &self.retries)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("part_size", &self.part_size)
            .field("memory_budget", &self.memory_budget)
            .field("full_every", &self.full_every)
            .finish()
    }
}

impl MirrorOptions {
    /// Defaults for `url`: everything else from the environment, 8 requests at
    /// once, 5 retries, multipart from 64 MiB in 16 MiB parts, 256 MiB of
    /// buffers, a full push (listing the bucket) at least every 7 days.
    ///
    /// ```
    /// let o = materia_core::mirror::MirrorOptions::new("s3://materia-raw/landing");
    /// assert_eq!(o.concurrency, 8);
    /// assert_eq!(o.part_size, 16 << 20);
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        MirrorOptions {
            url: url.into(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            allow_http: None,
            concurrency: 8,
            retries: 5,
            multipart_threshold: 64 * MIB,
            part_size: 16 * MIB,
            memory_budget: 256 * MIB,
            progress: false,
            full_every: Some(Duration::from_secs(7 * 86_400)),
        }
    }
}

/// What a push did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PushReport {
    /// Files uploaded now.
    pub uploaded: u64,
    /// Files already in the bucket (by the local record, or found there).
    pub skipped: u64,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Objects that exist with other content: left alone.
    pub conflicts: Vec<LandingKey>,
    /// Multipart uploads left by an interrupted run, aborted now.
    pub aborted: u64,
}

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// Files downloaded and landed.
    pub downloaded: u64,
    /// Objects already present locally.
    pub skipped: u64,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Objects refused: bad names, corrupt content.
    pub refused: Vec<Refused>,
    /// Probe objects of `--create-bucket` found under the prefix (an earlier
    /// version wrote them there, and a bucket lock may keep them): not
    /// landing files, not refused, left alone.
    pub probes: u64,
}

/// An object a restore refused, and why.
///
/// ```
/// let r = materia_core::mirror::Refused { object: "landing/psd/x".into(), reason: "not a landing key".into() };
/// assert_eq!(serde_json::to_value(&r).unwrap()["object"], "landing/psd/x");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// The object's key, control characters escaped.
    pub object: String,
    /// Why it was refused.
    pub reason: String,
}

/// What `verify` found remotely.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RemoteVerifyReport {
    /// Objects compared with their local file.
    pub checked: u64,
    /// Landed files missing from the bucket.
    pub missing: Vec<String>,
    /// Objects whose content differs from the local file.
    pub different: Vec<String>,
    /// With a sample: when a run last completed a round over every object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round_completed_at: Option<jiff::Timestamp>,
}

impl RemoteVerifyReport {
    /// Whether the bucket holds every local file, byte for byte.
    ///
    /// ```
    /// let report = materia_core::mirror::RemoteVerifyReport::default();
    /// assert!(report.is_ok());
    /// ```
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty() && self.different.is_empty()
    }
}

/// A bucket prefix the landing zone is mirrored to.
///
/// # From async code
///
/// `Mirror` is a blocking API over a private tokio runtime of its own. From
/// async code, call it inside `tokio::task::spawn_blocking` (it is `Send` and
/// `Sync`: share it in an `Arc`). Called on an executor thread it still works —
/// the blocking part moves to a thread of its own, so the caller waits but
/// nothing panics — and dropping it anywhere is safe.
///
/// ```no_run
/// # async fn serve() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use std::sync::Arc;
/// use materia_core::{landing::LandingStore, mirror::{Mirror, MirrorOptions}};
/// let store = Arc::new(LandingStore::open("/data/materia/landing")?);
/// let mirror = Arc::new(Mirror::new(MirrorOptions::new("s3://materia-raw/landing"))?);
/// let report = tokio::task::spawn_blocking(move || mirror.push(&store, false)).await??;
/// # let _ = report; Ok(()) }
/// ```
///
/// ```no_run
/// # fn main() -> materia_core::Result<()> {
/// use materia_core::landing::LandingStore;
/// use materia_core::mirror::{Mirror, MirrorOptions};
/// let store = LandingStore::open("/data/materia/landing")?;
/// let mirror = Mirror::new(MirrorOptions::new("s3://materia-raw/landing"))?;
/// let report = mirror.push(&store, false)?;
/// println!("uploaded {} files, {} bytes", report.uploaded, report.bytes);
/// # Ok(()) }
/// ```
pub struct Mirror {
    s3: Arc<AmazonS3>,
    prefix: Path,
    /// Endpoint, bucket and prefix: what the local record of uploads is kept for.
    identity: String,
    /// How to list the bucket without `object_store` when a key is hostile.
    endpoint: String,
    bucket: String,
    region: String,
    allow_http: bool,
    options: MirrorOptions,
    /// The memory budget in MiB permits; [`Mirror::reserve`] takes some.
    memory: Semaphore,
    budget_mib: u64,
    /// Always `Some` until dropped (see the `Drop` impl).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Mirror {
    fn drop(&mut self) {
        // Dropping a runtime inside async code panics; shutting it down in the
        // background never does.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A mirror error that is not the S3 client's: a bad setting, a refusal.
fn remote(url: &str, kind: RemoteKind, reason: impl std::fmt::Display) -> Error {
    Error::Mirror {
        url: url.to_owned(),
        reason: reason.to_string(),
        kind,
        source: None,
    }
}

/// The S3 client's error after its retries, classified for callers, kept as the
/// source (`context` says which object or part).
fn remote_store(url: &str, context: String, e: object_store::Error) -> Error {
    Error::Mirror {
        url: url.to_owned(),
        reason: format!("{context}{e}"),
        kind: classify(&e),
        source: Some(Box::new(e)),
    }
}

/// The HTTP status an error's text reports (`status code: 404`, `status: 503`).
fn http_status(text: &str) -> Option<u16> {
    ["status code: ", "status: "].iter().find_map(|marker| {
        let at = text.find(marker)? + marker.len();
        text.get(at..at + 3)?.parse().ok()
    })
}

/// What kind of failure an `object_store` error is.
pub(crate) fn classify(e: &object_store::Error) -> RemoteKind {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => RemoteKind::NotFound,
        E::AlreadyExists { .. } | E::Precondition { .. } | E::NotModified { .. } => {
            RemoteKind::Conflict
        }
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => RemoteKind::Auth,
        E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } | E::NotSupported { .. } => {
            RemoteKind::Config
        }
        _ => {
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                if let Some(http) = s.downcast_ref::<object_store::client::HttpError>() {
                    use object_store::client::HttpErrorKind as K;
                    return match http.kind() {
                        K::Timeout => RemoteKind::Timeout,
                        K::Connect | K::Request | K::Interrupted => RemoteKind::Transient,
                        _ => RemoteKind::Other,
                    };
                }
                source = s.source();
            }
            // A request error object_store does not map (a listing's): the
            // HTTP status is only in its text.
            match http_status(&e.to_string()) {
                Some(401 | 403) => RemoteKind::Auth,
                Some(404) => RemoteKind::NotFound,
                Some(409 | 412) => RemoteKind::Conflict,
                Some(429 | 500..=599) => RemoteKind::Transient,
                _ => RemoteKind::Other,
            }
        }
    }
}

/// What happened to one file on push.
#[derive(Debug, PartialEq, Eq)]
enum Upload {
    Uploaded(u64),
    AlreadyThere,
    Conflict,
}

/// An S3 client for `options.url`, the runtime its requests run on, and what
/// it was built from (shared by the mirror and `publish`).
pub(crate) struct S3Target {
    pub s3: AmazonS3,
    /// Where its requests run (two worker threads).
    pub runtime: tokio::runtime::Runtime,
    pub prefix: Path,
    /// `options.url`.
    pub url: String,
    /// Endpoint, bucket and prefix.
    pub identity: String,
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub allow_http: bool,
}

impl S3Target {
    /// The client for `options.url` (`s3://bucket/prefix`), with the
    /// endpoint, keys, retries and timeouts of `options` (else the
    /// environment's `AWS_*`); no request is made.
    pub(crate) fn connect(options: &MirrorOptions) -> Result<S3Target> {
        let url = options.url.clone();
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| remote(&url, RemoteKind::Config, format!("not a URL: {e}")))?;
        if parsed.scheme() != "s3" || parsed.host_str().is_none_or(str::is_empty) {
            return Err(remote(
                &url,
                RemoteKind::Config,
                "expected s3://bucket/prefix",
            ));
        }
        let prefix = Path::parse(parsed.path().trim_matches('/'))
            .map_err(|e| remote(&url, RemoteKind::Config, format!("bad prefix: {e}")))?;
        let retry = RetryConfig {
            max_retries: options.retries,
            retry_timeout: Duration::from_secs(180),
            ..RetryConfig::default()
        };
        // object_store's default request timeout (30 s) fails a 64 MiB PUT
        // below ~2 MB/s: allow the largest single request at 128 KiB/s.
        let largest = options.multipart_threshold.max(options.part_size);
        let timeout_secs = (largest / (128 * 1024)).clamp(60, 3600);
        let mut builder = builder_from_env()
            .with_url(format!("s3://{}", parsed.host_str().unwrap_or_default()))
            .with_checksum_algorithm(Checksum::SHA256)
            .with_config(
                AmazonS3ConfigKey::Client(object_store::ClientConfigKey::Timeout),
                format!("{timeout_secs}s"),
            )
            .with_retry(retry);
        if let Some(v) = &options.endpoint {
            builder = builder.with_endpoint(v);
        }
        if let Some(v) = &options.region {
            builder = builder.with_region(v);
        }
        if let Some(v) = &options.access_key_id {
            builder = builder.with_access_key_id(v);
        }
        if let Some(v) = &options.secret_access_key {
            builder = builder.with_secret_access_key(v);
        }
        if let Some(v) = options.allow_http {
            builder = builder.with_allow_http(v);
        }
        let bucket = parsed.host_str().unwrap_or_default().to_owned();
        let region = builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        // object_store panics signing for an endpoint that is not a URI.
        if !reqwest::Url::parse(&endpoint)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        {
            return Err(remote(
                &url,
                RemoteKind::Config,
                format!(
                    "the endpoint {endpoint:?} (AWS_ENDPOINT) is not an http(s) URL: \
                     set it to e.g. https://ACCOUNT_ID.r2.cloudflarestorage.com"
                ),
            ));
        }
        let allow_http = builder
            .get_config_value(&AmazonS3ConfigKey::Client(
                object_store::ClientConfigKey::AllowHttp,
            ))
            .is_some_and(|v| v == "true");
        // The same bucket name on another endpoint is another bucket: the
        // record of what is uploaded is kept per endpoint, bucket and prefix.
        let identity = format!("{} s3://{bucket}/{prefix}", endpoint.trim_end_matches('/'));
        let s3 = builder
            .build()
            .map_err(|e| remote_store(&url, String::new(), e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| {
                remote(
                    &url,
                    RemoteKind::Other,
                    format!("cannot start a runtime: {e}"),
                )
            })?;
        Ok(S3Target {
            s3,
            runtime,
            prefix,
            url,
            identity,
            endpoint,
            bucket,
            region,
            allow_http,
        })
    }
}

impl Mirror {
    /// Connects to `options.url` (no request is made yet).
    ///
    /// ```
    /// use materia_core::mirror::{Mirror, MirrorOptions};
    /// let err = Mirror::new(MirrorOptions::new("https://example.com/x")).err().unwrap();
    /// assert!(err.to_string().contains("s3://bucket/prefix"));
    /// ```
    pub fn new(options: MirrorOptions) -> Result<Mirror> {
        let S3Target {
            s3,
            runtime,
            prefix,
            url,
            identity,
            endpoint,
            bucket,
            region,
            allow_http,
        } = S3Target::connect(&options)?;
        if options.part_size < 5 * MIB {
            return Err(remote(
                &url,
                RemoteKind::Config,
                "part size must be at least 5 MiB",
            ));
        }
        let budget_mib = options.memory_budget.max(options.part_size).div_ceil(MIB);
        Ok(Mirror {
            s3: Arc::new(s3),
            prefix,
            identity,
            endpoint,
            bucket,
            region,
            allow_http,
            memory: Semaphore::new(budget_mib as usize),
            budget_mib,
            options,
            runtime: Some(runtime),
        })
    }

    fn fail(&self, e: impl std::fmt::Display) -> Error {
        remote(&self.options.url, RemoteKind::Other, e)
    }

    /// The S3 client's error about one object, naming it.
    fn fail_at(&self, location: &Path, e: object_store::Error) -> Error {
        remote_store(&self.options.url, format!("{location}: "), e)
    }

    fn object_path(&self, key: &LandingKey) -> Path {
        let mut parts: Vec<String> = self.prefix.parts().map(|p| p.as_ref().to_owned()).collect();
        parts.extend(key.to_string().split('/').map(str::to_owned));
        Path::from_iter(parts)
    }

    /// An object key relative to the prefix (the key itself when it is not
    /// under it).
    fn relative<'k>(&self, key: &'k str) -> &'k str {
        let prefix = self.prefix.as_ref();
        if prefix.is_empty() {
            return key;
        }
        key.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(key)
    }

    /// Every object under the prefix. `object_store` fails a whole listing on
    /// one key it refuses (or a listing its XML parser cannot read); then the
    /// bucket is listed raw (see `list.rs`) so that the caller can skip that key
    /// alone. When both fail, the first error is the one reported.
    async fn list_objects(&self) -> Result<Vec<Listed>> {
        let listed: std::result::Result<Vec<object_store::ObjectMeta>, _> =
            self.s3.list(Some(&self.prefix)).try_collect().await;
        let error = match listed {
            Ok(objects) => return Ok(objects.into_iter().map(Listed::from).collect()),
            Err(e) => e,
        };
        match self.raw().list(self.prefix.as_ref()).await {
            Ok(objects) => {
                tracing::warn!("object_store could not list the bucket ({error}); listed it raw");
                Ok(objects)
            }
            Err(raw_error) => {
                tracing::debug!("the raw listing failed too: {raw_error}");
                Err(remote_store(&self.options.url, "listing: ".into(), error))
            }
        }
    }

    /// Raw signed requests to the bucket (see `list.rs`).
    fn raw(&self) -> RawLister<'_> {
        RawLister {
            s3: &self.s3,
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            allow_http: self.allow_http,
        }
    }

    /// Runs `future` to completion on the mirror's own runtime (the public
    /// methods have moved off any other runtime first: see `off_runtime`).
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        let Some(runtime) = &self.runtime else {
            unreachable!("the runtime lives as long as the mirror")
        };
        runtime.block_on(future)
    }

    /// The `sha256` metadata of an object, when it has one.
    async fn remote_sha256(&self, location: &Path) -> Result<Option<String>> {
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        let got = self
            .s3
            .get_opts(location, options)
            .await
            .map_err(|e| self.fail_at(location, e))?;
        Ok(got
            .attributes
            .get(&Attribute::Metadata(META_SHA256.into()))
            .map(|v| v.as_ref().to_owned()))
    }

    /// Holds `bytes` of the memory budget (at most the whole budget).
    async fn reserve(&self, bytes: u64) -> Result<tokio::sync::SemaphorePermit<'_>> {
        let permits = bytes.div_ceil(MIB).clamp(1, self.budget_mib) as u32;
        self.memory
            .acquire_many(permits)
            .await
            .map_err(|e| self.fail(e))
    }

    /// Pushes every landed file the bucket lacks. `full` lists the bucket first
    /// instead of trusting the local record (catches objects lost remotely); so
    /// does a push when the last full one is older than
    /// [`MirrorOptions::full_every`]. Objects already there are compared by
    /// content (their `sha256` metadata, or byte for byte), never by size alone.
    pub fn push(&self, landing: &LandingStore, full: bool) -> Result<PushReport> {
        crate::blocking::off_runtime(|| self.push_blocking(landing, full))
    }

    fn push_blocking(&self, landing: &LandingStore, full: bool) -> Result<PushReport> {
        let record = Record::open(landing.root(), &self.identity)?;
        let full = full || record.full_due(self.options.full_every)?;
        let mut report = PushReport {
            aborted: self.abort_pending(&record)?,
            ..PushReport::default()
        };
        let confirmed = if full {
            HashMap::new()
        } else {
            record.confirmed()?
        };
        let mut todo: Vec<Entry> = Vec::new();
        for e in landing.list() {
            let sha = e.release.as_ref().map(|r| r.file_sha256.to_string());
            match (confirmed.get(&e.key.to_string()), sha) {
                (Some(done), Some(sha)) if *done == sha => report.skipped += 1,
                _ => todo.push(e),
            }
        }
        if todo.is_empty() && !full {
            return Ok(report);
        }
        let remote_sizes: HashMap<Path, u64> = if full {
            self.block_on(self.list_objects())?
                .into_iter()
                .filter_map(|o| Some((o.location?, o.size)))
                .collect()
        } else {
            HashMap::new()
        };
        let mut jobs = Vec::with_capacity(todo.len());
        for entry in todo {
            let path = landing.path_of(&entry.key);
            let size = std::fs::symlink_metadata(&path).at(&path)?.len();
            jobs.push((entry, path, size));
        }
        let total: u64 = jobs.iter().map(|(_, _, size)| size).sum();
        let bar = crate::progress::bytes_bar(Some(total), self.options.progress);
        let mut now_confirmed: Vec<(String, String)> = Vec::new();
        let mut first_error = None;
        self.block_on(async {
            let mut results = futures::stream::iter(jobs.into_iter().map(|(entry, path, size)| {
                let location = self.object_path(&entry.key);
                let known = remote_sizes.get(&location).copied();
                let (bar, record) = (&bar, &record);
                async move {
                    let outcome = match known {
                        Some(remote) if remote == size => {
                            self.same_content(&entry, &path, &location).await
                        }
                        Some(_) => Ok(Upload::Conflict),
                        None => self.upload(record, &entry, &path, &location, size).await,
                    };
                    bar.inc(size);
                    (entry, outcome)
                }
            }))
            .buffer_unordered(self.options.concurrency.max(1));
            while let Some((entry, outcome)) = results.next().await {
                let result = match outcome {
                    Ok(Upload::Conflict) => {
                        tracing::warn!(key = %entry.key, "conflict: the bucket holds other content; left alone");
                        report.conflicts.push(entry.key.clone());
                        continue;
                    }
                    Ok(upload) => {
                        if let Upload::Uploaded(bytes) = upload {
                            report.uploaded += 1;
                            report.bytes += bytes;
                        } else {
                            report.skipped += 1;
                        }
                        match &entry.release {
                            Some(r) => {
                                let line = (entry.key.to_string(), r.file_sha256.to_string());
                                let done = record.confirm(&line.0, &line.1);
                                now_confirmed.push(line);
                                done
                            }
                            None => Ok(()),
                        }
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    tracing::error!("{e}");
                    first_error.get_or_insert(e);
                }
            }
        });
        bar.finish_and_clear();
        if let Some(e) = first_error {
            return Err(e);
        }
        if full {
            // Exactly what the bucket holds now: entries it lost are dropped.
            now_confirmed.sort();
            record.replace_confirmed(&now_confirmed)?;
            record.mark_full()?;
        }
        Ok(report)
    }

    /// Whether an object of the right size holds the local file: by its
    /// `sha256` metadata when it has one, else byte for byte.
    async fn same_content(&self, entry: &Entry, path: &FsPath, location: &Path) -> Result<Upload> {
        let local = entry.release.as_ref().map(|r| r.file_sha256.to_string());
        match (self.remote_sha256(location).await?, local) {
            (Some(remote), Some(local)) if remote == local => Ok(Upload::AlreadyThere),
            (Some(_), Some(_)) => Ok(Upload::Conflict),
            _ => self.compare(path, location).await,
        }
    }

    /// Aborts the multipart uploads a killed run left behind.
    fn abort_pending(&self, record: &Record) -> Result<u64> {
        let mut aborted = 0;
        for p in record.pending()? {
            let location = Path::from(p.location.as_str());
            let result = self.block_on(self.s3.abort_multipart(&location, &p.upload_id.clone()));
            match result {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    tracing::info!(object = %p.location, "aborted an interrupted multipart upload");
                    record.remove_pending(&p.location)?;
                    aborted += 1;
                }
                Err(e) => tracing::warn!(
                    object = %p.location,
                    "cannot abort an interrupted multipart upload yet: {e}"
                ),
            }
        }
        Ok(aborted)
    }

    async fn upload(
        &self,
        record: &Record,
        entry: &Entry,
        path: &FsPath,
        location: &Path,
        size: u64,
    ) -> Result<Upload> {
        let release = entry.release.as_ref();
        if size >= self.options.multipart_threshold {
            return self
                .upload_multipart(record, release, path, location, size)
                .await;
        }
        let _memory = self.reserve(size).await?;
        let bytes = read_regular(path).await?;
        check_hash(path, release, Sha256Digest::of(&bytes))?;
        let options = PutOptions {
            mode: PutMode::Create,
            attributes: object_attributes(release),
            ..PutOptions::default()
        };
        match self
            .s3
            .put_opts(location, PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => Ok(Upload::Uploaded(size)),
            // Already there — possibly our own earlier attempt that the client
            // retried: compare before calling it a conflict.
            Err(object_store::Error::AlreadyExists { .. }) => self.compare(path, location).await,
            Err(e) => Err(self.fail_at(location, e)),
        }
    }

    async fn upload_multipart(
        &self,
        record: &Record,
        release: Option<&Release>,
        path: &FsPath,
        location: &Path,
        size: u64,
    ) -> Result<Upload> {
        // A multipart completion is not a conditional create here: check first.
        match self.s3.head(location).await {
            Ok(_) => return self.compare(path, location).await,
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.fail_at(location, e)),
        }
        let id = self
            .s3
            .create_multipart_opts(
                location,
                PutMultipartOptions {
                    attributes: object_attributes(release),
                    ..PutMultipartOptions::default()
                },
            )
            .await
            .map_err(|e| self.fail_at(location, e))?;
        let pending = Pending {
            location: location.to_string(),
            upload_id: id.clone(),
        };
        if let Err(e) = record.add_pending(&pending) {
            // Unrecorded, the upload could be orphaned: abort it now. (Only a
            // power cut between the create and this record's fsync can still
            // orphan one: the bucket's lifecycle rule for incomplete uploads
            // is the backstop, see the README.)
            let _ = self.s3.abort_multipart(location, &id).await;
            return Err(e);
        }
        let part_size = self.options.part_size;
        let parts = size.div_ceil(part_size);
        let id_ref = &id;
        let uploaded = async {
            let file = tokio::sync::Mutex::new(open_regular(path).await?);
            let hasher = std::sync::Mutex::new(sha2::Sha256::new());
            // Parts are read in order (and hashed as they are read), then sent
            // concurrently: the whole file is hashed in the same pass.
            let ids = futures::stream::iter(0..parts)
                .then(|i| {
                    let (file, hasher) = (&file, &hasher);
                    async move {
                        let len = part_size.min(size - i * part_size);
                        let memory = self.reserve(len).await?;
                        let mut buf = vec![0; len as usize];
                        file.lock().await.read_exact(&mut buf).await.at(path)?;
                        hasher
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .update(&buf);
                        Ok::<_, Error>((i, buf, memory))
                    }
                })
                .map_ok(|(i, buf, memory)| async move {
                    let part = self
                        .s3
                        .put_part(location, id_ref, i as usize, PutPayload::from(buf))
                        .await
                        .map_err(|e| {
                            remote_store(
                                &self.options.url,
                                format!("{location} part {}: ", i + 1),
                                e,
                            )
                        });
                    drop(memory);
                    part
                })
                .try_buffered(self.options.concurrency.max(1))
                .try_collect::<Vec<_>>()
                .await?;
            let digest = hasher
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            check_hash(path, release, Sha256Digest::from_hasher(digest))?;
            self.s3
                .complete_multipart(location, &id, ids)
                .await
                .map_err(|e| self.fail_at(location, e))
        }
        .await;
        // A failed upload is aborted now; if the abort fails too, its record
        // stays and the next push aborts it.
        let settled = uploaded.is_ok() || self.s3.abort_multipart(location, &id).await.is_ok();
        if settled {
            record.remove_pending(location.as_ref())?;
        }
        uploaded.map(|_| Upload::Uploaded(size))
    }

    /// Streams the object and compares it with the local file, byte for byte.
    async fn compare(&self, path: &FsPath, location: &Path) -> Result<Upload> {
        let got = self
            .s3
            .get(location)
            .await
            .map_err(|e| self.fail_at(location, e))?;
        let local_size = tokio::fs::metadata(path).await.at(path)?.len();
        if got.meta.size != local_size {
            return Ok(Upload::Conflict);
        }
        let mut local = tokio::fs::File::open(path).await.at(path)?;
        let mut stream = got.into_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.fail_at(location, e))?;
            buf.resize(chunk.len(), 0);
            local.read_exact(&mut buf).await.at(path)?;
            if buf[..] != chunk[..] {
                return Ok(Upload::Conflict);
            }
        }
        Ok(Upload::AlreadyThere)
    }

    /// Lists the bucket and compares every object with its local file.
    pub fn verify(&self, landing: &LandingStore) -> Result<RemoteVerifyReport> {
        crate::blocking::off_runtime(|| self.verify_blocking(landing, None))
    }

    /// Lists the bucket (every landed file must be there) but compares the
    /// content of only `sample` objects: those after where the last sampled
    /// run stopped, in key order, wrapping around. Over `ceil(files / sample)`
    /// runs every object is compared; where it stands is kept in
    /// `.materia/mirror/{id}.verify`.
    ///
    /// ```no_run
    /// # fn main() -> materia_core::Result<()> {
    /// use materia_core::{landing::LandingStore, mirror::{Mirror, MirrorOptions}};
    /// let store = LandingStore::open("/data/materia/landing")?;
    /// let mirror = Mirror::new(MirrorOptions::new("s3://materia-raw/landing"))?;
    /// let report = mirror.verify_sample(&store, 20)?;
    /// assert!(report.checked <= 20);
    /// # Ok(()) }
    /// ```
    pub fn verify_sample(
        &self,
        landing: &LandingStore,
        sample: usize,
    ) -> Result<RemoteVerifyReport> {
        crate::blocking::off_runtime(|| self.verify_blocking(landing, Some(sample)))
    }

    fn verify_blocking(
        &self,
        landing: &LandingStore,
        sample: Option<usize>,
    ) -> Result<RemoteVerifyReport> {
        let objects: HashSet<Path> = self
            .block_on(self.list_objects())?
            .into_iter()
            .filter_map(|o| o.location)
            .collect();
        let mut report = RemoteVerifyReport::default();
        let mut present = Vec::new();
        for entry in landing.list() {
            let location = self.object_path(&entry.key);
            if objects.contains(&location) {
                present.push((entry.key, location));
            } else {
                report.missing.push(entry.key.to_string());
            }
        }
        let mut cursor = None;
        if let Some(n) = sample {
            let mut c = SampleCursor::load(landing.root(), &self.identity)?;
            present.sort_by_key(|(key, _)| key.to_string());
            let start = c.after.as_ref().map_or(0, |after| {
                present.partition_point(|(key, _)| key.to_string() <= *after)
            });
            // Past the last key: a new round starts at the first.
            let start = if start >= present.len() { 0 } else { start };
            let n = n.min(present.len());
            let mut picked: Vec<(LandingKey, Path)> = present
                .iter()
                .cycle()
                .skip(start)
                .take(n)
                .cloned()
                .collect();
            if start + n >= present.len() && n > 0 {
                c.round_completed_at = Some(jiff::Timestamp::now());
            }
            c.after = picked.last().map(|(key, _)| key.to_string());
            report.round_completed_at = c.round_completed_at;
            std::mem::swap(&mut present, &mut picked);
            cursor = Some(c);
        }
        let results: Vec<(LandingKey, Result<Upload>)> = self.block_on(
            futures::stream::iter(present.into_iter().map(|(key, location)| {
                let path = landing.path_of(&key);
                async move {
                    let outcome = self.compare(&path, &location).await;
                    (key, outcome)
                }
            }))
            .buffer_unordered(self.options.concurrency.max(1))
            .collect(),
        );
        for (key, outcome) in results {
            report.checked += 1;
            if outcome? == Upload::Conflict {
                report.different.push(key.to_string());
            }
        }
        report.different.sort();
        if let Some(c) = cursor {
            c.save(landing.root(), &self.identity)?;
        }
        Ok(report)
    }

    /// Downloads every object under the prefix that is missing locally and lands it.
    pub fn restore(&self, landing: &LandingStore) -> Result<RestoreReport> {
        crate::blocking::off_runtime(|| self.restore_blocking(landing))
    }

    fn restore_blocking(&self, landing: &LandingStore) -> Result<RestoreReport> {
        let record = Record::open(landing.root(), &self.identity)?;
        let objects = self.block_on(self.list_objects())?;
        let mut report = RestoreReport::default();
        let mut todo = Vec::new();
        for listed in objects {
            if bucket::is_probe(self.relative(&listed.key)) {
                tracing::debug!(object = %listed.shown(), "a --create-bucket probe: skipped");
                report.probes += 1;
                continue;
            }
            let shown = listed.shown();
            let key = match &listed.location {
                Some(_) => LandingKey::from_object_key(self.prefix.as_ref(), &listed.key),
                None => Err(Error::InvalidKey {
                    what: "object key",
                    value: shown.clone(),
                    reason: "not a valid object path (an empty, `.` or `..` segment, or a control character)".into(),
                }),
            };
            match key {
                Ok(key) if landing.path_of(&key).symlink_metadata().is_ok() => report.skipped += 1,
                Ok(key) => todo.push((key, listed)),
                Err(e) => {
                    tracing::warn!(object = %shown, "refused: {e}");
                    report.refused.push(Refused {
                        object: shown,
                        reason: e.to_string(),
                    });
                }
            }
        }
        let total: u64 = todo.iter().map(|(_, o)| o.size).sum();
        let bar = crate::progress::bytes_bar(Some(total), self.options.progress);
        let mut first_error = None;
        self.block_on(async {
            let mut downloads = futures::stream::iter(todo.into_iter().map(|(key, listed)| {
                let bar = &bar;
                async move {
                    let location = self.object_path(&key);
                    let spooled = self.download(landing, &location, bar).await;
                    (key, listed, spooled)
                }
            }))
            .buffer_unordered(self.options.concurrency.max(1));
            while let Some((key, listed, spooled)) = downloads.next().await {
                let landed = spooled.and_then(|(staged, landed_at)| {
                    let landed_at = landed_at.or(listed.last_modified);
                    tokio::task::block_in_place(|| {
                        let download = Download {
                            key: &key,
                            listed: &listed,
                            landed_at,
                        };
                        self.land_download(landing, &record, download, staged, &mut report)
                    })
                });
                if let Err(e) = landed {
                    tracing::error!("{e}");
                    first_error.get_or_insert(e);
                }
            }
        });
        bar.finish_and_clear();
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Streams one object into a spool file under the landing root; returns it
    /// with the landing time its metadata records.
    async fn download(
        &self,
        landing: &LandingStore,
        location: &Path,
        bar: &indicatif::ProgressBar,
    ) -> Result<(Staged, Option<jiff::Timestamp>)> {
        let mut staged = landing.spool()?;
        let got = self
            .s3
            .get(location)
            .await
            .map_err(|e| self.fail_at(location, e))?;
        let landed_at = got
            .attributes
            .get(&Attribute::Metadata(META_LANDED_AT.into()))
            .and_then(|v| v.as_ref().parse::<jiff::Timestamp>().ok());
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.fail_at(location, e))?;
            let path = staged.path().to_owned();
            staged.file().write_all(&chunk).at(&path)?;
            bar.inc(chunk.len() as u64);
        }
        Ok((staged, landed_at))
    }

    /// Checks a spooled download and lands it through the store.
    fn land_download(
        &self,
        landing: &LandingStore,
        record: &Record,
        download: Download<'_>,
        mut staged: Staged,
        report: &mut RestoreReport,
    ) -> Result<()> {
        let Download {
            key,
            listed,
            landed_at,
        } = download;
        let shown = listed.shown();
        let path = staged.path().to_owned();
        staged.file().seek(SeekFrom::Start(0)).at(&path)?;
        if let Some(problem) = check_download(key, staged.file()) {
            tracing::warn!(object = %shown, "refused: {problem}");
            report.refused.push(Refused {
                object: shown,
                reason: problem,
            });
            return Ok(());
        }
        staged.file().seek(SeekFrom::Start(0)).at(&path)?;
        let release = NewRelease::new(
            key.dataset.clone(),
            key.year.get().into(),
            key.month.get().into(),
        )?
        .with_etag(Some(key.etag.clone()))
        .with_source(shown.clone());
        // The original landing time keeps the order of releases within a month.
        let release = match landed_at {
            Some(at) => release.with_landed_at(at),
            None => release,
        };
        match landing.put(release, staged.file()) {
            Ok(PutOutcome::Landed(release)) => {
                report.downloaded += 1;
                report.bytes += listed.size;
                // The bucket holds it: the next push need not ask.
                record.confirm(&release.key.to_string(), &release.file_sha256.to_string())?;
            }
            Ok(PutOutcome::Duplicate { .. }) => report.skipped += 1,
            Err(Error::InvalidInput { reason }) => report.refused.push(Refused {
                object: shown,
                reason,
            }),
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

/// One downloaded object on its way into the store.
struct Download<'a> {
    key: &'a LandingKey,
    listed: &'a Listed,
    landed_at: Option<jiff::Timestamp>,
}

/// `application/gzip` and no Content-Encoding (R2 would otherwise hand back
/// the decompressed bytes — rclone issue 8137), and the file's hash and
/// landing time as user metadata.
fn object_attributes(release: Option<&Release>) -> Attributes {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, "application/gzip".into());
    if let Some(r) = release {
        attributes.insert(
            Attribute::Metadata(META_SHA256.into()),
            r.file_sha256.to_string().into(),
        );
        attributes.insert(
            Attribute::Metadata(META_LANDED_AT.into()),
            r.landed_at.to_string().into(),
        );
    }
    attributes
}

/// Refuses to upload a file whose bytes are not what the ledger recorded: the
/// backup must never hold only a corrupt copy.
fn check_hash(path: &FsPath, release: Option<&Release>, read: Sha256Digest) -> Result<()> {
    match release {
        Some(r) if r.file_sha256 != read => Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "its SHA-256 is {read}, {} was landed; not uploading it (run `materia verify`)",
                r.file_sha256
            ),
        }),
        _ => Ok(()),
    }
}

/// Opens a landed file for reading, refusing a symlink or anything but a
/// regular file (a FIFO would hang the push).
async fn open_regular(path: &FsPath) -> Result<tokio::fs::File> {
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .await
        .at(path)?;
    let meta = file.metadata().await.at(path)?;
    if !meta.is_file() {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    Ok(file)
}

/// Reads a whole landed file (see [`open_regular`]).
async fn read_regular(path: &FsPath) -> Result<Vec<u8>> {
    let mut file = open_regular(path).await?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).await.at(path)?;
    Ok(bytes)
}

/// What is wrong with a downloaded object, if anything: it must be gzip, and a
/// content address must be the SHA-256 of the content. (The store checks every
/// gzip member's CRC and length again as it lands the file.)
fn check_download(key: &LandingKey, mut file: impl Read) -> Option<String> {
    let mut magic = [0u8; 2];
    if file.read_exact(&mut magic).is_err() || magic != [0x1f, 0x8b] {
        return Some("not a gzip file".into());
    }
    let etag = key.etag.as_str();
    if !key.etag.is_content_address() {
        return None;
    }
    let gz = flate2::read::MultiGzDecoder::new(std::io::Read::chain(&magic[..], file));
    let sha = match Sha256Digest::of_reader(gz) {
        Ok((digest, _)) => digest.to_string(),
        Err(e) => return Some(format!("not valid gzip: {e}")),
    };
    (sha != etag).then(|| format!("content SHA-256 is {sha}, not the {etag} its name claims"))
}

/// `AmazonS3Builder::from_env`, except that a variable set to the empty string
/// (or only spaces) counts as unset: old `materia.env` files shipped `AWS_ACCESS_KEY_ID=`, and
/// an empty key must not hide the `r2` credential nor be signed with.
fn builder_from_env() -> AmazonS3Builder {
    let mut builder = AmazonS3Builder::new();
    for (key, value) in std::env::vars_os() {
        if let (Some(key), Some(value)) = (key.to_str(), value.to_str())
            && key.starts_with("AWS_")
            && !value.trim().is_empty()
            && let Ok(config) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>()
        {
            builder = builder.with_config(config, value);
        }
    }
    builder
}
