//! The files a build leaves beside `DUCKDB_PATH`: their names (`.wal`,
//! `.history`, build files), their mode, and removing what a failed or killed
//! build left.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::landing::durable;

/// Creates the lakehouse's directory (and its parents) with the store's mode.
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(durable::DIR_MODE)
        .create(dir)
        .at(dir)
}

/// Removes a failed build's file and WAL.
pub(crate) fn remove_build(build: &Path) {
    if let Err(e) = remove_with_wal(build) {
        tracing::warn!("{e}");
    }
}

/// Removes a DuckDB file and its WAL, whichever exist.
pub(crate) fn remove_with_wal(path: &Path) -> Result<()> {
    remove_path(path)?;
    remove_path(&with_suffix(path, ".wal"))
}

/// Makes a file DuckDB created (with the umask's mode, 0644 under 022) the
/// store's 0640, keeping anything stricter the umask asked for.
pub(crate) fn restrict_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path).at(path)?.permissions().mode();
    let restricted = mode & durable::FILE_MODE;
    if restricted != mode & 0o7777 {
        fs::set_permissions(path, fs::Permissions::from_mode(restricted)).at(path)?;
    }
    Ok(())
}

/// `path` with `suffix` appended to its file name (`x.duckdb` → `x.duckdb.wal`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The name every build file of `target` starts with.
fn build_prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.build-")
}

/// A new build file's path: beside `target`, named after this process and
/// the time (a killed build's is removed by [`remove_stale_builds`]).
pub(crate) fn build_path(target: &Path) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    target.with_file_name(format!(
        "{}{}-{nanos}",
        build_prefix(target),
        std::process::id()
    ))
}

/// Removes what killed transforms left: build files, their WALs and DuckDB's
/// spill directories (`{build}.tmp/`). Called with the transform lock held, so
/// none of them is live. Symlinks are removed, never followed.
pub(crate) fn remove_stale_builds(target: &Path) -> Result<()> {
    let dir = target.parent().unwrap_or(Path::new("/"));
    let prefix = build_prefix(target);
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let path = entry.path();
            tracing::info!(file = %path.display(), "removing what a killed build left");
            remove_path(&path)?;
        }
    }
    Ok(())
}

/// Removes a file, a symlink (not its target) or a directory tree.
pub(crate) fn remove_path(path: &Path) -> Result<()> {
    let removed = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(path),
        _ => Ok(()),
    }
}

/// `path` made absolute (against the working directory, not resolving links).
pub(crate) fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).at(path)
}
