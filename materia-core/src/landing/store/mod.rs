//! [`LandingStore`]: the landing zone on local disk.
//!
//! The store is one handle over three things kept in step: the files under
//! the root, the ledger of their records, and an in-memory index of both.
//! Each concept has its room:
//!
//! - this file: the handle, [`LandingStore::open`] (which sweeps what crashed
//!   writers left) and its settings, and keeping the index current with what
//!   other processes land;
//! - `put`: landing a release ([`NewRelease`] in, [`PutOutcome`] out);
//! - `read`: lookups, listing, reading a file back, totals;
//! - `verify`: reading every file end to end against its record;
//! - `index`: the in-memory index ([`Entry`] per landed file);
//! - `scan`: the walk of the directory tree (landed files, strays, stale temp
//!   files) and the sweep of temp files under `.materia/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use flate2::Compression;

use super::durable::{self, LockFile};
use super::key::LandingKey;
use super::ledger::{Ledger, Release};
use super::meta::MetaDir;
use crate::error::{Error, IoContext, Result};
use index::Index;
use scan::{file_size, scan, sweep_meta};

mod index;
mod put;
mod read;
mod scan;
mod verify;

pub use index::Entry;
pub use put::{DuplicateOf, NewRelease, PutOutcome};
pub use read::{DatasetStats, Stats};
pub use verify::{BadFile, VerifyReport};

/// Default of [`LandingStore::with_max_content_bytes`]: 16 GiB.
const DEFAULT_MAX_CONTENT_BYTES: u64 = 16 << 30;

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

impl Writer {
    /// Reads the ledger records appended since the last read, under the lock.
    fn read_new(&mut self) -> Result<Vec<Release>> {
        let _lock = self.lock.acquire()?;
        self.ledger.read_new()
    }
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
        scan.temps_removed += sweep_meta(&meta)?;
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
    pub(crate) fn spool(&self) -> Result<durable::Staged> {
        durable::Staged::new(&self.meta().spool())
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
}
