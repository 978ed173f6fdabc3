//! The mirror's local state under `{LANDING_DIR}/.materia/mirror/`, one set per
//! bucket (named by a hash of its endpoint, bucket and prefix: the same bucket
//! name on another endpoint is another bucket):
//!
//! - `{id}.jsonl`: landing files confirmed in the bucket (key and file SHA-256),
//!   appended and fsynced as each upload is confirmed, so a no-op push makes no
//!   request and a killed push keeps what it finished;
//! - `{id}.pending/`: one small file per multipart upload in flight, written
//!   before its first part; a push aborts every upload left there by a killed
//!   run, so none it knows of is orphaned;
//! - `{id}.full`: when the last full push (one that listed the bucket) ended;
//! - `{id}.verify`: where `verify --sample` goes on from, and when it last
//!   completed a round over every object (replaced atomically);
//! - `{id}.lock`: held (flock) by the running push or restore.
//!
//! Every file is created `0640` and every directory `0750` (the store's modes),
//! and each new name is made durable by fsyncing its directory.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};
use crate::landing::durable::{self, HeldLock, LockFile};
use crate::landing::{MetaDir, Sha256Digest};

/// One line of the record of confirmed uploads.
#[derive(Serialize, Deserialize)]
struct Confirmed {
    key: String,
    sha256: String,
}

/// A multipart upload in flight.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    /// The object's location in the bucket.
    pub location: String,
    /// The server's upload id.
    pub upload_id: String,
}

/// The name of a bucket's files: a hash of its endpoint, bucket and prefix.
fn bucket_id(identity: &str) -> String {
    Sha256Digest::of(identity.as_bytes()).to_string()[..16].to_owned()
}

/// Where the sampled verify of one bucket stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SampleCursor {
    /// The last landing key compared; the next run starts after it.
    pub after: Option<String>,
    /// When a run last reached the end of the keys (every object compared
    /// since the round began).
    pub round_completed_at: Option<jiff::Timestamp>,
}

impl SampleCursor {
    fn path(landing_root: &Path, identity: &str) -> Result<PathBuf> {
        let dir = MetaDir::create(landing_root)?.create_dir("mirror")?;
        Ok(dir.join(format!("{}.verify", bucket_id(identity))))
    }

    /// Reads the cursor; missing or unreadable starts from the first key.
    pub(crate) fn load(landing_root: &Path, identity: &str) -> Result<SampleCursor> {
        let path = Self::path(landing_root, identity)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SampleCursor::default()),
            Err(e) => Err(e).at(&path),
        }
    }

    /// Replaces the cursor, durably.
    pub(crate) fn save(&self, landing_root: &Path, identity: &str) -> Result<()> {
        durable::replace_json(&Self::path(landing_root, identity)?, self)
    }
}

/// The local state for one bucket URL; holds its lock while alive.
pub(crate) struct Record {
    dir: PathBuf,
    id: String,
    confirmed: Mutex<Option<File>>,
    _lock: HeldLock,
}

impl Record {
    /// Opens the state for `identity` (endpoint, bucket and prefix) under
    /// `landing_root`, taking its lock: a second push or restore to the same
    /// bucket is refused, naming the lock file.
    pub(crate) fn open(landing_root: &Path, identity: &str) -> Result<Record> {
        let dir = MetaDir::create(landing_root)?.create_dir("mirror")?;
        durable::remove_stale_temps_in(&dir, durable::TEMP_PREFIX)?;
        let id = bucket_id(identity);
        let what = format!("another mirror or restore of {identity}");
        let lock = LockFile::open(&dir.join(format!("{id}.lock")), what)?
            .try_hold("try again when it is done")?;
        Ok(Record {
            dir,
            id,
            confirmed: Mutex::new(None),
            _lock: lock,
        })
    }

    fn full_path(&self) -> PathBuf {
        self.dir.join(format!("{}.full", self.id))
    }

