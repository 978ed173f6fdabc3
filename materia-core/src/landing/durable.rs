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
//! A crash leaves at most a `.tmp.*` file. [`remove_stale_temps`] deletes those whose
//! `flock` can be taken — the writer that held it is gone — and leaves the temp files
//! of live writers in other processes alone.

use std::fs::{self, File, Permissions, TryLockError};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{IoContext, Result};

/// Mode of every file the store creates (the umask can only make it stricter).
pub(crate) const FILE_MODE: u32 = 0o640;
/// Mode of every directory the store creates (the umask can only make it stricter).
pub(crate) const DIR_MODE: u32 = 0o750;

const TEMP_PREFIX: &str = ".tmp.";

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
/// survive a crash.
pub(crate) fn create_dirs(root: &Path, rel: &Path) -> Result<PathBuf> {
    let mut dir = root.to_path_buf();
    for part in rel.components() {
        let parent = dir.clone();
        dir.push(part);
        match fs::DirBuilder::new().mode(DIR_MODE).create(&dir) {
            Ok(()) => sync_dir(&parent)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
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
        // Hold the lock for the file's whole life: it tells `remove_stale_temps`
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
pub(crate) fn remove_stale_temp(path: &Path) -> Result<bool> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).at(path),
    };
    match file.try_lock() {
        Ok(()) => match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).at(path),
        },
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e).at(path),
    }
}

/// Replaces `path` with `bytes` durably: a temp file in the same directory,
/// fsync, rename over `path`, fsync the directory. Readers see the old content
/// or the new, never a mix. For small state files, not landed data (those are
/// never replaced: see [`Staged::publish`]).
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .permissions(Permissions::from_mode(FILE_MODE))
        .tempfile_in(dir)
        .at(dir)?;
    temp.write_all(bytes).at(temp.path())?;
    temp.as_file().sync_all().at(temp.path())?;
    temp.persist(path).map_err(|e| e.error).at(path)?;
    sync_dir(dir)
}
