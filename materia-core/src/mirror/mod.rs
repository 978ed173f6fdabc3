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
//! - **Fast no-op:** what was confirmed uploaded is recorded in
//!   `{LANDING_DIR}/.materia/mirror/{hash of the URL}.jsonl`; a push with nothing new
//!   makes no request at all. `--full` re-lists the bucket to catch remote loss.
//! - **Restore** downloads every object under the prefix that is missing locally.
//!   Object keys are untrusted: each must parse as a [`LandingKey`]; anything else
//!   is reported and skipped. Each download is spooled, checked (gzip end to end,
//!   a content address must match its content) and landed through
//!   [`LandingStore::put`], so nothing partial ever appears.

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::landing::{Entry, LandingKey, LandingStore, NewRelease, PutOutcome, Sha256Digest};

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
    /// Uploads or downloads in flight at once.
    pub concurrency: usize,
    /// Retries of a failed request (5xx, 429, timeouts), with backoff.
    pub retries: usize,
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
            .finish()
    }
}

impl MirrorOptions {
    /// Defaults for `url`: everything else from the environment, 8 transfers at
    /// once, 5 retries.
    ///
    /// ```
    /// let o = materia_core::mirror::MirrorOptions::new("s3://materia-raw/landing");
    /// assert_eq!(o.concurrency, 8);
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
    pub conflicts: Vec<String>,
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
    /// Objects refused: the key and why (bad name, corrupt content).
    pub refused: Vec<(String, String)>,
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
}

impl RemoteVerifyReport {
    /// Whether the bucket holds every local file, byte for byte.
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty() && self.different.is_empty()
    }
}

/// A bucket prefix the landing zone is mirrored to.
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
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    options: MirrorOptions,
    runtime: tokio::runtime::Runtime,
}

/// One line of the local record of confirmed uploads.
#[derive(Serialize, Deserialize)]
struct Confirmed {
    key: String,
    sha256: String,
}

fn remote(url: &str, e: impl std::fmt::Display) -> Error {
    Error::Mirror {
        url: url.to_owned(),
        reason: e.to_string(),
    }
}

impl Mirror {
    /// Connects to `options.url` (no request is made yet).
    pub fn new(options: MirrorOptions) -> Result<Mirror> {
        let url = options.url.clone();
        let parsed =
            reqwest::Url::parse(&url).map_err(|e| remote(&url, format!("not a URL: {e}")))?;
        if parsed.scheme() != "s3" {
            return Err(remote(&url, "expected s3://bucket/prefix"));
        }
        let prefix = Path::parse(parsed.path().trim_matches('/')).map_err(|e| remote(&url, e))?;
        let retry = RetryConfig {
            max_retries: options.retries,
            retry_timeout: Duration::from_secs(180),
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_url(format!("s3://{}", parsed.host_str().unwrap_or_default()))
            .with_checksum_algorithm(Checksum::SHA256)
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
        let store = builder.build().map_err(|e| remote(&url, e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| remote(&url, e))?;
        Ok(Mirror {
            store: Arc::new(store),
            prefix,
            options,
            runtime,
        })
    }

    fn object_path(&self, key: &LandingKey) -> Path {
        let mut parts: Vec<String> = self.prefix.parts().map(|p| p.as_ref().to_owned()).collect();
        parts.extend(key.to_string().split('/').map(str::to_owned));
        Path::from_iter(parts)
    }

    fn record_path(&self, landing: &LandingStore) -> PathBuf {
        let id = Sha256Digest::of(self.options.url.as_bytes()).to_string();
        landing
            .root()
            .join(".materia/mirror")
            .join(format!("{}.jsonl", &id[..16]))
    }

    /// Landing keys confirmed uploaded to this URL, with the file hash they had.
    fn confirmed(&self, landing: &LandingStore) -> Result<HashMap<String, String>> {
        let path = self.record_path(landing);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => return Err(e).at(&path),
        };
        let mut out = HashMap::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line.at(&path)?;
            // A line torn by a crash is skipped: that file is checked again.
            if let Ok(c) = serde_json::from_str::<Confirmed>(&line) {
                out.insert(c.key, c.sha256);
            }
        }
        Ok(out)
    }