    /// Whether the last full push is older than `every` (or there was none).
    pub(crate) fn full_due(&self, every: Option<std::time::Duration>) -> Result<bool> {
        let Some(every) = every else {
            return Ok(false);
        };
        let path = self.full_path();
        let last = match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<jiff::Timestamp>().ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).at(&path),
        };
        let now = jiff::Timestamp::now();
        Ok(last.is_none_or(|last| {
            let age = now.duration_since(last);
            // A last full push in the future (the clock went back) is due too.
            age.is_negative() || age.unsigned_abs() >= every
        }))
    }

    /// Records that a full push has just ended.
    pub(crate) fn mark_full(&self) -> Result<()> {
        let now = format!("{}\n", jiff::Timestamp::now());
        durable::replace_file(&self.full_path(), now.as_bytes())
    }

    fn confirmed_path(&self) -> PathBuf {
        self.dir.join(format!("{}.jsonl", self.id))
    }

    fn pending_dir(&self) -> PathBuf {
        self.dir.join(format!("{}.pending", self.id))
    }

    /// Landing keys confirmed in the bucket, with the file hash they had.
    pub(crate) fn confirmed(&self) -> Result<HashMap<String, String>> {
        let path = self.confirmed_path();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => return Err(e).at(&path),
        };
        let mut out = HashMap::new();
        for line in BufReader::new(file).lines() {
            let line = line.at(&path)?;
            // A line torn by a crash is skipped: that file is checked again.
            if let Ok(c) = serde_json::from_str::<Confirmed>(&line) {
                out.insert(c.key, c.sha256);
            }
        }
        Ok(out)
    }

    /// Appends one confirmation and fsyncs it.
    pub(crate) fn confirm(&self, key: &str, sha256: &str) -> Result<()> {
        let path = self.confirmed_path();
        let mut line = serde_json::to_vec(&Confirmed {
            key: key.to_owned(),
            sha256: sha256.to_owned(),
        })
        .map_err(|e| std::io::Error::other(e.to_string()))
        .at(&path)?;
        line.push(b'\n');
        let mut guard = self
            .confirmed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            let created = !path.exists();
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(durable::FILE_MODE)
                .open(&path)
                .at(&path)?;
            if created {
                durable::sync_dir(&self.dir)?;
            }
            *guard = Some(file);
        }
        if let Some(file) = guard.as_mut() {
            file.write_all(&line).at(&path)?;
            file.sync_data().at(&path)?;
        }
        Ok(())
    }

    /// Replaces the record with exactly `entries` (key, file SHA-256), atomically:
    /// a `--full` push drops what the bucket lost.
    pub(crate) fn replace_confirmed(&self, entries: &[(String, String)]) -> Result<()> {
        let path = self.confirmed_path();
        let mut body = Vec::new();
        for (key, sha256) in entries {
            serde_json::to_writer(
                &mut body,
                &Confirmed {
                    key: key.clone(),
                    sha256: sha256.clone(),
                },
            )
            .map_err(|e| std::io::Error::other(e.to_string()))
            .at(&path)?;
            body.push(b'\n');
        }
        let mut guard = self
            .confirmed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = None;
        crate::landing::durable::replace_file(&path, &body)
    }

    fn pending_path(&self, location: &str) -> PathBuf {
        let name = &Sha256Digest::of(location.as_bytes()).to_string()[..32];
        self.pending_dir().join(format!("{name}.json"))
    }

    /// Records a multipart upload before its first part is sent.
    pub(crate) fn add_pending(&self, pending: &Pending) -> Result<()> {
        durable::create_dirs(&self.dir, Path::new(&format!("{}.pending", self.id)))?;
        let path = self.pending_path(&pending.location);
        let body = serde_json::to_vec(pending)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .at(&path)?;
        // Durable before the first part is sent: a power cut must not orphan
        // the upload.
        durable::replace_file(&path, &body)
    }

    /// Forgets a multipart upload that was completed or aborted.
    pub(crate) fn remove_pending(&self, location: &str) -> Result<()> {
        let path = self.pending_path(location);
        match fs::remove_file(&path) {
            Ok(()) => durable::sync_dir(&self.pending_dir()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).at(&path),
        }
    }

    /// Multipart uploads left by a run that did not finish them.
    pub(crate) fn pending(&self) -> Result<Vec<Pending>> {
        let dir = self.pending_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).at(&dir),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.at(&dir)?;
            let path = entry.path();
            let name = entry.file_name();
            if durable::is_temp_name(&name.to_string_lossy()) {
                durable::remove_stale_temp(&path)?;
                continue;
            }
            if !entry.file_type().at(&path)?.is_file() {
                tracing::warn!(path = %path.display(), "not a regular file; left alone");
                continue;
            }
            let body = fs::read(&path).at(&path)?;
            match serde_json::from_slice::<Pending>(&body) {
                Ok(p) => out.push(p),
                // Torn by a crash before the first part was sent: nothing to abort.
                Err(_) => fs::remove_file(&path).at(&path)?,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_survive_reopening_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let r = Record::open(dir.path(), "s3://b/p").expect("open");
            r.confirm("psd/2026/01/a.csv.gzip", "aa").expect("confirm");
            r.confirm("psd/2026/02/b.csv.gzip", "bb").expect("confirm");
        }
        let path = dir.path().join(".materia/mirror");
        let jsonl = fs::read_dir(&path)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .expect("record file");
        let mut f = OpenOptions::new().append(true).open(&jsonl).expect("open");
        f.write_all(b"{\"key\":\"psd/20").expect("torn write");
        let r = Record::open(dir.path(), "s3://b/p").expect("reopen");
        let confirmed = r.confirmed().expect("read");
        assert_eq!(confirmed.len(), 2);
        assert_eq!(confirmed["psd/2026/02/b.csv.gzip"], "bb");
        r.replace_confirmed(&[("psd/2026/03/c.csv.gzip".into(), "cc".into())])
            .expect("replace");
        r.confirm("psd/2026/04/d.csv.gzip", "dd")
            .expect("append after");
        let replaced = r.confirmed().expect("read");
        assert_eq!(replaced.len(), 2);
        assert!(
            replaced.contains_key("psd/2026/03/c.csv.gzip")
                && !replaced.contains_key("psd/2026/01/a.csv.gzip")
        );
        // Another URL has its own record.
        drop(r);
        let other = Record::open(dir.path(), "s3://b/other").expect("other");
        assert!(other.confirmed().expect("read").is_empty());
    }

    #[test]
    fn a_second_holder_of_the_same_url_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = Record::open(dir.path(), "s3://b/p").expect("open");
        let second = Record::open(dir.path(), "s3://b/p")
            .err()
            .expect("locked")
            .to_string();
        assert!(second.contains("another mirror"), "{second}");
        assert!(second.contains(".lock"), "{second}");
        Record::open(dir.path(), "s3://b/q").expect("another URL is free");
    }

    #[test]
    fn pending_uploads_are_listed_until_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Record::open(dir.path(), "s3://b/p").expect("open");
        let p = Pending {
            location: "p/psd/2026/01/a.csv.gzip".into(),
            upload_id: "u1".into(),
        };
        r.add_pending(&p).expect("add");
        assert_eq!(r.pending().expect("list"), vec![p]);
        r.remove_pending("p/psd/2026/01/a.csv.gzip")
            .expect("remove");
        assert!(r.pending().expect("list").is_empty());
    }
}
