//! The ledger: an append-only log of what each landed file contains.
//!
//! `{root}/.materia/ledger.jsonl` holds one JSON [`Release`] record per landing:
//! the content's and the stored file's SHA-256 and sizes, when it landed, and the
//! release metadata the source gave (`Last-Modified`, URL). `verify` checks files
//! against it and `put` deduplicates by content through it.
//!
//! The files on disk are the truth about *which* keys exist; the ledger only
//! describes them. A record is appended (and fsynced) before its file is moved to
//! the final name, so every landed file has a record; a record whose file never
//! appeared (a crash in between) is ignored, and a later record for the same key
//! wins.
//!
//! Each record is written as `\n{json}\n` in one `O_APPEND` write: a record torn by
//! a crash is terminated by the next writer's leading newline and skipped when
//! read, so one torn line never damages another. Writers in several processes are
//! serialized by `flock` on `{root}/.materia/lock` (see [`MetaDir`](super::MetaDir)).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::durable::FILE_MODE;
use super::key::{LandingKey, Sha256Digest};
use crate::error::{IoContext, Result};

/// What the store knows about one landed file.
///
/// ```
/// # fn main() -> materia_core::Result<()> {
/// use materia_core::landing::{LandingStore, NewRelease, PutOutcome};
/// let dir = tempfile::tempdir().unwrap();
/// let store = LandingStore::open(dir.path())?;
/// let release = NewRelease::new("psd".parse()?, 2026, 11)?;
/// let PutOutcome::Landed(r) = store.put(release, &b"a,b\n1,2\n"[..])? else { unreachable!() };
/// assert_eq!(r.content_bytes, 8);
/// assert_eq!(r.key.etag.as_str(), r.content_sha256.to_string()); // content address
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Where the file is.
    pub key: LandingKey,
    /// SHA-256 of the uncompressed content.
    pub content_sha256: Sha256Digest,
    /// Size of the uncompressed content.
    pub content_bytes: u64,
    /// SHA-256 of the stored (gzipped) file.
    pub file_sha256: Sha256Digest,
    /// Size of the stored (gzipped) file.
    pub file_bytes: u64,
    /// When it landed.
    pub landed_at: jiff::Timestamp,
    /// The source's `ETag` header, verbatim, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag_header: Option<String>,
    /// The source's `Last-Modified`, verbatim, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// Where it came from (a URL, a file name), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The open ledger.
pub(crate) struct Ledger {
    path: PathBuf,
    file: File,
    /// How far the file has been read: everything before is in the index.
    read_to: u64,
}

impl Ledger {
    /// Opens (creating) the ledger at `path`.
    pub(crate) fn open(path: PathBuf) -> Result<Ledger> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(FILE_MODE)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .at(&path)?;
        Ok(Ledger {
            path,
            file,
            read_to: 0,
        })
    }

    /// Reads the records appended since the last call (by any process).
    pub(crate) fn read_new(&mut self) -> Result<Vec<Release>> {
        let mut bytes = Vec::new();
        self.file
            .seek(SeekFrom::Start(self.read_to))
            .and_then(|_| self.file.read_to_end(&mut bytes))
            .at(&self.path)?;
        // Only whole lines: a line still being written is read next time.
        let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
            return Ok(Vec::new());
        };
        self.read_to += end as u64 + 1;
        let mut out = Vec::new();
        for line in bytes[..end].split(|&b| b == b'\n') {
            if line.trim_ascii().is_empty() {
                continue;
            }
            match serde_json::from_slice::<Release>(line) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!(
                    ledger = %self.path.display(),
                    "skipping an unreadable ledger record (torn by a crash?): {e}"
                ),
            }
        }
        Ok(out)
    }

    /// Appends a record and fsyncs it. Call with the lock held.
    pub(crate) fn append(&mut self, release: &Release) -> Result<()> {
        let mut line = Vec::with_capacity(512);
        line.push(b'\n');
        serde_json::to_writer(&mut line, release)
            .map_err(std::io::Error::other)
            .at(&self.path)?;
        line.push(b'\n');
        self.file.write_all(&line).at(&self.path)?;
        self.file.sync_data().at(&self.path)
    }
}
