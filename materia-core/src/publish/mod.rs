//! `materia publish`: the published lakehouse as Parquet files on an
//! S3-compatible bucket (R2), with a manifest per build, for readers beyond
//! this server (DuckDB with httpfs, Polars, Spark, a DuckLake catalog).
//!
//! Under the prefix (`MATERIA_PUBLISH_URL`, e.g. `s3://materia-lake/v1`):
//! - `data/{schema.table}/{sha256}.parquet`: every table of `serving` and the
//!   change history of each dataset (`raw.*_changes` and `raw.*_closed`, one
//!   file per release that added rows, so a day adds one file to each), zstd,
//!   row groups of a million rows, min/max statistics. Named by the SHA-256 of
//!   the bytes: a file is written once and never changes; one the bucket
//!   already has whole (the listed size, and the SHA-256 the server keeps of
//!   it when it keeps one) is not uploaded again — one that is not is
//!   replaced.
//! - `manifests/{build}.{sha}.json`: a build's [`Manifest`] — tables, their
//!   columns, files and row counts, the releases.
//! - `latest.json`: a copy of the newest manifest, written last with a
//!   conditional write (`If-Match` on the ETag read at the start, or
//!   `If-None-Match: *` for the first): a reader sees a whole build or the one
//!   before, never a mix, and of two publishes racing one fails cleanly
//!   ([`RemoteKind::Conflict`]) with nothing lost.
//!
//! A publish whose build and models are what `latest.json` already holds
//! writes nothing; one of the same history reuses the published change files
//! of the releases it already had (a release's changes never change) and
//! writes only the rest. The bucket is not trusted for that: a reused file
//! must have its content-address key, be in the bucket whole (as above) and
//! claim the rows the lakehouse has for its release; its URL is derived from
//! the prefix, never copied. `keep` ranks the manifests by their parsed
//! `published_at` and removes the files that only builds older than the N
//! newest use, then their manifests — only keys of the shapes this module
//! writes (`data/{table}/{sha256}.parquet`, `manifests/{build}.{sha}.json`),
//! whatever a manifest names. Parquet comes from DuckDB's own writer,
//! compiled in (the arrow-rs writer was measured too: `benches/publish.sh`).

mod export;
mod keys;
mod manifest;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::Serialize;

pub use manifest::{Column, FORMAT, File, Manifest, Table};

use crate::error::{Error, RemoteKind, Result};
use crate::landing::Sha256Digest;
use crate::mirror::{MirrorOptions, RawLister, S3Target, Stored};

/// What to publish, and where.
///
/// ```
/// use materia_core::publish::PublishOptions;
/// let o = PublishOptions::new("/data/materia/lakehouse.duckdb", "s3://materia-lake/v1");
/// assert_eq!(o.keep, None);
/// ```
#[derive(Clone, Debug)]
pub struct PublishOptions {
    /// The published lakehouse (`DUCKDB_PATH`).
    pub duckdb_path: PathBuf,
    /// The bucket: `url` is `s3://bucket/prefix`; endpoint, keys, retries and
    /// concurrency as for the mirror.
    pub s3: MirrorOptions,
    /// Keep the files of the N newest builds; remove what only older ones
    /// use. `None`: remove nothing.
    pub keep: Option<usize>,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// DuckDB's memory limit while writing Parquet.
    pub memory_limit: String,
}

impl PublishOptions {
    /// Defaults for publishing `duckdb_path` to `url`.
    pub fn new(duckdb_path: impl Into<PathBuf>, url: impl Into<String>) -> PublishOptions {
        PublishOptions {
            duckdb_path: duckdb_path.into(),
            s3: MirrorOptions::new(url),
            keep: None,
            row_group_rows: 1 << 20,
            memory_limit: "2GB".into(),
        }
    }
}

