//! [`LandingStore`]: the landing zone on local disk.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use serde::Serialize;

use super::codec::{self, Digests};
use super::durable::LockFile;
use super::durable::{self, Staged};
use super::key::{Dataset, Etag, LandingKey, Month, Sha256Digest, Year, current_month};
use super::ledger::{Ledger, Release};
use super::meta::MetaDir;
use crate::error::{Error, IoContext, Result};

/// Default of [`LandingStore::with_max_content_bytes`]: 16 GiB.
const DEFAULT_MAX_CONTENT_BYTES: u64 = 16 << 30;

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
        Ok(NewRelease {
            dataset,
            year: Year::new(year)?,
            month: Month::new(month)?,
            etag: None,
            etag_header: None,
            last_modified: None,
            source: None,
            csv_header: None,
            landed_at: None,
        })
    }

    /// A release of `dataset` landing under the current UTC month.
    pub fn this_month(dataset: Dataset) -> Self {
        let (year, month) = current_month();
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

/// One landed file as the store sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Its key.
    pub key: LandingKey,
    /// Size on disk, in bytes.
    pub file_bytes: u64,
    /// Its ledger record; `None` for a file that was put in place by other means.
    pub release: Option<Release>,
}

/// Totals over the store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Landed files.
    pub files: u64,
    /// Their size on disk.
    pub bytes: u64,
    /// Their uncompressed size, over the files that have a ledger record.
    pub content_bytes: u64,
    /// Per dataset.
    pub datasets: BTreeMap<String, DatasetStats>,
}

/// Totals for one dataset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DatasetStats {
    /// Landed files.
    pub files: u64,
    /// Their size on disk.
    pub bytes: u64,
}

/// One problem [`LandingStore::verify`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BadFile {
    /// The key, when the file is (or was) a landed file.
    pub key: Option<LandingKey>,
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub problem: String,
}

/// The result of [`LandingStore::verify`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Files read end to end.
    pub checked: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Files that are corrupt, or missing since the store was opened.
    pub bad: Vec<BadFile>,
    /// Valid files with no ledger record (only gzip integrity could be checked).
    pub unrecorded: Vec<LandingKey>,
    /// Files under the root that are not landing keys (left alone).
    pub strays: Vec<PathBuf>,
}

impl VerifyReport {
    /// Whether every file checked out.
    pub fn is_ok(&self) -> bool {
        self.bad.is_empty()
    }
}

/// The in-memory index: built from the directory tree at open, kept current by
/// every put and by the ledger records other processes append.
#[derive(Default)]
struct Index {
    entries: BTreeMap<LandingKey, Entry>,
    /// Per dataset: etag → key, content hash → key.
    by_etag: HashMap<Dataset, HashMap<Etag, LandingKey>>,
    by_content: HashMap<Dataset, HashMap<Sha256Digest, LandingKey>>,
}

impl Index {
    fn insert(&mut self, entry: Entry) {
        let key = entry.key.clone();
        self.by_etag
            .entry(key.dataset.clone())
            .or_default()
            .insert(key.etag.clone(), key.clone());
        if let Some(r) = &entry.release {
            self.by_content
                .entry(key.dataset.clone())
                .or_default()
                .entry(r.content_sha256)
                .or_insert_with(|| key.clone());
        }
        self.entries.insert(key, entry);
    }

    fn find(&self, dataset: &str, etag: &str) -> Option<&LandingKey> {
        self.by_etag.get(dataset)?.get(etag)
    }

    fn duplicate(&self, key: &LandingKey, digests: &Digests) -> Option<PutOutcome> {
        if let Some(existing) = self.find(key.dataset.as_str(), key.etag.as_str()) {
            return Some(PutOutcome::Duplicate {
                existing: existing.clone(),
                of: DuplicateOf::Etag,
            });
        }
        let existing = self
            .by_content
            .get(&key.dataset)?
            .get(&digests.content_sha256)?;
        Some(PutOutcome::Duplicate {
            existing: existing.clone(),
            of: DuplicateOf::Content,
        })
    }
}

