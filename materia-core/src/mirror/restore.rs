//! Restore: every object under the prefix that is missing locally,
//! downloaded, checked and landed. Object keys are untrusted input: each
//! must parse as a [`LandingKey`], and its content must be gzip and match a
//! content address.

use std::io::{Read, Seek, SeekFrom, Write};

use futures::StreamExt;
use object_store::path::Path;
use object_store::{Attribute, ObjectStoreExt};
use serde::Serialize;

use super::record::Record;
use super::{META_LANDED_AT, Mirror};
use crate::bucket::{Listed, is_probe};
use crate::error::{Error, IoContext, Result};
use crate::landing::durable::Staged;
use crate::landing::{LandingKey, LandingStore, NewRelease, PutOutcome, Sha256Digest};

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

impl Mirror {
    /// Downloads every object under the prefix that is missing locally and lands it.
    ///
    /// ```no_run
    /// # fn main() -> materia_core::Result<()> {
    /// use materia_core::{landing::LandingStore, mirror::{Mirror, MirrorOptions}};
    /// let store = LandingStore::open("/data/materia/landing")?;
    /// let mirror = Mirror::new(MirrorOptions::new("s3://materia-raw/landing"))?;
    /// let report = mirror.restore(&store)?;
    /// for r in &report.refused {
    ///     eprintln!("refused {}: {}", r.object, r.reason);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn restore(&self, landing: &LandingStore) -> Result<RestoreReport> {
        crate::blocking::off_runtime(|| self.restore_blocking(landing))
    }

    fn restore_blocking(&self, landing: &LandingStore) -> Result<RestoreReport> {
        let record = Record::open(landing.root(), &self.bucket.identity)?;
        let objects = self.bucket.block_on(self.bucket.list_all())?;
        let mut report = RestoreReport::default();
        let todo = self.missing(landing, objects, &mut report);
        let total: u64 = todo.iter().map(|(_, o)| o.size).sum();
        let bar = crate::progress::bytes_bar(Some(total), self.options.progress);
        let mut first_error = None;
        self.bucket.block_on(async {
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

    /// The listed objects to download: those whose landing key is missing
    /// locally. Probes are counted, objects already here skipped, and
    /// objects that are no landing key refused (in `report`).
    fn missing(
        &self,
        landing: &LandingStore,
        objects: Vec<Listed>,
        report: &mut RestoreReport,
    ) -> Vec<(LandingKey, Listed)> {
        let mut todo = Vec::new();
        for listed in objects {
            if is_probe(self.relative(&listed.key)) {
                tracing::debug!(object = %listed.shown(), "a --create-bucket probe: skipped");
                report.probes += 1;
                continue;
            }
            let shown = listed.shown();
            let key = match &listed.location {
                Some(_) => LandingKey::from_object_key(self.bucket.prefix.as_ref(), &listed.key),
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
        todo
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
            .bucket
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

    /// An object key relative to the prefix (the key itself when it is not
    /// under it).
    fn relative<'k>(&self, key: &'k str) -> &'k str {
        let prefix = self.bucket.prefix.as_ref();
        if prefix.is_empty() {
            return key;
        }
        key.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(key)
    }
}

/// One downloaded object on its way into the store.
struct Download<'a> {
    key: &'a LandingKey,
    listed: &'a Listed,
    landed_at: Option<jiff::Timestamp>,
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
