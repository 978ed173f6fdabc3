//! The durability recipe, in one place so that no call site can forget a step.
//!
//! A file becomes visible under its final name only when it is complete and on disk:
//! 1. it is written as a `.tmp.*` file in the target directory (same filesystem),
//!    opened with `O_CREAT|O_EXCL` and locked with `flock` for as long as it lives;
//! 2. its data is fsynced;
//! 3. it is moved to the final name *without replacing* anything there
//!    (`renameat2(RENAME_NOREPLACE)`, or `link` + `unlink`), so a landed file is never
//!    overwritten;
//! 4. the directory is fsynced, making the new name durable.
//!
//! A fsync that fails is fatal for that file: the temp file is removed and the error
//! returned, never retried (after a failed fsync Linux may have dropped the dirty
//! pages, so a second fsync can succeed without the data — PostgreSQL's "fsyncgate").
//!
//! A crash leaves at most a `.tmp.*` file. [`remove_stale_temp`] (and
//! [`remove_stale_temps_in`] for a whole directory) deletes those whose `flock` can
//! be taken — the writer that held it is gone — and leaves the temp files of live
//! writers in other processes alone.
//!
//! Nothing here follows a symlink below the root: directories on the way are
//! checked ([`create_dirs`]), existing files are opened `O_NOFOLLOW|O_NONBLOCK`
//! and must be regular ([`open_regular`]), lock files likewise
//! ([`open_lock_file`]). Small state files are replaced with [`replace_file`].

use std::fs::{self, File, Permissions, TryLockError};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, IoContext, Result};

/// Mode of every file the store creates (the umask can only make it stricter).
pub(crate) const FILE_MODE: u32 = 0o640;
/// Mode of every directory the store creates (the umask can only make it stricter).
pub(crate) const DIR_MODE: u32 = 0o750;

/// Prefix of every temp file the store makes.
pub(crate) const TEMP_PREFIX: &str = ".tmp.";

/// Makes the directory entries in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Creates the store root and its missing parents, with [`DIR_MODE`].
pub(crate) fn create_root(root: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(root)
        .at(root)
}

/// Creates `root/rel` and every missing directory on the way, each with
/// [`DIR_MODE`], and fsyncs the parent of each one created so the new entries
/// survive a crash. A symlink on the way (below `root`) is refused, never
/// followed: nothing is ever written outside the root through one.
pub(crate) fn create_dirs(root: &Path, rel: &Path) -> Result<PathBuf> {
    let mut dir = root.to_path_buf();
    for part in rel.components() {
        let parent = dir.clone();
        dir.push(part);
        match fs::DirBuilder::new().mode(DIR_MODE).create(&dir) {
            Ok(()) => sync_dir(&parent)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta = fs::symlink_metadata(&dir).at(&dir)?;
                if !meta.is_dir() {
                    let what = if meta.file_type().is_symlink() {
                        "is a symlink (the landing zone never follows one)"
                    } else {
                        "is not a directory"
                    };
                    return Err(io::Error::new(io::ErrorKind::InvalidInput, what)).at(&dir);
                }
            }
            Err(e) => return Err(e).at(&dir),
        }
    }
    Ok(dir)
}

/// A file being written in its final directory under a temporary name.
///
/// Dropping it without [`Staged::publish`] removes the temp file.
pub(crate) struct Staged {
    file: NamedTempFile,
}

impl Staged {
    /// Creates a locked temp file in `dir`.
    pub(crate) fn new(dir: &Path) -> Result<Staged> {
        let file = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(".partial")
            .permissions(Permissions::from_mode(FILE_MODE))
            .tempfile_in(dir)
            .at(dir)?;
        // Hold the lock for the file's whole life: it tells `remove_stale_temp`
        // in any process that this file still has a writer.
        file.as_file()
            .try_lock()
            .map_err(|e| match e {
                TryLockError::Error(e) => e,
                TryLockError::WouldBlock => io::Error::other("new temp file is already locked"),
            })
            .at(file.path())?;
        Ok(Staged { file })
    }

    /// The temp file's current path (for error messages).
    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }

    /// The open file, for writing.
    pub(crate) fn file(&mut self) -> &mut File {
        self.file.as_file_mut()
    }

    /// Fsyncs the data. An error is final: the caller drops the file.
    pub(crate) fn sync(&self) -> Result<()> {
        self.file.as_file().sync_all().at(self.file.path())
    }

    /// Moves the (already synced) file to `dest` unless something is there, then
    /// fsyncs the directory. Returns `Ok(false)`, removing the temp file, when
    /// `dest` already exists.
    pub(crate) fn publish(self, dest: &Path) -> Result<bool> {
        match self.file.persist_noclobber(dest) {
            Ok(_file) => {
                let dir = dest.parent().unwrap_or(Path::new("."));
                sync_dir(dir)?;
                Ok(true)
            }
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e.error).at(dest),
        }
    }
}