impl Borrow<str> for Dataset {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Etag {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Writer {
    /// Reads the ledger records appended since the last read, under the lock.
    fn read_new(&mut self) -> Result<Vec<Release>> {
        let _lock = self.lock.acquire()?;
        self.ledger.read_new()
    }
}

/// What a walk of the tree found.
#[derive(Default)]
struct Scan {
    files: Vec<(LandingKey, u64)>,
    strays: Vec<PathBuf>,
    temps_removed: u64,
}

/// The landing zone: immutable gzipped CSV files at
/// `{root}/{dataset}/{year}/{month}/{etag}.csv.gzip`.
///
/// Guarantees:
/// - a file is visible under its final name only when complete and fsynced
///   (temp file in the same directory, fsync, no-replace rename, fsync the
///   directory); a crash leaves at most a temp file, removed by the next `open`;
/// - a landed file is never modified, replaced or deleted;
/// - a dataset holds each etag, and each content, at most once.
///
/// The store is `Send + Sync`; puts from several threads or processes are safe.
///
/// ```
/// # fn main() -> materia_core::Result<()> {
/// use std::io::Read;
/// use materia_core::landing::{LandingStore, NewRelease, PutOutcome};
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = LandingStore::open(dir.path())?;
/// let release = NewRelease::new("psd".parse()?, 2026, 11)?.with_etag(Some("5e2a9f".parse()?));
/// let PutOutcome::Landed(landed) = store.put(release, &b"a,b\n1,2\n"[..])? else { unreachable!() };
/// assert_eq!(landed.key.to_string(), "psd/2026/11/5e2a9f.csv.gzip");
///
/// let mut csv = String::new();
/// store.get(&landed.key)?.read_to_string(&mut csv).unwrap();
/// assert_eq!(csv, "a,b\n1,2\n");
/// assert!(store.verify()?.is_ok());
/// # Ok(()) }
/// ```
pub struct LandingStore {
    root: PathBuf,
    level: Compression,
    threads: usize,
    max_content_bytes: u64,
    writer: Mutex<Writer>,
    index: RwLock<Index>,
}

/// What a writer needs exclusively: the ledger, and the lock that extends that
/// exclusion to other processes.
struct Writer {
    lock: LockFile,
    ledger: Ledger,
}

fn unpoison<T>(r: Result<T, PoisonError<T>>) -> T {
    // A panic elsewhere cannot leave the index half-updated in a way that
    // matters: every update is a whole-entry insert.
    r.unwrap_or_else(PoisonError::into_inner)
}

impl LandingStore {
    /// Opens the store at `root`, creating it if needed; builds the index from the
    /// directory tree and the ledger, and removes temp files left by crashed
    /// writers.
    pub fn open(root: impl AsRef<Path>) -> Result<LandingStore> {
        let root = root.as_ref().to_path_buf();
        let meta = MetaDir::create(&root)?;
        let fresh = !meta.ledger().exists();
        let mut writer = Writer {
            lock: LockFile::open(&meta.store_lock(), "another writer of this landing zone")?,
            ledger: Ledger::open(meta.ledger())?,
        };
        if fresh {
            // The ledger was just created: make its name durable.
            durable::sync_dir(meta.path())?;
        }
        let records = writer.read_new()?;
        let mut scan = scan(&root)?;
        // State files replaced by a crashed writer (state.json, mirror records).
        scan.temps_removed += durable::remove_stale_temps_in(meta.path(), durable::TEMP_PREFIX)?;
        let spool = meta.create_dir("spool")?;
        for item in read_dir(&spool)? {
            if durable::is_temp_name(&item.name) {
                scan.temps_removed += u64::from(durable::remove_stale_temp(&item.path)?);
            }
        }
        if scan.temps_removed > 0 {
            tracing::info!(
                root = %root.display(),
                "removed {} temp file(s) left by interrupted writes",
                scan.temps_removed
            );
        }
        let mut by_key: HashMap<LandingKey, Release> =
            records.into_iter().map(|r| (r.key.clone(), r)).collect();
        let mut index = Index::default();
        for (key, file_bytes) in scan.files {
            let release = by_key.remove(&key);
            index.insert(Entry {
                key,
                file_bytes,
                release,
            });
        }
        Ok(LandingStore {
            root,
            level: Compression::default(),
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            max_content_bytes: DEFAULT_MAX_CONTENT_BYTES,
            writer: Mutex::new(writer),
            index: RwLock::new(index),
        })
    }

