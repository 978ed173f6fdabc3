//! Landing a release: [`LandingStore::put`] streams the input through the
//! codec into a staged file, then publishes it under the store lock unless
//! the dataset already holds its etag or its content.

use std::io::{self, Read};
use std::path::Path;

use serde::Serialize;

use super::index::{Entry, Index};
use super::scan::file_size;
use super::{LandingStore, unpoison};
use crate::error::{Error, Result};
use crate::landing::codec::{self, Digests};
use crate::landing::durable::{self, Staged};
use crate::landing::key::{Dataset, Etag, LandingKey, Month, Year, current_month};
use crate::landing::ledger::Release;

/// A release about to be landed: where it goes and what is known about it.
///
/// ```
/// use materia_core::landing::{Etag, NewRelease};
/// let release = NewRelease::new("psd".parse()?, 2026, 11)?
///     .with_etag(Etag::from_header(b"\"5e2a9f\""))
///     .with_last_modified("Tue, 10 Nov 2026 14:00:00 GMT");
/// assert_eq!(release.etag.unwrap().as_str(), "5e2a9f");
/// # Ok::<(), materia_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct NewRelease {
    /// The dataset it belongs to.
    pub dataset: Dataset,
    /// The year it lands under.
    pub year: Year,
    /// The month it lands under.
    pub month: Month,
    /// Its etag; `None` lands it under its content address (SHA-256 of the content).
    pub etag: Option<Etag>,
    /// The source's `ETag` header, verbatim (for the next conditional request).
    pub etag_header: Option<String>,
    /// The source's `Last-Modified` header, kept verbatim as release metadata.
    pub last_modified: Option<String>,
    /// Where it came from, kept as release metadata.
    pub source: Option<String>,
    /// When set, the content must be CSV text (no NUL byte, no line over
    /// 1 MiB) whose header is exactly these columns (any header when empty);
    /// anything else is refused as [`Error::InvalidInput`] before it lands.
    pub csv_header: Option<Vec<String>>,
    /// The landing time to record instead of now (a restore keeps the original
    /// order of releases this way).
    pub landed_at: Option<jiff::Timestamp>,
}

impl NewRelease {
    /// A release of `dataset` landing under `year`/`month`.
    pub fn new(dataset: Dataset, year: i64, month: i64) -> Result<Self> {
        Ok(NewRelease::at(
            dataset,
            Year::new(year)?,
            Month::new(month)?,
        ))
    }

    /// A release of `dataset` landing under the current UTC month.
    pub fn this_month(dataset: Dataset) -> Self {
        let (year, month) = current_month();
        NewRelease::at(dataset, year, month)
    }

    fn at(dataset: Dataset, year: Year, month: Month) -> Self {
        NewRelease {
            dataset,
            year,
            month,
            etag: None,
            etag_header: None,
            last_modified: None,
            source: None,
            csv_header: None,
            landed_at: None,
        }
    }

    /// Sets the etag (`None` keeps the content address).
    pub fn with_etag(mut self, etag: Option<Etag>) -> Self {
        self.etag = etag;
        self
    }

    /// Records the source's `ETag` header verbatim (the etag token may be mapped).
    pub fn with_etag_header(mut self, value: impl Into<String>) -> Self {
        self.etag_header = Some(value.into());
        self
    }

    /// Records the source's `Last-Modified`.
    pub fn with_last_modified(mut self, value: impl Into<String>) -> Self {
        self.last_modified = Some(value.into());
        self
    }

    /// Records where the release came from.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Checks the content as it lands: CSV text whose header is exactly
    /// `columns` (an empty list accepts any header but still checks the text).
    /// What `extract` fetches and `materia land` reads is checked this way, so a
    /// file that `transform` would refuse never lands.
    ///
    /// ```
    /// # fn main() -> materia_core::Result<()> {
    /// use materia_core::{Error, landing::{LandingStore, NewRelease}};
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = LandingStore::open(dir.path())?;
    /// let release = NewRelease::new("psd".parse()?, 2026, 11)?.with_csv_header(vec!["a".into(), "b".into()]);
    /// let err = store.put(release, &b"a,c\n1,2\n"[..]).unwrap_err();
    /// assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    /// assert!(store.list().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn with_csv_header(mut self, columns: Vec<String>) -> Self {
        self.csv_header = Some(columns);
        self
    }

    /// Records `at` as the landing time instead of now.
    pub fn with_landed_at(mut self, at: jiff::Timestamp) -> Self {
        self.landed_at = Some(at);
        self
    }
}

