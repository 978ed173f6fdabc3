//! The in-memory index: every landed file by key, and per dataset by etag and
//! by content hash, so that lookups and duplicate checks never touch the disk.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::landing::key::{Dataset, Etag, LandingKey, Sha256Digest};
use crate::landing::ledger::Release;

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

/// The in-memory index: built from the directory tree at open, kept current by
/// every put and by the ledger records other processes append.
#[derive(Default)]
pub(super) struct Index {
    /// Every landed file, ordered by key.
    pub(super) entries: BTreeMap<LandingKey, Entry>,
    /// Per dataset: etag → key, content hash → key.
    by_etag: HashMap<Dataset, HashMap<Etag, LandingKey>>,
    by_content: HashMap<Dataset, HashMap<Sha256Digest, LandingKey>>,
}

impl Index {
    pub(super) fn insert(&mut self, entry: Entry) {
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

    pub(super) fn find(&self, dataset: &str, etag: &str) -> Option<&LandingKey> {
        self.by_etag.get(dataset)?.get(etag)
    }

    /// The key under which `dataset` holds content `sha256`, if it does.
    pub(super) fn find_content(
        &self,
        dataset: &Dataset,
        sha256: &Sha256Digest,
    ) -> Option<&LandingKey> {
        self.by_content.get(dataset)?.get(sha256)
    }
}

// Lookups by `&str` in the index's maps (`Index::find`): a name hashes and
// compares as its text.
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