    /// Opens the store at `root` only if that directory exists: for commands
    /// that only read (`ls`, `verify`, `status`, …), so a mistyped path is an
    /// error naming it, never a new empty landing zone.
    ///
    /// ```
    /// use materia_core::landing::LandingStore;
    /// let dir = tempfile::tempdir().unwrap();
    /// let err = LandingStore::open_existing(dir.path().join("typo")).err().unwrap();
    /// assert!(err.to_string().contains("typo"));
    /// assert!(!dir.path().join("typo").exists());
    /// assert!(LandingStore::open_existing(dir.path()).is_ok());
    /// ```
    pub fn open_existing(root: impl AsRef<Path>) -> Result<LandingStore> {
        let root = root.as_ref();
        match std::fs::metadata(root) {
            Ok(m) if m.is_dir() => LandingStore::open(root),
            Ok(_) => Err(Error::Config {
                origin: "LANDING_DIR".into(),
                reason: format!(
                    "{} is not a directory: set LANDING_DIR (or --landing-dir) to the landing zone",
                    root.display()
                ),
                source: None,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Config {
                origin: "LANDING_DIR".into(),
                reason: format!(
                    "no landing zone at {}: set LANDING_DIR (or --landing-dir) to it; \
                     `materia land` or `materia extract` creates a new one",
                    root.display()
                ),
                source: None,
            }),
            Err(e) => Err(e).at(root),
        }
    }

    /// Sets the gzip level (0–9, default 6) for plain input landed from now on.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = materia_core::landing::LandingStore::open(dir.path())?.with_compression(1);
    /// # Ok::<(), materia_core::Error>(())
    /// ```
    pub fn with_compression(mut self, level: u32) -> Self {
        self.level = Compression::new(level.min(9));
        self
    }

    /// A locked temp file under `.materia/spool/`, on the store's filesystem,
    /// removed when dropped (or by the next `open` after a crash).
    #[cfg(feature = "http")]
    pub(crate) fn spool(&self) -> Result<Staged> {
        Staged::new(&self.meta().spool())
    }

    /// The store's own folder, `{root}/.materia/`, and every file in it.
    pub fn meta(&self) -> MetaDir {
        MetaDir::of(&self.root)
    }

    /// Sets how many threads compress plain input (default: one per core; at
    /// most 4 are used). The output is the same bytes whatever the count, and
    /// memory stays bounded (at most 8 chunks of 2 MiB in flight).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = materia_core::landing::LandingStore::open(dir.path())?.with_threads(1);
    /// # Ok::<(), materia_core::Error>(())
    /// ```
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Sets the most bytes a landed file's content may inflate to (default
    /// 16 GiB, as extract's `max_content_bytes`): a gzip bomb handed to `land`
    /// or found in the bucket by `restore` stops there, and nothing lands.
    ///
    /// ```
    /// # fn main() -> materia_core::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use materia_core::landing::{LandingStore, NewRelease};
    /// let store = LandingStore::open(dir.path())?.with_max_content_bytes(4);
    /// let release = NewRelease::new("psd".parse()?, 2026, 1)?;
    /// assert!(store.put(release, &b"a,b\n1,2\n"[..]).is_err());
    /// # Ok(()) }
    /// ```
    pub fn with_max_content_bytes(mut self, max: u64) -> Self {
        self.max_content_bytes = max;
        self
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of `key`'s file.
    pub fn path_of(&self, key: &LandingKey) -> PathBuf {
        self.root.join(key.relative_path())
    }

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

    /// Publishes a staged file under the store lock: re-checks for duplicates
    /// (other processes included), records it in the ledger, moves it into place.
    fn commit(&self, staged: Staged, record: Release, digests: &Digests) -> Result<PutOutcome> {
        let mut writer = self.lock_writer();
        let writer = &mut *writer;
        let _lock = writer.lock.acquire()?;
        self.apply(writer.ledger.read_new()?);
        if let Some(dup) = unpoison(self.index.read()).duplicate(&record.key, digests) {
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

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        unpoison(self.writer.lock())
    }

    /// Adds what other processes landed since we last looked.
    fn refresh(&self) -> Result<()> {
        let records = self.lock_writer().read_new()?;
        self.apply(records);
        Ok(())
    }

    fn apply(&self, records: Vec<Release>) {
        if records.is_empty() {
            return;
        }
        let mut index = unpoison(self.index.write());
        for release in records {
            // Under the lock, a record's file is in place unless its writer crashed
            // between appending the record and publishing the file.
            if let Ok(Some(file_bytes)) = file_size(&self.path_of(&release.key)) {
                index.insert(Entry {
                    key: release.key.clone(),
                    file_bytes,
                    release: Some(release),
                });
            }
        }
    }

    /// Whether `dataset` holds `etag`, in any year/month. A hash lookup: it does
    /// not touch the disk.
    ///
    /// ```
    /// # fn main() -> materia_core::Result<()> {
    /// # use materia_core::landing::{LandingStore, NewRelease};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = LandingStore::open(dir.path())?;
    /// let psd = "psd".parse()?;
    /// let tag = "abc".parse()?;
    /// assert!(!store.contains(&psd, &tag));
    /// let _ = store.put(NewRelease::new(psd.clone(), 2026, 1)?.with_etag(Some(tag.clone())), &b"x\n"[..])?;
    /// assert!(store.contains(&psd, &tag));
    /// # Ok(()) }
    /// ```
    pub fn contains(&self, dataset: &Dataset, etag: &Etag) -> bool {
        unpoison(self.index.read())
            .find(dataset.as_str(), etag.as_str())
            .is_some()
    }

    /// The key under which `dataset` holds `etag`, if it does.
    pub fn find(&self, dataset: &Dataset, etag: &Etag) -> Option<LandingKey> {
        unpoison(self.index.read())
            .find(dataset.as_str(), etag.as_str())
            .cloned()
    }

    /// Every landed file, ordered by dataset, year, month, then etag.
    pub fn list(&self) -> Vec<Entry> {
        unpoison(self.index.read())
            .entries
            .values()
            .cloned()
            .collect()
    }

    /// The ledger record of `key`, if it has one.
    pub fn release(&self, key: &LandingKey) -> Option<Release> {
        unpoison(self.index.read())
            .entries
            .get(key)?
            .release
            .clone()
    }

    /// The newest release of `dataset`: the latest year/month, and within a month
    /// the one landed last.
    pub fn latest(&self, dataset: &Dataset) -> Option<Entry> {
        let index = unpoison(self.index.read());
        index
            .entries
            .values()
            .filter(|e| &e.key.dataset == dataset)
            .max_by_key(|e| {
                let landed = e.release.as_ref().map(|r| r.landed_at);
                (e.key.year, e.key.month, landed)
            })
            .cloned()
    }

    /// The newest release of `dataset` that came from `source` (by year, month,
    /// then landing time): what a conditional request to `source` compares with.
    pub fn latest_from(&self, dataset: &Dataset, source: &str) -> Option<Release> {
        let index = unpoison(self.index.read());
        index
            .entries
            .values()
            .filter_map(|e| e.release.as_ref())
            .filter(|r| &r.key.dataset == dataset && r.source.as_deref() == Some(source))
            .max_by_key(|r| (r.key.year, r.key.month, r.landed_at))
            .cloned()
    }

    /// A reader of `key`'s decompressed content. Each gzip member's CRC and length
    /// are checked as it is read; a mismatch is an `InvalidData` read error.
    pub fn get(&self, key: &LandingKey) -> Result<impl Read + use<>> {
        let path = self.path_of(key);
        match durable::open_regular(&path) {
            Ok(file) => Ok(MultiGzDecoder::new(BufReader::with_capacity(
                256 * 1024,
                file,
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::NotFound { key: key.clone() })
            }
            Err(e) => Err(e).at(path),
        }
    }

    /// Files and bytes, in all and per dataset.
    pub fn stats(&self) -> Stats {
        let index = unpoison(self.index.read());
        let mut stats = Stats::default();
        for e in index.entries.values() {
            stats.files += 1;
            stats.bytes += e.file_bytes;
            stats.content_bytes += e.release.as_ref().map_or(0, |r| r.content_bytes);
            let ds = stats.datasets.entry(e.key.dataset.to_string()).or_default();
            ds.files += 1;
            ds.bytes += e.file_bytes;
        }
        stats
    }

    /// Reads every landed file end to end and checks it: gzip CRC and length of
    /// every member, then size and SHA-256 of both the stored bytes and the
    /// content against the ledger. Names every bad file; a file landed since
    /// `open` (by this or another process) is checked too, and one that vanished
    /// since is reported as missing.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.refresh()?;
        let known: Vec<Entry> = self.list();
        let scan = scan(&self.root)?;
        let on_disk: HashMap<&LandingKey, u64> = scan.files.iter().map(|(k, n)| (k, *n)).collect();
        let mut report = VerifyReport {
            strays: scan.strays.clone(),
            ..VerifyReport::default()
        };
        for entry in &known {
            if !on_disk.contains_key(&entry.key) {
                report.bad.push(BadFile {
                    key: Some(entry.key.clone()),
                    path: self.path_of(&entry.key),
                    problem: "missing: the file was landed but is gone".into(),
                });
            }
        }
        let records: HashMap<&LandingKey, &Release> = known
            .iter()
            .filter_map(|e| Some((&e.key, e.release.as_ref()?)))
            .collect();
        for (key, _) in &scan.files {
            report.checked += 1;
            let record = records.get(key).copied();
            match self.check_file(key, record)? {
                Checked::Bad(problem) => report.bad.push(BadFile {
                    key: Some(key.clone()),
                    path: self.path_of(key),
                    problem,
                }),
                Checked::Good(bytes) => {
                    report.bytes += bytes;
                    if record.is_none() {
                        report.unrecorded.push(key.clone());
                    }
                }
            }
        }
        Ok(report)
    }

    /// Reads one landed file end to end and checks it like [`LandingStore::verify`]:
    /// `Ok(None)` when it is sound, `Ok(Some(problem))` when it is not.
    ///
    /// ```
    /// # fn main() -> materia_core::Result<()> {
    /// # use materia_core::landing::{LandingStore, NewRelease};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = LandingStore::open(dir.path())?;
    /// let r = store.put(NewRelease::new("psd".parse()?, 2026, 1)?, &b"a\n1\n"[..])?.landed()?;
    /// assert_eq!(store.check(&r.key)?, None);
    /// # Ok(()) }
    /// ```
    pub fn check(&self, key: &LandingKey) -> Result<Option<String>> {
        let record = self.release(key);
        Ok(match self.check_file(key, record.as_ref())? {
            Checked::Good(_) => None,
            Checked::Bad(problem) => Some(problem),
        })
    }

    fn check_file(&self, key: &LandingKey, record: Option<&Release>) -> Result<Checked> {
        let path = self.path_of(key);
        let measured = match codec::measure_file(&path) {
            Ok(m) => m,
            // Vanished: report, don't abort.
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Err("missing: the file is gone".to_owned())
            }
            Err(e) => return Err(e),
        };
        Ok(match measured {
            Err(problem) => Checked::Bad(problem),
            Ok(d) => match check_against_record(&d, record) {
                Some(problem) => Checked::Bad(problem),
                None => Checked::Good(d.file_bytes),
            },
        })
    }
}

/// The verdict on one file.
enum Checked {
    /// Sound; this many bytes were read.
    Good(u64),
    /// What is wrong.
    Bad(String),
}

fn check_against_record(d: &Digests, record: Option<&Release>) -> Option<String> {
    if d.content_bytes == 0 {
        return Some("holds no content".into());
    }
    let r = record?;
    if d.file_bytes != r.file_bytes {
        Some(format!(
            "size is {} bytes, {} were landed",
            d.file_bytes, r.file_bytes
        ))
    } else if d.file_sha256 != r.file_sha256 {
        Some(format!(
            "file SHA-256 is {}, {} was landed",
            d.file_sha256, r.file_sha256
        ))
    } else if d.content_sha256 != r.content_sha256 || d.content_bytes != r.content_bytes {
        Some(format!(
            "content SHA-256 is {}, {} was landed",
            d.content_sha256, r.content_sha256
        ))
    } else {
        None
    }
}

/// The size of the entry at `path` (not following a symlink), or `None` when
/// there is none.
fn file_size(path: &Path) -> Result<Option<u64>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(path),
    }
}

/// One directory entry met by [`scan`].
struct DirItem {
    /// The name; empty when it is not UTF-8 (then it cannot be a landing key).
    name: String,
    path: PathBuf,
    entry: fs::DirEntry,
    /// A directory (not a symlink to one).
    is_dir: bool,
    /// A regular file (not a symlink to one, a FIFO, a device…).
    is_file: bool,
}

/// Lists the entries of a directory.
fn read_dir(dir: &Path) -> Result<Vec<DirItem>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let path = entry.path();
        let kind = entry.file_type().at(&path)?;
        let name = entry.file_name().into_string().unwrap_or_default();
        out.push(DirItem {
            name,
            path,
            entry,
            is_dir: kind.is_dir(),
            is_file: kind.is_file(),
        });
    }
    Ok(out)
}