/// Why a put landed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DuplicateOf {
    /// The dataset already holds this etag (in some year/month).
    Etag,
    /// The dataset already holds a file with the same content under another etag.
    Content,
}

impl std::fmt::Display for DuplicateOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DuplicateOf::Etag => "etag",
            DuplicateOf::Content => "content",
        })
    }
}

/// What [`LandingStore::put`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum PutOutcome {
    /// A new file landed.
    Landed(Release),
    /// Nothing was written: the release is already in the store.
    Duplicate {
        /// The key that already holds it.
        existing: LandingKey,
        /// Whether it matched by etag or by content.
        of: DuplicateOf,
    },
}

impl PutOutcome {
    /// The landed release, or [`Error::Duplicate`] for callers that need a new one.
    ///
    /// ```
    /// # fn main() -> materia_core::Result<()> {
    /// use materia_core::{Error, landing::{LandingStore, NewRelease}};
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = LandingStore::open(dir.path())?;
    /// let release = NewRelease::new("psd".parse()?, 2026, 11)?;
    /// store.put(release.clone(), &b"x\n"[..])?.landed()?;
    /// assert!(matches!(store.put(release, &b"x\n"[..])?.landed(), Err(Error::Duplicate { .. })));
    /// # Ok(()) }
    /// ```
    pub fn landed(self) -> Result<Release> {
        match self {
            PutOutcome::Landed(r) => Ok(r),
            PutOutcome::Duplicate { existing, .. } => Err(Error::Duplicate { key: existing }),
        }
    }
}

impl LandingStore {
    /// Lands `input` as a release and reports what happened.
    ///
    /// Plain input is gzip-compressed: cut into 2 MiB chunks compressed in
    /// parallel (one gzip member each, written in order — the same bytes for any
    /// thread count); input that starts with the gzip magic is validated end to
    /// end (CRC and length of every member) and stored byte for byte. The input is
    /// read once, with bounded memory. When `release.etag` is `None` the file is
    /// addressed by the SHA-256 of its content.
    ///
    /// Returns [`PutOutcome::Duplicate`] — writing nothing — when the dataset
    /// already holds the etag (checked before reading any input) or the same
    /// content under another etag. Fails with [`Error::InvalidInput`] for empty
    /// input or broken gzip, [`Error::Input`] when reading the input fails and
    /// [`Error::Io`] when the disk does; in every failure the temp file is removed
    /// and nothing appears under a final name.
    pub fn put(&self, release: NewRelease, mut input: impl Read) -> Result<PutOutcome> {
        self.put_dyn(release, &mut input)
    }

    fn put_dyn(&self, release: NewRelease, input: &mut dyn Read) -> Result<PutOutcome> {
        if let Some(etag) = &release.etag {
            self.refresh()?;
            let index = unpoison(self.index.read());
            if let Some(existing) = index.find(release.dataset.as_str(), etag.as_str()) {
                return Ok(PutOutcome::Duplicate {
                    existing: existing.clone(),
                    of: DuplicateOf::Etag,
                });
            }
        }
        let (staged, digests) = self.stage(&release, input)?;
        if let Some(etag) = &release.etag
            && etag.is_content_address()
            && etag.as_str() != digests.content_sha256.to_string()
        {
            // Two namespaces that must never meet: a 64-hex name always is
            // the SHA-256 of its content, so restore can check it.
            return Err(Error::InvalidInput {
                reason: format!(
                    "etag {etag} has the form of a content address but the content's SHA-256 is {}",
                    digests.content_sha256
                ),
            });
        }
        staged.sync()?;
        let content_addressed = release.etag.is_none();
        let key = LandingKey {
            dataset: release.dataset,
            year: release.year,
            month: release.month,
            etag: release
                .etag
                .unwrap_or_else(|| Etag::from_digest(&digests.content_sha256)),
        };
        let record = Release {
            key,
            content_sha256: digests.content_sha256,
            content_bytes: digests.content_bytes,
            file_sha256: digests.file_sha256,
            file_bytes: digests.file_bytes,
            landed_at: release.landed_at.unwrap_or_else(jiff::Timestamp::now),
            etag_header: release.etag_header,
            last_modified: release.last_modified,
            source: release.source,
        };
        match self.commit(staged, record, &digests)? {
            // The content address is the content: a match on it is a match on content.
            PutOutcome::Duplicate {
                existing,
                of: DuplicateOf::Etag,
            } if content_addressed => Ok(PutOutcome::Duplicate {
                existing,
                of: DuplicateOf::Content,
            }),
            outcome => Ok(outcome),
        }
    }

