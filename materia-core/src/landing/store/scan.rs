//! The walk of the directory tree, at `open` and by `verify`: landed files,
//! strays (anything that is not a landing key, left alone) and temp files of
//! crashed writers (removed).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::landing::durable;
use crate::landing::key::{Dataset, LandingKey};
use crate::landing::meta::MetaDir;

/// What a walk of the tree found.
#[derive(Default)]
pub(super) struct Scan {
    /// Landed files and their sizes on disk.
    pub(super) files: Vec<(LandingKey, u64)>,
    /// Entries that are not landing keys.
    pub(super) strays: Vec<PathBuf>,
    /// Temp files removed.
    pub(super) temps_removed: u64,
}

/// The size of the entry at `path` (not following a symlink), or `None` when
/// there is none.
pub(super) fn file_size(path: &Path) -> Result<Option<u64>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(path),
    }
}

/// One directory entry met by [`scan`] or [`sweep_meta`].
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
pub(super) fn scan(root: &Path) -> Result<Scan> {
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

/// Removes the temp files that crashed writers left in `.materia/` (state files
/// being replaced: state.json, mirror records) and in its spool, creating the
/// spool if needed; returns how many it removed.
pub(super) fn sweep_meta(meta: &MetaDir) -> Result<u64> {
    let mut removed = durable::remove_stale_temps_in(meta.path(), durable::TEMP_PREFIX)?;
    let spool = meta.create_dir("spool")?;
    for item in read_dir(&spool)? {
        if durable::is_temp_name(&item.name) {
            removed += u64::from(durable::remove_stale_temp(&item.path)?);
        }
    }
    Ok(removed)
}