/// Walks `{root}/{dataset}/{year}/{month}/` and sorts what it finds into landed
/// files, strays and stale temp files (which it removes).
fn scan(root: &Path) -> Result<Scan> {
    let mut scan = Scan::default();
    for dataset in read_dir(root)? {
        if dataset.name == MetaDir::NAME {
            continue;
        }
        if !dataset.is_dir || dataset.name.parse::<Dataset>().is_err() {
            scan.strays.push(dataset.path);
            continue;
        }
        for year in read_dir(&dataset.path)? {
            if !year.is_dir {
                scan.strays.push(year.path);
                continue;
            }
            for month in read_dir(&year.path)? {
                if !month.is_dir {
                    scan.strays.push(month.path);
                    continue;
                }
                for file in read_dir(&month.path)? {
                    if durable::is_temp_name(&file.name) {
                        scan.temps_removed += u64::from(durable::remove_stale_temp(&file.path)?);
                        continue;
                    }
                    let rel = format!(
                        "{}/{}/{}/{}",
                        dataset.name, year.name, month.name, file.name
                    );
                    match rel.parse::<LandingKey>() {
                        // Only a regular file is a landed file: a symlink at a
                        // key path is a stray, never indexed or uploaded.
                        Ok(key) if file.is_file => {
                            // fstatat on the open directory: no path walk per file.
                            let bytes = file.entry.metadata().at(&file.path)?.len();
                            scan.files.push((key, bytes));
                        }
                        _ => scan.strays.push(file.path),
                    }
                }
            }
        }
    }
    Ok(scan)
}