    /// Writes `input` (compressed, or validated when it is gzip already) to a
    /// temp file in the release's month directory; the temp file is removed
    /// when anything fails.
    fn stage(&self, release: &NewRelease, input: &mut dyn Read) -> Result<(Staged, Digests)> {
        let month_dir = Path::new(release.dataset.as_str())
            .join(release.year.to_string())
            .join(release.month.to_string());
        let dir = durable::create_dirs(&self.root, &month_dir)?;
        let mut staged = Staged::new(&dir)?;
        let temp_path = staged.path().to_path_buf();
        let digests = {
            let mut out = io::BufWriter::with_capacity(256 * 1024, staged.file());
            codec::write_gzip(
                input,
                &mut out,
                self.level,
                self.threads,
                &temp_path,
                codec::Expect {
                    header: release.csv_header.as_deref(),
                    max_content_bytes: self.max_content_bytes,
                },
            )?
        };
        Ok((staged, digests))
    }

    /// Publishes a staged file under the store lock: re-checks for duplicates
    /// (other processes included), records it in the ledger, moves it into place.
    fn commit(&self, staged: Staged, record: Release, digests: &Digests) -> Result<PutOutcome> {
        let mut writer = self.lock_writer();
        let writer = &mut *writer;
        let _lock = writer.lock.acquire()?;
        self.apply(writer.ledger.read_new()?);
        let index = unpoison(self.index.read());
        let dup = duplicate(&index, &record.key, digests);
        drop(index); // the write lock below would wait on it
        if let Some(dup) = dup {
            return Ok(dup);
        }
        let dest = self.path_of(&record.key);
        if let Some(file_bytes) = file_size(&dest)? {
            // A file the ledger does not know (put in place by hand): adopt it.
            let existing = record.key.clone();
            unpoison(self.index.write()).insert(Entry {
                key: existing.clone(),
                file_bytes,
                release: None,
            });
            return Ok(PutOutcome::Duplicate {
                existing,
                of: DuplicateOf::Etag,
            });
        }
        writer.ledger.append(&record)?;
        if !staged.publish(&dest)? {
            return Err(Error::Io {
                path: dest,
                source: io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "appeared while the store lock was held",
                ),
            });
        }
        tracing::debug!(key = %record.key, bytes = record.file_bytes, "landed");
        unpoison(self.index.write()).insert(Entry {
            key: record.key.clone(),
            file_bytes: record.file_bytes,
            release: Some(record.clone()),
        });
        Ok(PutOutcome::Landed(record))
    }
}

/// The landed file that makes `key` (with content `digests`) a duplicate: the
/// dataset's file with the same etag, else the one with the same content.
fn duplicate(index: &Index, key: &LandingKey, digests: &Digests) -> Option<PutOutcome> {
    if let Some(existing) = index.find(key.dataset.as_str(), key.etag.as_str()) {
        return Some(PutOutcome::Duplicate {
            existing: existing.clone(),
            of: DuplicateOf::Etag,
        });
    }
    let existing = index.find_content(&key.dataset, &digests.content_sha256)?;
    Some(PutOutcome::Duplicate {
        existing: existing.clone(),
        of: DuplicateOf::Content,
    })
}