/// What a publish did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PublishReport {
    /// The build published.
    pub build: String,
    /// Its manifest's key under the prefix.
    pub manifest: String,
    /// `latest.json` already held this build: nothing was written.
    pub unchanged: bool,
    /// Tables in the build.
    pub tables: usize,
    /// Parquet files in the build.
    pub files: usize,
    /// Files uploaded (the rest the bucket had), including those replaced.
    pub uploaded: usize,
    /// Files the bucket had under their name but not whole (another size or
    /// SHA-256): replaced.
    pub replaced: usize,
    /// Files the bucket already had.
    pub skipped: usize,
    /// Bytes uploaded (Parquet files and the manifest).
    pub bytes_uploaded: u64,
    /// Bytes of the build's Parquet files.
    pub bytes_total: u64,
    /// Objects removed by `keep` (files and manifests).
    pub removed: usize,
}

/// Publishes the lakehouse (see the module docs).
///
/// ```no_run
/// use materia_core::publish::{publish, PublishOptions};
/// let report = publish(&PublishOptions::new("/data/materia/lakehouse.duckdb", "s3://materia-lake/v1"))?;
/// println!("build {}: {} files uploaded, {} already there", report.build, report.uploaded, report.skipped);
/// # Ok::<(), materia_core::Error>(())
/// ```
pub fn publish(options: &PublishOptions) -> Result<PublishReport> {
    crate::blocking::off_runtime(|| Prepared::prepare_blocking(options)?.commit_blocking())
}

/// A publish up to, not including, the move of `latest.json`: every file and
/// the manifest are in the bucket; [`Prepared::commit`] makes it the latest.
pub struct Prepared {
    target: Target,
    options: PublishOptions,
    manifest: Manifest,
    manifest_key: String,
    /// `latest.json`'s version as read before anything was written.
    previous: Option<UpdateVersion>,
    report: PublishReport,
}

impl Prepared {
    /// Exports the lakehouse to Parquet, uploads what the bucket lacks and
    /// writes the manifest (nothing when `latest.json` is already this build).
    pub fn prepare(options: &PublishOptions) -> Result<Prepared> {
        crate::blocking::off_runtime(|| Prepared::prepare_blocking(options))
    }

    fn prepare_blocking(options: &PublishOptions) -> Result<Prepared> {
        let target = Target::connect(&options.s3)?;
        // `latest.json`'s version (for the conditional move) and, when it is
        // a manifest of this format, its content.
        let (previous, latest, latest_bytes) = match target.read_latest()? {
            Some((version, bytes)) => (
                Some(version),
                serde_json::from_slice::<Manifest>(&bytes)
                    .ok()
                    .filter(|m| m.format == FORMAT),
                bytes,
            ),
            None => (None, None, Vec::new()),
        };
        let source = export::Source::open(&options.duckdb_path, &options.memory_limit)?;
        let build = source.build()?;
        let mut report = PublishReport {
            build: build.build.clone(),
            ..PublishReport::default()
        };
        let latest = match latest {
            Some(latest)
                if latest.build == build.build
                    && latest.models == build.models
                    && target.is_intact(&latest, &latest_bytes)? =>
            {
                report.unchanged = true;
                report.tables = latest.tables.len();
                report.files = latest.paths().count();
                report.manifest = manifest_key(&latest);
                return Ok(Prepared {
                    manifest_key: report.manifest.clone(),
                    target,
                    options: options.clone(),
                    manifest: latest,
                    previous,
                    report,
                });
            }
            other => other,
        };
        let dir = tempfile::Builder::new()
            .prefix("materia-publish-")
            .tempdir()
            .map_err(|e| Error::System {
                what: "a temporary directory for the Parquet files".into(),
                source: e,
            })?;
        let (_, published_at) = crate::transform::stat_published(&options.duckdb_path)?;
        let standing = standing_files(latest, &build.history);
        let mut manifest = Manifest {
            format: FORMAT,
            history: build.history,
            build: build.build,
            published_at: published_at.to_string(),
            models: build.models,
            prefix: target.url.trim_end_matches('/').to_owned(),
            tables: BTreeMap::new(),
            releases: build.releases,
            views: build.views,
        };
        let existing = target.list("data")?;
        let prefix = manifest.prefix.clone();
        let writer = TableWriter {
            source: &source,
            target: &target,
            dir: dir.path(),
            existing: &existing,
            prefix: &prefix,
            row_group_rows: options.row_group_rows,
        };
        for listed in source.tables()? {
            let stand = standing.get(&listed.name);
            let (name, table) = writer.write(listed, stand, &mut report)?;
            report.tables += 1;
            manifest.tables.insert(name, table);
        }
        let manifest_key = manifest_key(&manifest);
        let bytes = manifest.to_bytes();
        if target.put_new(&manifest_key, bytes.clone())? {
            report.bytes_uploaded += bytes.len() as u64;
        }
        report.manifest = manifest_key.clone();
        Ok(Prepared {
            target,
            options: options.clone(),
            manifest,
            manifest_key,
            previous,
            report,
        })
    }