/// Whether a file name is one of the store's temp files.
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// Removes the temp file at `path` if no live writer holds its lock. Returns
/// whether it was removed.
///
/// A `.tmp.*` entry that is not a regular file (a FIFO, a socket, a symlink —
/// the store never makes one) is removed without being opened, so it can
/// neither hang the open nor lead it elsewhere; a directory is left alone.
pub(crate) fn remove_stale_temp(path: &Path) -> Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).at(path),
    };
    if meta.is_dir() {
        tracing::warn!(path = %path.display(), "a directory named like a temp file; left alone");
        return Ok(false);
    }
    if !meta.is_file() {
        return unlink(path);
    }
    let file = match open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).at(path),
    };
    match file.try_lock() {
        Ok(()) => unlink(path),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e).at(path),
    }
}

fn unlink(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).at(path),
    }
}

/// Removes the stale temp files whose names start with `prefix` directly in
/// `dir` (see [`remove_stale_temp`]); returns how many.
pub(crate) fn remove_stale_temps_in(dir: &Path, prefix: &str) -> Result<u64> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            removed += u64::from(remove_stale_temp(&entry.path())?);
        }
    }
    Ok(removed)
}

/// Opens an existing file for reading without following a symlink or blocking
/// on a FIFO; anything but a regular file is an `InvalidInput` error.
pub(crate) fn open_regular(path: &Path) -> io::Result<File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ELOOP) {
                io::Error::new(io::ErrorKind::InvalidInput, "a symlink, not a regular file")
            } else {
                e
            }
        })?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// Opens (creating, [`FILE_MODE`]) a lock file; a new one's name is made
/// durable. The caller takes the `flock`.
pub(crate) fn open_lock_file(path: &Path) -> Result<File> {
    let created = fs::symlink_metadata(path).is_err();
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .at(path)?;
    if created {
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(file)
}

/// Replaces `path` with `value` as pretty JSON and a newline (see
/// [`replace_file`]): the state files' format.
pub(crate) fn replace_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(std::io::Error::other)
        .at(path)?;
    bytes.push(b'\n');
    replace_file(path, &bytes)
}

/// Reads a JSON state file; `None` when it does not exist, [`Error::Corrupt`]
/// (saying it is not `what`) when it does not parse.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!("not {what}: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(path),
    }
}

/// Replaces `path` with `bytes` durably: a temp file in the same directory,
/// fsync, rename over `path`, fsync the directory. Readers see the old content
/// or the new, never a mix. For small state files, not landed data (those are
/// never replaced: see [`Staged::publish`]). The file gets [`FILE_MODE`].
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_file_with_mode(path, bytes, FILE_MODE)
}

/// Prefix of the temp files of [`replace_file`]: distinct, so that sweeping a
/// directory shared with other programs (node_exporter's textfile directory)
/// touches only Materia's own.
pub(crate) const STATE_TEMP_PREFIX: &str = ".tmp.materia-";

/// [`replace_file`] with another mode (the Prometheus textfile is read by
/// node_exporter, another user: `0644`). A mode other than [`FILE_MODE`] is
/// set whatever the umask (the `materia` binary's umask masks 027).
pub(crate) fn replace_file_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(STATE_TEMP_PREFIX)
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(dir)
        .at(dir)?;
    // Locked while it lives, like every temp file: a sweep in another process
    // leaves it alone.
    temp.as_file()
        .try_lock()
        .map_err(io::Error::from)
        .at(temp.path())?;
    if mode != FILE_MODE {
        temp.as_file()
            .set_permissions(Permissions::from_mode(mode))
            .at(temp.path())?;
    }
    temp.write_all(bytes).at(temp.path())?;
    temp.as_file().sync_all().at(temp.path())?;
    temp.persist(path).map_err(|e| e.error).at(path)?;
    sync_dir(dir)
}

/// A lock file (`flock`), the one lock type of the crate: the store's writer
/// lock, the mirror's per-bucket lock, the supervisor's run lock and
/// transform's lock beside the lakehouse. Created `0640` and durably; taking it
/// never follows a symlink. A lock that is busy is [`Error::Busy`] naming what
/// holds it, the file, and what to do.
///
/// Its holder writes its pid into the file once it has the lock (see
/// [`LockFile::record_holder`]; the `flock` alone is the lock), so that a
/// process that waits, or is refused, can say whose lock it is.
pub(crate) struct LockFile {
    path: PathBuf,
    file: File,
    what: String,
}

/// The bytes of a lock file's pid field: the pid, left-aligned, padded with
/// spaces, and a newline (pids are at most 7 digits on Linux).
const PID_FIELD: usize = 11;

/// A [`LockFile`] taken for as long as this value lives.
pub(crate) struct HeldLock {
    _lock: LockFile,
}

/// A [`LockFile`] taken until the guard drops (the file stays open).
pub(crate) struct LockGuard<'a>(&'a File);

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Closing the file releases it too; an unlock error changes nothing.
        let _ = self.0.unlock();
    }
}

impl LockFile {
    /// Opens (creating) the lock file at `path`; `what` names the holder in a
    /// busy error, e.g. `another materia run or supervise`.
    pub(crate) fn open(path: &Path, what: impl Into<String>) -> Result<LockFile> {
        Ok(LockFile {
            file: open_lock_file(path)?,
            path: path.to_path_buf(),
            what: what.into(),
        })
    }

