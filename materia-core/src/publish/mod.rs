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
//!   ([`RemoteKind::Conflict`](crate::RemoteKind::Conflict)) with nothing lost.
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
//!
//! The rooms: `options.rs` ([`PublishOptions`]), `export.rs` (the lakehouse
//! to Parquet), `target.rs` (the bucket, through [`crate::bucket`]),
//! `standing.rs` and `writer.rs` (what to reuse, what to upload), `keep.rs`,
//! `manifest.rs` and `keys.rs` (the shapes written).

mod export;
mod keep;
mod keys;
mod manifest;
mod options;
mod standing;
mod target;
mod writer;

use std::collections::BTreeMap;

use object_store::UpdateVersion;
use serde::Serialize;

pub use manifest::{Column, FORMAT, File, Manifest, Table};
pub use options::PublishOptions;

use crate::error::{Error, Result};
use keys::manifest_key;
use standing::standing_files;
use target::Target;
use writer::TableWriter;

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
///
/// ```no_run
/// use materia_core::publish::{Prepared, PublishOptions};
/// let prepared = Prepared::prepare(&PublishOptions::new("/data/materia/lakehouse.duckdb", "s3://materia-lake/v1"))?;
/// println!("build {} with {} tables", prepared.manifest().build, prepared.manifest().tables.len());
/// let report = prepared.commit()?;
/// # let _ = report;
/// # Ok::<(), materia_core::Error>(())
/// ```
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
    /// See the example on [`Prepared`].
    pub fn prepare(options: &PublishOptions) -> Result<Prepared> {
        crate::blocking::off_runtime(|| Prepared::prepare_blocking(options))
    }

    fn prepare_blocking(options: &PublishOptions) -> Result<Prepared> {
        let target = Target::connect(options)?;
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
        let manifest = match latest {
            Some(latest)
                if latest.build == build.build
                    && latest.models == build.models
                    && target.is_intact(&latest, &latest_bytes)? =>
            {
                report.unchanged = true;
                report.tables = latest.tables.len();
                report.files = latest.paths().count();
                latest
            }
            latest => {
                let manifest = write_build(&target, &source, build, latest, options, &mut report)?;
                let bytes = manifest.to_bytes();
                if target.put_new(&manifest_key(&manifest), bytes.clone())? {
                    report.bytes_uploaded += bytes.len() as u64;
                }
                manifest
            }
        };
        report.manifest = manifest_key(&manifest);
        Ok(Prepared {
            manifest_key: report.manifest.clone(),
            target,
            options: options.clone(),
            manifest,
            previous,
            report,
        })
    }

    /// The build's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Moves `latest.json` to this build — only if nobody moved it since
    /// [`Prepared::prepare`] read it (else
    /// [`RemoteKind::Conflict`](crate::RemoteKind::Conflict); the files
    /// stay, a new publish reuses them) — then applies `keep`.
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

/// Writes every table of `build` (reusing the files of `latest` that still
/// stand) and returns its manifest, not yet in the bucket.
fn write_build(
    target: &Target,
    source: &export::Source,
    build: export::Build,
    latest: Option<Manifest>,
    options: &PublishOptions,
    report: &mut PublishReport,
) -> Result<Manifest> {
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
        prefix: target.url().trim_end_matches('/').to_owned(),
        tables: BTreeMap::new(),
        releases: build.releases,
        views: build.views,
    };
    let existing = target.list("data")?;
    let prefix = manifest.prefix.clone();
    let writer = TableWriter {
        source,
        target,
        dir: dir.path(),
        existing: &existing,
        prefix: &prefix,
        row_group_rows: options.row_group_rows,
    };
    for listed in source.tables()? {
        let stand = standing.get(&listed.name);
        let (name, table) = writer.write(listed, stand, report)?;
        report.tables += 1;
        manifest.tables.insert(name, table);
    }
    Ok(manifest)
}