    /// The build's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Moves `latest.json` to this build — only if nobody moved it since
    /// [`Prepared::prepare`] read it (else [`RemoteKind::Conflict`]; the
    /// files stay, a new publish reuses them) — then applies `keep`.
    pub fn commit(self) -> Result<PublishReport> {
        crate::blocking::off_runtime(|| self.commit_blocking())
    }

    fn commit_blocking(mut self) -> Result<PublishReport> {
        if !self.report.unchanged {
            let bytes = self.manifest.to_bytes();
            self.target.move_latest(self.previous.clone(), &bytes)?;
            self.report.bytes_uploaded += bytes.len() as u64;
        }
        if let Some(keep) = self.options.keep {
            self.report.removed = self.target.keep(keep, &self.manifest_key, &self.manifest)?;
        }
        Ok(self.report)
    }
}

/// A change file `latest.json` names: its content address, size and rows
/// (what it claims; checked before it is reused).
#[derive(Clone, Debug)]
struct Standing {
    path: String,
    sha256: Sha256Digest,
    bytes: u64,
    rows: u64,
}

/// The change files `latest.json` names by partition, per table, when it is
/// of the same history: a release's changes (and closings) never change
/// within one history, so those files stand. Only files under their own
/// table's content address (`data/{table}/{sha256}.parquet`, the digest
/// the one the entry gives) count.
fn standing_files(
    latest: Option<Manifest>,
    history: &str,
) -> BTreeMap<String, BTreeMap<i64, Standing>> {
    let Some(latest) = latest.filter(|p| !p.history.is_empty() && p.history == history) else {
        return BTreeMap::new();
    };
    latest
        .tables
        .into_iter()
        .map(|(name, t)| {
            // A file named for two partitions is wrong for one of them (each
            // partition's changes differ, so do their content addresses):
            // it stands for neither.
            let mut named = BTreeMap::<String, usize>::new();
            for f in &t.files {
                *named.entry(f.path.clone()).or_default() += 1;
            }
            let by_part = t
                .files
                .into_iter()
                .filter(|f| named.get(&f.path) == Some(&1))
                .filter_map(|f| {
                    let (table, sha256) = keys::parse_data_path(&f.path)?;
                    let own = table == name && f.sha256 == sha256.to_string();
                    let standing = Standing {
                        sha256,
                        path: f.path.clone(),
                        bytes: f.bytes,
                        rows: f.rows,
                    };
                    own.then_some((f.partition?, standing))
                })
                .collect();
            (name, by_part)
        })
        .collect()
}

/// What writing one table needs: the lakehouse, the bucket, a scratch
/// directory, the bucket's data files, the manifest's prefix.
struct TableWriter<'a> {
    source: &'a export::Source,
    target: &'a Target,
    dir: &'a std::path::Path,
    /// The bucket's keys under `data/`, with their sizes.
    existing: &'a BTreeMap<String, u64>,
    prefix: &'a str,
    row_group_rows: usize,
}

