//! Mirror and restore: the landing zone ⇄ an S3-compatible bucket (Cloudflare R2)
//! through `object_store` (the connection: [`crate::bucket`]).
//!
//! - **Push** (`push.rs`) uploads every landed file the bucket lacks to
//!   `{prefix}/{dataset}/{year}/{month}/{etag}.csv.gzip`. Landed files are
//!   immutable, so a push never overwrites and never deletes: each upload is a
//!   conditional create (`If-None-Match: *`), and an object that is already there is
//!   compared with the local file — the same bytes count as uploaded, other bytes
//!   are reported as a conflict and left alone.
//! - **Integrity** (`upload.rs`): every PUT carries `x-amz-checksum-sha256`,
//!   which the server checks against what it received; `Content-Type:
//!   application/gzip` and no `Content-Encoding` (R2 would otherwise
//!   decompress it — rclone issue 8137).
//! - **Large files** (from [`MirrorOptions::multipart_threshold`]) go up in
//!   equal-sized parts (R2 requires that), each part with its own SHA-256 checksum;
//!   the object is checked for first (a multipart upload cannot be a conditional
//!   create here). Every upload in flight is recorded first and a killed run's are
//!   aborted by the next push. Memory stays within
//!   [`MirrorOptions::memory_budget`] whatever the file sizes.
//! - **Fast no-op:** what was confirmed uploaded is recorded in
//!   `{LANDING_DIR}/.materia/mirror/{hash of the bucket}.jsonl` (`record.rs`); a push
//!   with nothing new makes no request at all. `--full` re-lists the bucket to
//!   catch remote loss.
//! - **Retries:** 5xx, 429 and timeouts are retried with backoff by `object_store`.
//! - **Verify** (`verify.rs`) compares the bucket with the landing zone, all of
//!   it or a sample at a time.
//! - **Restore** (`restore.rs`) downloads every object under the prefix that is
//!   missing locally. Object keys are untrusted: each must parse as a
//!   [`LandingKey`]; anything else is reported and skipped (`--create-bucket`'s
//!   own probe objects are only counted: see `bucket/create.rs`). Each download
//!   is streamed to a spool file, checked (gzip end to end, a content address
//!   must match its content) and landed through
//!   [`LandingStore::put`](crate::landing::LandingStore::put), so nothing
//!   partial ever appears.
//!
//! One push or restore per URL runs at a time (a lock under
//! `.materia/mirror/`); a second one is refused with a message naming the lock.

mod options;
mod push;
mod record;
mod restore;
mod upload;
mod verify;

use std::path::Path as FsPath;

use futures::StreamExt;
use object_store::path::Path;
use object_store::{Attribute, GetOptions, ObjectStore, ObjectStoreExt};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

use crate::bucket::{Bucket, Operation};
use crate::error::{Error, IoContext, RemoteKind, Result};
use crate::landing::LandingKey;
use options::MIB;

/// Moved to [`crate::bucket`]; re-exported here for a transition.
pub use crate::bucket::BucketReport;
pub use options::MirrorOptions;
pub use push::PushReport;
pub use restore::{Refused, RestoreReport};
pub use verify::RemoteVerifyReport;

/// User metadata on every uploaded object: the file's SHA-256 (so `--full`
/// compares content without downloading) and its landing time (so a restore
/// keeps the order of releases within a month).
const META_SHA256: &str = "sha256";
const META_LANDED_AT: &str = "landed-at";

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
    /// The bucket connected (its `identity` names the local record).
    bucket: Bucket,
    options: MirrorOptions,
    /// The memory budget in MiB permits; [`Mirror::reserve`] takes some.
    memory: Semaphore,
    budget_mib: u64,
}

/// What happened to one file on push (or to its object, on verify).
#[derive(Debug, PartialEq, Eq)]
enum Upload {
    Uploaded(u64),
    AlreadyThere,
    Conflict,
}

impl Mirror {
    /// Connects to `options.bucket` (no request is made yet).
    ///
    /// ```
    /// use materia_core::mirror::{Mirror, MirrorOptions};
    /// let err = Mirror::new(MirrorOptions::new("https://example.com/x")).err().unwrap();
    /// assert!(err.to_string().contains("s3://bucket/prefix"));
    /// ```
    pub fn new(options: MirrorOptions) -> Result<Mirror> {
        // The largest single request: a whole file just under the
        // threshold, or a part.
        let largest = options.multipart_threshold.max(options.part_size);
        let bucket = Bucket::connect(&options.bucket, Operation::Mirror, largest)?;
        if options.part_size < 5 * MIB {
            return Err(bucket.refuse(RemoteKind::Config, "part size must be at least 5 MiB"));
        }
        let budget_mib = options.memory_budget.max(options.part_size).div_ceil(MIB);
        Ok(Mirror {
            bucket,
            memory: Semaphore::new(budget_mib as usize),
            budget_mib,
            options,
        })
    }

    /// Creates the bucket when it is missing (idempotent: an existing one is
    /// left as it is), then checks it with a probe object under
    /// `{bucket}/.materia-probe/` (outside the landing prefix): a conditional
    /// create must be honoured, or this fails ([`RemoteKind::Config`]) — the
    /// mirror's never-overwrite promise rests on it. The probe is removed (a
    /// bucket lock that refuses deletes there leaves it; it is never read).
    ///
    /// ```no_run
    /// use materia_core::mirror::{Mirror, MirrorOptions};
    /// let mirror = Mirror::new(MirrorOptions::new("s3://materia-raw/landing"))?;
    /// let report = mirror.create_bucket()?;
    /// println!("{}: created {}, checksums verified {}", report.bucket, report.created, report.checksum_verified);
    /// # Ok::<(), materia_core::Error>(())
    /// ```
    pub fn create_bucket(&self) -> Result<BucketReport> {
        crate::blocking::off_runtime(|| self.bucket.block_on(self.bucket.create()))
    }

    fn fail(&self, e: impl std::fmt::Display) -> Error {
        self.bucket.refuse(RemoteKind::Other, e)
    }

    /// The S3 client's error about one object, naming it.
    fn fail_at(&self, location: &Path, e: object_store::Error) -> Error {
        self.bucket.failed(format_args!("{location}: "), e)
    }

    fn object_path(&self, key: &LandingKey) -> Path {
        let prefix = self.bucket.prefix.parts().map(|p| p.as_ref().to_owned());
        let mut parts: Vec<String> = prefix.collect();
        parts.extend(key.to_string().split('/').map(str::to_owned));
        Path::from_iter(parts)
    }

    /// The `sha256` metadata of an object, when it has one.
    async fn remote_sha256(&self, location: &Path) -> Result<Option<String>> {
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        let got = self
            .bucket
            .s3
            .get_opts(location, options)
            .await
            .map_err(|e| self.fail_at(location, e))?;
        Ok(got
            .attributes
            .get(&Attribute::Metadata(META_SHA256.into()))
            .map(|v| v.as_ref().to_owned()))
    }

    /// Streams the object and compares it with the local file, byte for byte.
    async fn compare(&self, path: &FsPath, location: &Path) -> Result<Upload> {
        let got = self
            .bucket
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

    /// Holds `bytes` of the memory budget (at most the whole budget).
    async fn reserve(&self, bytes: u64) -> Result<tokio::sync::SemaphorePermit<'_>> {
        let permits = bytes.div_ceil(MIB).clamp(1, self.budget_mib) as u32;
        self.memory
            .acquire_many(permits)
            .await
            .map_err(|e| self.fail(e))
    }
}