    fn busy(&self, hint: &str) -> Error {
        Error::Busy {
            what: self.holder(),
            lock: self.path.clone(),
            hint: hint.to_owned(),
        }
    }

    /// What holds the lock, with its pid when the file records one:
    /// `another transform of this lakehouse (pid 4242)`.
    fn holder(&self) -> String {
        match self.recorded_pid() {
            Some(pid) => format!("{} (pid {pid})", self.what),
            None => self.what.clone(),
        }
    }

    /// The pid the file records (its holder's while the lock is held); `None`
    /// when it records none (a lock file of an older Materia, or a holder
    /// that has not written it yet).
    fn recorded_pid(&self) -> Option<u32> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; PID_FIELD];
        let n = self.file.read_at(&mut buf, 0).ok()?;
        std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
    }

    /// Writes this process's pid into the lock file, which it holds, unless
    /// the file records it already: one fixed-width write at offset 0, then
    /// fsynced. The pid only names the holder in messages, so failing to
    /// write it is logged, never an error: the lock is held either way.
    fn record_holder(&self) {
        use std::os::unix::fs::FileExt;
        let pid = std::process::id();
        if self.recorded_pid() == Some(pid) {
            return;
        }
        let field = format!("{pid:<width$}\n", width = PID_FIELD - 1);
        if let Err(e) = self
            .file
            .write_all_at(field.as_bytes(), 0)
            .and_then(|()| self.file.sync_data())
        {
            tracing::debug!(lock = %self.path.display(), "cannot record the holder's pid: {e}");
        }
    }

    /// Takes the lock, waiting for it: when another process holds it, says
    /// so once, naming it (and its pid), then waits as long as it takes.
    fn lock_waiting(&self) -> Result<()> {
        match self.file.try_lock() {
            Ok(()) => Ok(()),
            Err(TryLockError::Error(e)) => Err(e).at(&self.path),
            Err(TryLockError::WouldBlock) => {
                self.say_waiting();
                self.file.lock().at(&self.path)
            }
        }
    }

    /// The line a waiter logs once.
    fn say_waiting(&self) {
        tracing::info!(
            lock = %self.path.display(),
            "waiting for the lock held by {}",
            self.holder()
        );
    }

    /// Takes the lock, waiting as long as it takes, until the guard drops.
    pub(crate) fn acquire(&self) -> Result<LockGuard<'_>> {
        self.lock_waiting()?;
        Ok(LockGuard(&self.file))
    }

    /// Takes the lock, waiting as long as it takes, and records this
    /// process's pid in the file (an [`acquire`](Self::acquire) — a moment's
    /// guard, a reader's too — records none: the file is left as it is).
    pub(crate) fn hold(self) -> Result<HeldLock> {
        self.lock_waiting()?;
        self.record_holder();
        Ok(HeldLock { _lock: self })
    }

    /// Takes the lock now or fails with [`Error::Busy`] carrying `hint`.
    pub(crate) fn try_hold(self, hint: &str) -> Result<HeldLock> {
        match self.file.try_lock() {
            Ok(()) => {
                self.record_holder();
                Ok(HeldLock { _lock: self })
            }
            Err(TryLockError::WouldBlock) => Err(self.busy(hint)),
            Err(TryLockError::Error(e)) => Err(e).at(&self.path),
        }
    }

    /// Takes the lock, waiting (and saying so once) until it is free or `stop`
    /// is set: then `None`.
    pub(crate) fn hold_until(
        self,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<Option<HeldLock>> {
        let mut told = false;
        loop {
            match self.file.try_lock() {
                Ok(()) => {
                    self.record_holder();
                    return Ok(Some(HeldLock { _lock: self }));
                }
                Err(TryLockError::Error(e)) => return Err(e).at(&self.path),
                Err(TryLockError::WouldBlock) => {
                    if !told {
                        self.say_waiting();
                        told = true;
                    }
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        return Ok(None);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LockFile;

    #[test]
    fn a_refused_or_waiting_process_is_told_the_holders_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.lock");
        // A lock file of an older Materia records no pid: none is named.
        std::fs::write(&path, "").expect("write");
        let other = LockFile::open(&path, "another test").expect("open");
        assert_eq!(other.holder(), "another test");
        let held = LockFile::open(&path, "another test")
            .expect("open")
            .try_hold("")
            .expect("free");
        let pid = std::process::id();
        let err = LockFile::open(&path, "another test")
            .expect("open")
            .try_hold("wait for it")
            .err()
            .expect("busy");
        assert!(
            err.to_string()
                .starts_with(&format!("another test (pid {pid}) is already running")),
            "{err}"
        );
        drop(held);
        // The lock is the flock alone: the recorded pid outlives it harmlessly.
        let again = LockFile::open(&path, "another test").expect("open");
        let _guard = again.acquire().expect("free");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read").trim(),
            pid.to_string()
        );
    }
}