impl TableWriter<'_> {
    /// One table: its standing files (still in the bucket, whole, with the
    /// lakehouse's rows) kept, the rest written, uploaded unless the bucket
    /// has them whole, and removed locally.
    fn write(
        &self,
        listed: export::Listed,
        stand: Option<&BTreeMap<i64, Standing>>,
        report: &mut PublishReport,
    ) -> Result<(String, Table)> {
        let stand: Vec<(i64, &Standing)> =
            stand.into_iter().flatten().map(|(v, f)| (*v, f)).collect();
        let whole = self.whole(
            stand
                .iter()
                .map(|(_, f)| (f.path.as_str(), f.sha256, f.bytes)),
        )?;
        let skip: BTreeMap<i64, u64> = stand
            .iter()
            .filter(|(_, f)| whole.contains(&f.path))
            .map(|(v, f)| (*v, f.rows))
            .collect();
        let exported = self
            .source
            .export(self.dir, listed, self.row_group_rows, &skip)?;
        let name = exported.name;
        let mut files: Vec<File> = stand
            .iter()
            .filter(|(v, _)| exported.kept.contains(v))
            .map(|(v, f)| self.file(f.path.clone(), f.sha256, f.bytes, f.rows, Some(*v)))
            .collect();
        report.files += files.len();
        report.skipped += files.len();
        report.bytes_total += files.iter().map(|f| f.bytes).sum::<u64>();
        let paths: Vec<String> = exported
            .files
            .iter()
            .map(|w| keys::data_path(&name, &w.sha256))
            .collect();
        let there = self.whole(
            exported
                .files
                .iter()
                .zip(&paths)
                .map(|(w, path)| (path.as_str(), w.sha256, w.bytes)),
        )?;
        for (w, path) in exported.files.into_iter().zip(paths) {
            report.files += 1;
            report.bytes_total += w.bytes;
            let uploaded = if there.contains(&path) {
                false
            } else if self.existing.contains_key(&path) {
                tracing::warn!(object = %path, "the bucket's copy is not whole: replacing it");
                report.replaced += 1;
                self.target.upload(&path, &w.local, w.bytes, true)?
            } else {
                self.target.upload(&path, &w.local, w.bytes, false)?
            };
            if uploaded {
                report.uploaded += 1;
                report.bytes_uploaded += w.bytes;
            } else {
                report.skipped += 1;
            }
            // Free the disk as we go.
            let _ = std::fs::remove_file(&w.local);
            files.push(self.file(path, w.sha256, w.bytes, w.rows, w.partition));
        }
        files.sort_by_key(|f| f.partition);
        let table = Table {
            rows: files.iter().map(|f| f.rows).sum(),
            columns: exported.columns,
            partition_by: exported.partition_by,
            files,
        };
        Ok((name, table))
    }

    /// The paths of `files` (path, SHA-256, size) the bucket has whole: listed
    /// with that size, and with that SHA-256 when the server keeps one.
    fn whole<'p>(
        &self,
        files: impl Iterator<Item = (&'p str, Sha256Digest, u64)>,
    ) -> Result<BTreeSet<String>> {
        let sized: Vec<(&str, Sha256Digest)> = files
            .filter(|(path, _, bytes)| self.existing.get(*path) == Some(bytes))
            .map(|(path, sha, _)| (path, sha))
            .collect();
        self.target.with_sha256(sized)
    }

    /// A manifest entry; its URL is the prefix's, whatever the bucket says.
    fn file(
        &self,
        path: String,
        sha256: Sha256Digest,
        bytes: u64,
        rows: u64,
        partition: Option<i64>,
    ) -> File {
        File {
            url: format!("{}/{path}", self.prefix),
            path,
            sha256: sha256.to_string(),
            bytes,
            rows,
            partition,
        }
    }
}

/// `manifests/{build}.{first 16 hex of the manifest's SHA-256}.json`.
fn manifest_key(m: &Manifest) -> String {
    let digest = crate::landing::Sha256Digest::of(&m.to_bytes()).to_string();
    format!("manifests/{}.{}.json", m.build, &digest[..16])
}

