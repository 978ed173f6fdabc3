//! Push: every landed file the bucket lacks, uploaded (`upload.rs`), and
//! the local record of what the bucket holds kept (`record.rs`).

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};

use futures::StreamExt;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use serde::Serialize;

use super::record::Record;
use super::{Mirror, Upload};
use crate::error::{IoContext, Result};
use crate::landing::{Entry, LandingKey, LandingStore};

/// What a push did.
///
/// ```
/// let report = materia_core::mirror::PushReport::default();
/// assert_eq!(serde_json::to_value(&report).unwrap()["uploaded"], 0);
/// ```
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

/// A landed file to push: its entry, its path and its size.
type Job = (Entry, PathBuf, u64);

impl Mirror {
    /// Pushes every landed file the bucket lacks. `full` lists the bucket first
    /// instead of trusting the local record (catches objects lost remotely); so
    /// does a push when the last full one is older than
    /// [`MirrorOptions::full_every`](super::MirrorOptions::full_every).
    /// Objects already there are compared by content (their `sha256`
    /// metadata, or byte for byte), never by size alone.
    ///
    /// ```no_run
    /// # fn main() -> materia_core::Result<()> {
    /// use materia_core::{landing::LandingStore, mirror::{Mirror, MirrorOptions}};
    /// let store = LandingStore::open("/data/materia/landing")?;
    /// let mirror = Mirror::new(MirrorOptions::new("s3://materia-raw/landing"))?;
    /// let report = mirror.push(&store, false)?;
    /// assert!(report.conflicts.is_empty(), "the bucket holds other bytes: {:?}", report.conflicts);
    /// # Ok(()) }
    /// ```
    pub fn push(&self, landing: &LandingStore, full: bool) -> Result<PushReport> {
        crate::blocking::off_runtime(|| self.push_blocking(landing, full))
    }

    fn push_blocking(&self, landing: &LandingStore, full: bool) -> Result<PushReport> {
        let record = Record::open(landing.root(), &self.bucket.identity)?;
        let full = full || record.full_due(self.options.full_every)?;
        let mut report = PushReport {
            aborted: self.abort_pending(&record)?,
            ..PushReport::default()
        };
        let todo = unconfirmed(landing, &record, full, &mut report)?;
        if todo.is_empty() && !full {
            return Ok(report);
        }
        let remote_sizes: HashMap<Path, u64> = if full {
            self.bucket
                .block_on(self.bucket.list_all())?
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
        let mut now_confirmed = Vec::new();
        self.upload_all(
            jobs,
            &remote_sizes,
            &record,
            &mut report,
            &mut now_confirmed,
        )?;
        if full {
            // Exactly what the bucket holds now: entries it lost are dropped.
            now_confirmed.sort();
            record.replace_confirmed(&now_confirmed)?;
            record.mark_full()?;
        }
        Ok(report)
    }

    /// Uploads `jobs` (those of a known remote size compared instead),
    /// `concurrency` at a time, counting each in `report` and recording each
    /// confirmed one (also pushed on `confirmed`). Every job is tried; the
    /// first error is returned.
    fn upload_all(
        &self,
        jobs: Vec<Job>,
        remote_sizes: &HashMap<Path, u64>,
        record: &Record,
        report: &mut PushReport,
        confirmed: &mut Vec<(String, String)>,
    ) -> Result<()> {
        let total: u64 = jobs.iter().map(|(_, _, size)| size).sum();
        let bar = crate::progress::bytes_bar(Some(total), self.options.progress);
        let mut first_error = None;
        self.bucket.block_on(async {
            let mut results = futures::stream::iter(jobs.into_iter().map(|(entry, path, size)| {
                let location = self.object_path(&entry.key);
                let known = remote_sizes.get(&location).copied();
                let bar = &bar;
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
                let settled =
                    outcome.and_then(|upload| settle(&entry, upload, record, report, confirmed));
                if let Err(e) = settled {
                    tracing::error!("{e}");
                    first_error.get_or_insert(e);
                }
            }
        });
        bar.finish_and_clear();
        first_error.map_or(Ok(()), Err)
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
            let abort = self.bucket.s3.abort_multipart(&location, &p.upload_id);
            match self.bucket.block_on(abort) {
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
}

/// The landed files the record does not confirm (all of them on a `full`
/// push); those it does are counted as skipped.
fn unconfirmed(
    landing: &LandingStore,
    record: &Record,
    full: bool,
    report: &mut PushReport,
) -> Result<Vec<Entry>> {
    let confirmed = if full {
        HashMap::new()
    } else {
        record.confirmed()?
    };
    let mut todo = Vec::new();
    for e in landing.list() {
        let sha = e.release.as_ref().map(|r| r.file_sha256.to_string());
        match (confirmed.get(&e.key.to_string()), sha) {
            (Some(done), Some(sha)) if *done == sha => report.skipped += 1,
            _ => todo.push(e),
        }
    }
    Ok(todo)
}

/// Counts one file's outcome in `report` and records it when the bucket now
/// holds it (also pushing it on `confirmed`).
fn settle(
    entry: &Entry,
    upload: Upload,
    record: &Record,
    report: &mut PushReport,
    confirmed: &mut Vec<(String, String)>,
) -> Result<()> {
    match upload {
        Upload::Conflict => {
            tracing::warn!(key = %entry.key, "conflict: the bucket holds other content; left alone");
            report.conflicts.push(entry.key.clone());
            return Ok(());
        }
        Upload::Uploaded(bytes) => {
            report.uploaded += 1;
            report.bytes += bytes;
        }
        Upload::AlreadyThere => report.skipped += 1,
    }
    let Some(r) = &entry.release else {
        return Ok(());
    };
    let line = (entry.key.to_string(), r.file_sha256.to_string());
    let done = record.confirm(&line.0, &line.1);
    confirmed.push(line);
    done
}
