//! A starter project: what `materia init [DIR]` writes.
//!
//! A commented `materia.toml` declaring one dataset of the caller's beside the
//! built-in ones, a `models/` directory with one model of each kind a caller
//! writes (a table, a view and an audit, reading the built-in PSD tables so
//! they run on the shipped sample) and a `.env.example` naming the settings.
//! The files are the repository's `examples/` directory, embedded at compile
//! time: one copy, which the tests build as it is.
//!
//! Nothing is overwritten: when any of the files exists, [`init`] writes
//! nothing and names it. Each file is written as the landing zone writes
//! (`landing::durable`): a temp file, fsynced, renamed into place without
//! replacing anything, the directory fsynced.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::landing::durable::{Staged, create_dirs, create_root};

/// The starter files, `(path relative to the project, contents)`, in the
/// order [`init`] writes them.
///
/// ```
/// let names: Vec<&str> = materia_core::init::FILES.iter().map(|(p, _)| *p).collect();
/// assert!(names.contains(&"materia.toml") && names.contains(&".env.example"));
/// assert!(names.iter().any(|n| n.starts_with("models/")));
/// ```
pub const FILES: &[(&str, &str)] = &[
    ("materia.toml", include_str!("../../examples/materia.toml")),
    (
        "models/coffee_producers.sql",
        include_str!("../../examples/models/coffee_producers.sql"),
    ),
    (
        "models/coffee_top_producers.sql",
        include_str!("../../examples/models/coffee_top_producers.sql"),
    ),
    (
        "models/coffee_checks.sql",
        include_str!("../../examples/models/coffee_checks.sql"),
    ),
    (".env.example", include_str!("../../examples/.env.example")),
];

/// Writes the starter files ([`FILES`]) into `dir`, creating it and
/// `models/` as needed; returns the paths written, in order.
///
/// Refuses before writing anything when one of the files exists (an
/// [`Error::Io`](crate::Error::Io) naming it, of kind `AlreadyExists`).
///
/// ```
/// # fn main() -> materia_core::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let written = materia_core::init::init(dir.path())?;
/// assert_eq!(written.len(), materia_core::init::FILES.len());
/// assert!(dir.path().join("models").is_dir());
/// // A second init overwrites nothing.
/// let err = materia_core::init::init(dir.path()).unwrap_err();
/// assert!(err.to_string().contains("materia.toml"));
/// # Ok(()) }
/// ```
pub fn init(dir: &Path) -> Result<Vec<PathBuf>> {
    if let Some(taken) = FILES
        .iter()
        .map(|(rel, _)| dir.join(rel))
        .find(|p| p.symlink_metadata().is_ok())
    {
        return Err(exists(&taken));
    }
    create_root(dir)?;
    let mut written = Vec::with_capacity(FILES.len());
    for (rel, text) in FILES {
        let path = dir.join(rel);
        let parent = Path::new(rel).parent().unwrap_or(Path::new(""));
        let parent = create_dirs(dir, parent)?;
        write_new(&parent, &path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// Writes `bytes` to `path` (in `dir`) unless something is there.
fn write_new(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut staged = Staged::new(dir)?;
    let temp = staged.path().to_path_buf();
    staged.file().write_all(bytes).at(&temp)?;
    staged.sync()?;
    if staged.publish(path)? {
        Ok(())
    } else {
        // Created since the check above, by someone else: still never replaced.
        Err(exists(path))
    }
}

/// The refusal to overwrite `path`.
fn exists(path: &Path) -> crate::Error {
    let e = io::Error::new(
        io::ErrorKind::AlreadyExists,
        "already exists; materia init never overwrites a file: move it aside, or init another directory",
    );
    crate::Error::Io {
        path: path.to_path_buf(),
        source: e,
    }
}