/// A manifest in the bucket: its `published_at`, parsed, its key, itself.
type Dated = (jiff::Timestamp, String, Manifest);

/// The bucket and prefix, and a runtime to talk to them.
struct Target {
    url: String,
    s3: Arc<AmazonS3>,
    prefix: Key,
    /// For requests `object_store` does not make (a HEAD asking for checksums).
    endpoint: String,
    bucket: String,
    region: String,
    allow_http: bool,
    /// Requests in flight at once.
    concurrency: usize,
    /// Always `Some` until dropped (see the `Drop` impl).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Target {
    fn drop(&mut self) {
        // Dropping a runtime inside async code panics; shutting it down in the
        // background never does.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The mirror's client errors, as this module's.
fn as_publish(e: Error) -> Error {
    match e {
        Error::Mirror {
            url,
            reason,
            kind,
            source,
        } => Error::Publish {
            url,
            reason,
            kind,
            source,
        },
        other => other,
    }
}

impl Target {
    fn connect(options: &MirrorOptions) -> Result<Target> {
        let S3Target {
            s3,
            runtime,
            prefix,
            url,
            endpoint,
            bucket,
            region,
            allow_http,
            ..
        } = S3Target::connect(options).map_err(as_publish)?;
        Ok(Target {
            url,
            s3: Arc::new(s3),
            prefix,
            endpoint,
            bucket,
            region,
            allow_http,
            concurrency: options.concurrency.max(1),
            runtime: Some(runtime),
        })
    }

    /// Of `files` (path, SHA-256), those whose object is there and whose
    /// SHA-256 the server either keeps and is this one, or does not keep.
    fn with_sha256(&self, files: Vec<(&str, Sha256Digest)>) -> Result<BTreeSet<String>> {
        use futures::StreamExt;
        let raw = RawLister {
            s3: &self.s3,
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            allow_http: self.allow_http,
        };
        let raw = &raw;
        let answers: Vec<_> = self.block_on(
            futures::stream::iter(files.into_iter().map(|(path, sha)| async move {
                let stored = raw.stored_sha256(self.key(path).as_ref()).await;
                (path, sha, stored)
            }))
            .buffer_unordered(self.concurrency)
            .collect(),
        );
        let mut out = BTreeSet::new();
        for (path, sha, stored) in answers {
            match stored.map_err(|reason| Error::Publish {
                url: self.url.clone(),
                reason,
                kind: RemoteKind::Other,
                source: None,
            })? {
                Stored::Unknown => {}
                Stored::Sha256(stored) if stored == sha => {}
                Stored::Missing | Stored::Sha256(_) | Stored::Other => continue,
            }
            out.insert(path.to_owned());
        }
        Ok(out)
    }

    /// Runs `future` on the target's runtime (the public entry points have
    /// moved off any other runtime first: `off_runtime`).
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        let Some(runtime) = &self.runtime else {
            unreachable!("the runtime lives as long as the target")
        };
        runtime.block_on(future)
    }

    fn key(&self, path: &str) -> Key {
        Key::from_iter(self.prefix.parts().chain(Key::from(path).parts()))
    }

    fn fail(&self, what: &str, e: object_store::Error) -> Error {
        Error::Publish {
            url: self.url.clone(),
            reason: format!("{what}: {e}"),
            kind: crate::mirror::classify(&e),
            source: Some(Box::new(e)),
        }
    }

    /// `latest.json`'s version and bytes, if there is one.
    fn read_latest(&self) -> Result<Option<(UpdateVersion, Vec<u8>)>> {
        let key = self.key("latest.json");
        self.block_on(async {
            match self.s3.get(&key).await {
                Ok(got) => {
                    let version = UpdateVersion {
                        e_tag: got.meta.e_tag.clone(),
                        version: got.meta.version.clone(),
                    };
                    let bytes = got
                        .bytes()
                        .await
                        .map_err(|e| self.fail("reading latest.json", e))?;
                    Ok(Some((version, bytes.to_vec())))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.fail("reading latest.json", e)),
            }
        })
    }

    /// Whether `latest.json` (`bytes`, read as `latest`) is what a publish to
    /// this prefix wrote: its prefix is this one, and it is byte for byte the
    /// manifest stored under its own content address. An edited `latest.json`
    /// is not, and is then rewritten by a full publish (never taken as "this
    /// build is already there").
    fn is_intact(&self, latest: &Manifest, bytes: &[u8]) -> Result<bool> {
        if latest.prefix != self.url.trim_end_matches('/') || bytes != latest.to_bytes() {
            return Ok(false);
        }
        let path = manifest_key(latest);
        Ok(self.get(&path)?.is_some_and(|stored| stored == bytes))
    }

    /// The object at `path` under the prefix (`None`: there is none).
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let key = self.key(path);
        let bytes = self.block_on(async {
            match self.s3.get(&key).await {
                Ok(got) => got.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        bytes
            .map(|b| b.map(|b| b.to_vec()))
            .map_err(|e| self.fail(path, e))
    }

    /// Every key under `{prefix}/{dir}`, relative to the prefix, and its size.
    fn list(&self, dir: &str) -> Result<BTreeMap<String, u64>> {
        use futures::TryStreamExt;
        let under = self.key(dir);
        let strip = self.prefix.as_ref().len();
        self.block_on(async {
            let metas: Vec<_> = self
                .s3
                .list(Some(&under))
                .try_collect()
                .await
                .map_err(|e| self.fail(&format!("listing {dir}/"), e))?;
            Ok(metas
                .into_iter()
                .map(|m| {
                    let k = m.location.as_ref();
                    let relative = k.get(strip..).unwrap_or(k).trim_start_matches('/');
                    (relative.to_owned(), m.size)
                })
                .collect())
        })
    }

    /// Creates `path` from a local file unless it exists (then `false`), or
    /// with `replace` writes it whatever is there (a content-addressed file
    /// the bucket holds broken: the right bytes are the same whoever writes).
    fn upload(
        &self,
        path: &str,
        local: &std::path::Path,
        bytes: u64,
        replace: bool,
    ) -> Result<bool> {
        const MULTIPART: u64 = 64 << 20;
        let key = self.key(path);
        if bytes < MULTIPART {
            let data = std::fs::read(local).map_err(|e| Error::Io {
                path: local.to_path_buf(),
                source: e,
            })?;
            let mode = if replace {
                PutMode::Overwrite
            } else {
                PutMode::Create
            };
            return self.put(path, data, mode);
        }
        // A multipart upload cannot be a conditional create: the listing said
        // it is missing, and the content is the same whoever wins.
        self.block_on(async {
            use tokio::io::AsyncReadExt;
            let upload = self
                .s3
                .put_multipart(&key)
                .await
                .map_err(|e| self.fail(path, e))?;
            let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, 16 << 20);
            let mut file = tokio::fs::File::open(local).await.map_err(|e| Error::Io {
                path: local.to_path_buf(),
                source: e,
            })?;
            let mut buf = vec![0u8; 8 << 20];
            loop {
                let n = file.read(&mut buf).await.map_err(|e| Error::Io {
                    path: local.to_path_buf(),
                    source: e,
                })?;
                if n == 0 {
                    break;
                }
                writer
                    .wait_for_capacity(4)
                    .await
                    .map_err(|e| self.fail(path, e))?;
                writer.write(&buf[..n]);
            }
            writer.finish().await.map_err(|e| self.fail(path, e))?;
            Ok(true)
        })
    }

    /// Creates `path` with `data` unless it exists (then `false`).
    fn put_new(&self, path: &str, data: Vec<u8>) -> Result<bool> {
        self.put(path, data, PutMode::Create)
    }

    /// Writes `path` with `data` in `mode`; `false` when a create found it
    /// there.
    fn put(&self, path: &str, data: Vec<u8>, mode: PutMode) -> Result<bool> {
        let key = self.key(path);
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        self.block_on(async {
            match self.s3.put_opts(&key, PutPayload::from(data), opts).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                Err(e) => Err(self.fail(path, e)),
            }
        })
    }

    /// Writes `latest.json` only if it is still `previous` (or still absent).
    fn move_latest(&self, previous: Option<UpdateVersion>, bytes: &[u8]) -> Result<()> {
        let key = self.key("latest.json");
        let mode = match previous {
            Some(v) => PutMode::Update(v),
            None => PutMode::Create,
        };
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        self.block_on(async {
            match self
                .s3
                .put_opts(&key, PutPayload::from(bytes.to_vec()), opts)
                .await
            {
                Ok(_) => Ok(()),
                Err(
                    e @ (object_store::Error::Precondition { .. }
                    | object_store::Error::AlreadyExists { .. }),
                ) => Err(Error::Publish {
                    url: self.url.clone(),
                    reason: "latest.json moved since this publish read it (another publish won): \
                             nothing is lost, publish again"
                        .into(),
                    kind: RemoteKind::Conflict,
                    source: Some(Box::new(e)),
                }),
                Err(e) => Err(self.fail("moving latest.json", e)),
            }
        })
    }

    /// Keeps the `keep` newest manifests (and `current`): removes the files
    /// only older ones use, then those manifests. Returns objects removed.
    ///
    /// Manifests are ranked by their parsed `published_at`; one whose time
    /// does not parse, or that does not parse at all, is left alone (and so
    /// are the files it names). Only keys of the shapes this module writes
    /// are removed, whatever a manifest names.
    fn keep(&self, keep: usize, current: &str, latest: &Manifest) -> Result<usize> {
        let (mut builds, undated) = self.manifests()?;
        builds.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
        let (kept, old): (Vec<_>, Vec<_>) = builds
            .into_iter()
            .enumerate()
            .partition(|(i, (_, path, _))| *i < keep.max(1) || path == current);
        let used: BTreeSet<&str> = kept
            .iter()
            .map(|(_, (_, _, m))| m)
            .chain(&undated)
            .chain([latest])
            .flat_map(Manifest::paths)
            .collect();
        let mut doomed: BTreeSet<String> = BTreeSet::new();
        for (_, (_, _, m)) in &old {
            doomed.extend(
                m.paths()
                    .filter(|p| !used.contains(p) && keys::parse_data_path(p).is_some())
                    .map(str::to_owned),
            );
        }
        let mut removed = 0;
        // Files first, then the manifests naming them: a crash in between
        // leaves a manifest of an old build, never a kept one, missing files.
        for path in doomed.iter().chain(old.iter().map(|(_, (_, p, _))| p)) {
            let key = self.key(path);
            self.block_on(async {
                match self.s3.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(self.fail(path, e)),
                }
            })?;
            removed += 1;
        }
        Ok(removed)
    }

    /// The manifests under `manifests/` with a manifest's key: those with a
    /// `published_at` that parses (the time, the key, the manifest), and the
    /// others. Objects that are not manifests are left out.
    fn manifests(&self) -> Result<(Vec<Dated>, Vec<Manifest>)> {
        let (mut dated, mut undated) = (Vec::new(), Vec::new());
        for path in self.list("manifests")?.into_keys() {
            if !keys::is_manifest_path(&path) {
                continue;
            }
            let bytes = self.get(&path)?;
            // An unreadable manifest is not ours to judge: leave it.
            let Some(m) = bytes.and_then(|b| serde_json::from_slice::<Manifest>(&b).ok()) else {
                continue;
            };
            match m.published_at.parse::<jiff::Timestamp>() {
                Ok(at) => dated.push((at, path, m)),
                Err(e) => {
                    tracing::warn!(manifest = %path, "published_at does not parse ({e}): left alone");
                    undated.push(m);
                }
            }
        }
        Ok((dated, undated))
    }
}
