//! Reading the store: lookups by etag, listing, the newest release, a file's
//! content, totals. All but [`LandingStore::get`] answer from the index.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read};

use flate2::read::MultiGzDecoder;
use serde::Serialize;

use super::index::Entry;
use super::{LandingStore, unpoison};
use crate::error::{Error, IoContext, Result};
use crate::landing::durable;
use crate::landing::key::{Dataset, Etag, LandingKey};
use crate::landing::ledger::Release;

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

impl LandingStore {
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
}
