//! Checking the store: every landed file read end to end (gzip CRC and
//! length of every member) and compared with its ledger record.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

use serde::Serialize;

use super::LandingStore;
use super::index::Entry;
use super::scan::scan;
use crate::error::{Error, Result};
use crate::landing::codec::{self, Digests};
use crate::landing::key::LandingKey;
use crate::landing::ledger::Release;

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

impl LandingStore {
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
