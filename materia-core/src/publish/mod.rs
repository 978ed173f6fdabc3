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
//!   already has is not uploaded again.
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
//! writes only the rest. `keep` removes the files that only builds older than the
//! N newest use, then their manifests. Parquet comes from DuckDB's own
//! writer, compiled in (the arrow-rs writer was measured too:
//! `benches/publish.sh`).

mod export;
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
use crate::mirror::{MirrorOptions, S3Target};

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
    /// Files uploaded (the rest the bucket had).
    pub uploaded: usize,
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
        let (previous, latest) = match target.read_latest()? {
            Some((version, bytes)) => (
                Some(version),
                serde_json::from_slice::<Manifest>(&bytes)
                    .ok()
                    .filter(|m| m.format == FORMAT),
            ),
            None => (None, None),
        };
        let source = export::Source::open(&options.duckdb_path, &options.memory_limit)?;
        let build = source.build()?;
        let mut report = PublishReport {
            build: build.build.clone(),
            ..PublishReport::default()
        };
        let latest = match latest {
            Some(latest) if latest.build == build.build && latest.models == build.models => {
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
            self.report.removed = self.target.keep(keep, &self.manifest_key)?;
        }
        Ok(self.report)
    }
}

/// The change files `latest.json` names by partition, per table, when it is
/// of the same history: a release's changes (and closings) never change
/// within one history, so those files stand.
fn standing_files(
    latest: Option<Manifest>,
    history: &str,
) -> BTreeMap<String, BTreeMap<i64, File>> {
    latest
        .filter(|p| !p.history.is_empty() && p.history == history)
        .map(|p| {
            p.tables
                .into_iter()
                .map(|(name, t)| {
                    let by_part = t
                        .files
                        .into_iter()
                        .filter_map(|f| Some((f.partition?, f)))
                        .collect();
                    (name, by_part)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What writing one table needs: the lakehouse, the bucket, a scratch
/// directory, the bucket's data files, the manifest's prefix.
struct TableWriter<'a> {
    source: &'a export::Source,
    target: &'a Target,
    dir: &'a std::path::Path,
    existing: &'a BTreeSet<String>,
    prefix: &'a str,
    row_group_rows: usize,
}

impl TableWriter<'_> {
    /// One table: its standing files (still in the bucket) kept, the rest
    /// written, uploaded unless the bucket has them, and removed locally.
    fn write(
        &self,
        listed: export::Listed,
        stand: Option<&BTreeMap<i64, File>>,
        report: &mut PublishReport,
    ) -> Result<(String, Table)> {
        let (existing, prefix) = (self.existing, self.prefix);
        let skip: BTreeSet<i64> = stand
            .map(|files| {
                files
                    .iter()
                    .filter(|(_, f)| existing.contains(&f.path))
                    .map(|(v, _)| *v)
                    .collect()
            })
            .unwrap_or_default();
        let exported = self
            .source
            .export(self.dir, listed, self.row_group_rows, &skip)?;
        let name = exported.name;
        let mut files: Vec<File> = exported
            .kept
            .iter()
            .filter_map(|v| stand.and_then(|s| s.get(v)).cloned())
            .collect();
        report.files += files.len();
        report.skipped += files.len();
        report.bytes_total += files.iter().map(|f| f.bytes).sum::<u64>();
        for w in exported.files {
            let path = format!("data/{name}/{}.parquet", w.sha256);
            report.files += 1;
            report.bytes_total += w.bytes;
            if existing.contains(&path) || !self.target.upload(&path, &w.local, w.bytes)? {
                report.skipped += 1;
            } else {
                report.uploaded += 1;
                report.bytes_uploaded += w.bytes;
            }
            // Free the disk as we go.
            let _ = std::fs::remove_file(&w.local);
            files.push(File {
                url: format!("{prefix}/{path}"),
                path,
                sha256: w.sha256.to_string(),
                bytes: w.bytes,
                rows: w.rows,
                partition: w.partition,
            });
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
}

/// `manifests/{build}.{first 16 hex of the manifest's SHA-256}.json`.
fn manifest_key(m: &Manifest) -> String {
    let digest = crate::landing::Sha256Digest::of(&m.to_bytes()).to_string();
    format!("manifests/{}.{}.json", m.build, &digest[..16])
}

/// The bucket and prefix, and a runtime to talk to them.
struct Target {
    url: String,
    s3: Arc<AmazonS3>,
    prefix: Key,
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
            ..
        } = S3Target::connect(options).map_err(as_publish)?;
        Ok(Target {
            url,
            s3: Arc::new(s3),
            prefix,
            runtime: Some(runtime),
        })
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

    /// Every key under `{prefix}/{dir}`, relative to the prefix.
    fn list(&self, dir: &str) -> Result<BTreeSet<String>> {
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
                    k.get(strip..)
                        .unwrap_or(k)
                        .trim_start_matches('/')
                        .to_owned()
                })
                .collect())
        })
    }

    /// Creates `path` from a local file unless it exists (then `false`).
    fn upload(&self, path: &str, local: &std::path::Path, bytes: u64) -> Result<bool> {
        const MULTIPART: u64 = 64 << 20;
        let key = self.key(path);
        if bytes < MULTIPART {
            let data = std::fs::read(local).map_err(|e| Error::Io {
                path: local.to_path_buf(),
                source: e,
            })?;
            return self.put_new(path, data);
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
        let key = self.key(path);
        let opts = PutOptions {
            mode: PutMode::Create,
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
    fn keep(&self, keep: usize, current: &str) -> Result<usize> {
        let mut builds = Vec::new();
        for path in self.list("manifests")? {
            let key = self.key(&path);
            let bytes = self.block_on(async {
                match self.s3.get(&key).await {
                    Ok(got) => got.bytes().await.map(Some),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            });
            let bytes = bytes.map_err(|e| self.fail(&path, e))?;
            // An unreadable manifest is not ours to judge: leave it.
            if let Some(m) = bytes.and_then(|b| serde_json::from_slice::<Manifest>(&b).ok()) {
                builds.push((m.published_at.clone(), path, m));
            }
        }
        builds.sort_by(|a, b| (&b.0, &b.1).cmp(&(&a.0, &a.1)));
        let (kept, old): (Vec<_>, Vec<_>) = builds
            .into_iter()
            .enumerate()
            .partition(|(i, (_, path, _))| *i < keep.max(1) || path == current);
        let used: BTreeSet<&str> = kept.iter().flat_map(|(_, (_, _, m))| m.paths()).collect();
        let mut doomed: BTreeSet<String> = BTreeSet::new();
        for (_, (_, _, m)) in &old {
            doomed.extend(m.paths().filter(|p| !used.contains(p)).map(str::to_owned));
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
}