    /// Pushes every landed file the bucket lacks. `full` lists the bucket first
    /// instead of trusting the local record (catches objects lost remotely).
    pub fn push(&self, landing: &LandingStore, full: bool) -> Result<PushReport> {
        let url = self.options.url.clone();
        let confirmed = if full {
            HashMap::new()
        } else {
            self.confirmed(landing)?
        };
        let entries = landing.list();
        let mut report = PushReport::default();
        let mut todo: Vec<Entry> = Vec::new();
        for e in entries {
            let sha = e.release.as_ref().map(|r| r.file_sha256.to_string());
            match (confirmed.get(&e.key.to_string()), sha) {
                (Some(done), Some(sha)) if *done == sha => report.skipped += 1,
                _ => todo.push(e),
            }
        }
        if todo.is_empty() {
            return Ok(report);
        }
        let remote_objects: HashMap<Path, u64> = if full {
            self.runtime
                .block_on(async {
                    self.store
                        .list(Some(&self.prefix))
                        .map_ok(|m| (m.location, m.size))
                        .try_collect()
                        .await
                })
                .map_err(|e| remote(&url, e))?
        } else {
            HashMap::new()
        };
        let record_path = self.record_path(landing);
        fs::create_dir_all(record_path.parent().unwrap_or(FsPath::new("."))).at(&record_path)?;
        let mut record = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&record_path)
            .at(&record_path)?;
        let results: Vec<Result<(Entry, Upload)>> = self.runtime.block_on(async {
            futures::stream::iter(todo.into_iter().map(|entry| {
                let location = self.object_path(&entry.key);
                let known = remote_objects.get(&location).copied();
                let path = landing.path_of(&entry.key);
                async move {
                    let outcome = self.upload(&path, &location, known).await?;
                    Ok((entry, outcome))
                }
            }))
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await
        });
        let mut first_error = None;
        for result in results {
            match result {
                Ok((entry, outcome)) => {
                    match outcome {
                        Upload::Uploaded(bytes) => {
                            report.uploaded += 1;
                            report.bytes += bytes;
                        }
                        Upload::AlreadyThere => report.skipped += 1,
                        Upload::Conflict => {
                            tracing::warn!(key = %entry.key, "conflict: the bucket holds other content; left alone");
                            report.conflicts.push(entry.key.to_string());
                            continue;
                        }
                    }
                    if let Some(r) = &entry.release {
                        let line = serde_json::to_string(&Confirmed {
                            key: entry.key.to_string(),
                            sha256: r.file_sha256.to_string(),
                        })
                        .map_err(|e| remote(&url, e))?;
                        record
                            .write_all(format!("{line}\n").as_bytes())
                            .at(&record_path)?;
                    }
                }
                Err(e) => {
                    tracing::error!("{e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        record.sync_data().at(&record_path)?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    async fn upload(
        &self,
        path: &FsPath,
        location: &Path,
        known_size: Option<u64>,
    ) -> Result<Upload> {
        let url = &self.options.url;
        let bytes = tokio::fs::read(path).await.at(path)?;
        if known_size.is_some() {
            return self.compare(&bytes, location).await;
        }
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, "application/gzip".into());
        let options = PutOptions {
            mode: PutMode::Create,
            attributes,
            ..PutOptions::default()
        };
        let size = bytes.len() as u64;
        match self
            .store
            .put_opts(location, PutPayload::from(bytes.clone()), options)
            .await
        {
            Ok(_) => Ok(Upload::Uploaded(size)),
            // Already there — possibly our own earlier attempt that the client
            // retried: compare before calling it a conflict.
            Err(object_store::Error::AlreadyExists { .. }) => self.compare(&bytes, location).await,
            Err(e) => Err(remote(url, format!("{location}: {e}"))),
        }
    }

    async fn compare(&self, local: &[u8], location: &Path) -> Result<Upload> {
        let url = &self.options.url;
        let remote_bytes = self
            .store
            .get(location)
            .await
            .map_err(|e| remote(url, format!("{location}: {e}")))?
            .bytes()
            .await
            .map_err(|e| remote(url, format!("{location}: {e}")))?;
        Ok(if remote_bytes.as_ref() == local {
            Upload::AlreadyThere
        } else {
            Upload::Conflict
        })
    }

    /// Lists the bucket and compares every object with its local file.
    pub fn verify(&self, landing: &LandingStore) -> Result<RemoteVerifyReport> {
        let url = &self.options.url;
        let objects: HashSet<Path> = self
            .runtime
            .block_on(async {
                self.store
                    .list(Some(&self.prefix))
                    .map_ok(|m| m.location)
                    .try_collect()
                    .await
            })
            .map_err(|e| remote(url, e))?;
        let mut report = RemoteVerifyReport::default();
        for entry in landing.list() {
            let location = self.object_path(&entry.key);
            if !objects.contains(&location) {
                report.missing.push(entry.key.to_string());
                continue;
            }
            let local = fs::read(landing.path_of(&entry.key)).at(landing.path_of(&entry.key))?;
            report.checked += 1;
            if self.runtime.block_on(self.compare(&local, &location))? == Upload::Conflict {
                report.different.push(entry.key.to_string());
            }
        }
        Ok(report)
    }

    /// Downloads every object under the prefix that is missing locally and lands it.
    pub fn restore(&self, landing: &LandingStore) -> Result<RestoreReport> {
        let url = self.options.url.clone();
        let objects: Vec<object_store::ObjectMeta> = self
            .runtime
            .block_on(async { self.store.list(Some(&self.prefix)).try_collect().await })
            .map_err(|e| remote(&url, e))?;
        let mut report = RestoreReport::default();
        let prefix_len = self.prefix.parts().count();
        for meta in objects {
            let shown = meta.location.to_string();
            let rel: Vec<String> = meta
                .location
                .parts()
                .skip(prefix_len)
                .map(|p| p.as_ref().to_owned())
                .collect();
            let key = match rel.join("/").parse::<LandingKey>() {
                Ok(key) => key,
                Err(e) => {
                    tracing::warn!(object = %shown, "refused: {e}");
                    report.refused.push((shown, e.to_string()));
                    continue;
                }
            };
            if landing.path_of(&key).exists() {
                report.skipped += 1;
                continue;
            }
            let bytes = self
                .runtime
                .block_on(async { self.store.get(&meta.location).await?.bytes().await })
                .map_err(|e| remote(&url, format!("{shown}: {e}")))?;
            if let Some(problem) = check_download(&key, &bytes) {
                tracing::warn!(object = %shown, "refused: {problem}");
                report.refused.push((shown, problem));
                continue;
            }
            let release = NewRelease::new(
                key.dataset.clone(),
                key.year.get().into(),
                key.month.get().into(),
            )?
            .with_etag(Some(key.etag.clone()))
            .with_source(shown.clone());
            match landing.put(release, bytes.as_ref()) {
                Ok(PutOutcome::Landed(_)) => {
                    report.downloaded += 1;
                    report.bytes += bytes.len() as u64;
                }
                Ok(PutOutcome::Duplicate { .. }) => report.skipped += 1,
                Err(Error::InvalidInput { reason }) => report.refused.push((shown, reason)),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}

/// What happened to one file on push.
#[derive(Debug, PartialEq, Eq)]
enum Upload {
    Uploaded(u64),
    AlreadyThere,
    Conflict,
}

/// What is wrong with a downloaded object, if anything: it must be gzip, and a
/// content address must be the SHA-256 of the content. (The store checks every
/// gzip member's CRC and length again as it lands the file.)
fn check_download(key: &LandingKey, bytes: &[u8]) -> Option<String> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Some("not a gzip file".into());
    }
    let etag = key.etag.as_str();
    let content_addressed = etag.len() == 64
        && etag
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if content_addressed {
        let mut content = Vec::new();
        let read =
            std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(bytes), &mut content);
        if let Err(e) = read {
            return Some(format!("not valid gzip: {e}"));
        }
        let sha = Sha256Digest::of(&content).to_string();
        if sha != etag {
            return Some(format!(
                "content SHA-256 is {sha}, not the {etag} its name claims"
            ));
        }
    }
    None
}
