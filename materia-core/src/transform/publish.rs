//! Publishing the lakehouse: two slot files, one of them `DUCKDB_PATH`.
//!
//! The published file is a hard link to one of two slots, `{DUCKDB_PATH}.a`
//! and `{DUCKDB_PATH}.b`. A build writes the *other* slot — the build before
//! last, which no reader opens any more through `DUCKDB_PATH` — **in place**:
//! it appends the history's new changes and rebuilds the release-sized tables,
//! so a day's publish writes what changed, not the history. Then it links the
//! slot to a temporary name and renames that over `DUCKDB_PATH`, and fsyncs
//! the directory: readers that open `DUCKDB_PATH` see the new build, readers
//! holding the old one keep it (another inode, never written while published).
//!
//! A fresh file is built instead (beside the target, then renamed over the
//! slot) when the slot cannot be updated: it does not exist (first build, or
//! a lakehouse of an older Materia that was a plain file), DuckDB cannot open
//! it for writing (a reader still holds it from two builds ago: DuckDB's
//! lock), or it was built from another history, schema version or storage
//! version (`materia.build`, `materia.published`). A slot built with other
//! models is updated in place: the models that changed run, those it lacks
//! are copied from the published file, those left out are dropped
//! (`serving.rs`).
//!
//! Crash reasoning: the slot being written is never the published file, so a
//! kill or power cut mid-build leaves `DUCKDB_PATH` as it was; a build voids
//! the slot's record (`materia.published`) before any model runs, so a slot
//! a failed or killed build touched is never trusted: the next build writes
//! a fresh file in its place. A slot's WAL is removed before a fresh
//! file takes its name (it belongs to the old file). The link and rename are
//! made durable by the directory fsync; either name points to a complete,
//! fsynced, checkpointed file.

use std::fs;
use std::path::{Path, PathBuf};

use duckdb::Connection;

use super::engine::{duck, sql_string};
use super::files::{build_path, remove_path, restrict_mode, with_suffix};
use super::record::Record;
use crate::error::{Error, IoContext, Result};

/// Where the next build goes.
pub(crate) enum Slot {
    /// The slot file, attached as `lake`, brought up to date in place.
    Update(PathBuf),
    /// A new file (attached as `lake`), renamed over `slot` when complete.
    Fresh { file: PathBuf, slot: PathBuf },
}

impl Slot {
    /// The file being written.
    pub(crate) fn file(&self) -> &Path {
        match self {
            Slot::Update(slot) => slot,
            Slot::Fresh { file, .. } => file,
        }
    }

    /// The slot it will be published from.
    pub(crate) fn slot(&self) -> &Path {
        match self {
            Slot::Update(slot) | Slot::Fresh { slot, .. } => slot,
        }
    }
}

/// The two slot files of the lakehouse at `target`.
fn slots(target: &Path) -> [PathBuf; 2] {
    [with_suffix(target, ".a"), with_suffix(target, ".b")]
}

/// The slot `target` is not (a hard link to): the one to write next.
fn next_slot(target: &Path) -> PathBuf {
    use super::lakehouse::inode_of;
    let [a, b] = slots(target);
    match inode_of(target) {
        Some(published) if inode_of(&a) == Some(published) => b,
        _ => a,
    }
}

/// Attaches the slot to write as `lake`: the next slot in place when it was
/// built from this history (`history_id`) in the storage version of
/// `record`, else a fresh file.
pub(crate) fn attach(
    conn: &Connection,
    target: &Path,
    history_id: &str,
    record: &Record,
) -> Result<Slot> {
    let storage_version = record
        .storage_version
        .as_deref()
        .unwrap_or(super::STORAGE_VERSION);
    let slot = next_slot(target);
    if slot.exists() && !held(&slot) {
        match attach_file(conn, &slot, "") {
            Ok(()) => {
                if built_from(conn, history_id, storage_version) {
                    return Ok(Slot::Update(slot));
                }
                tracing::info!(slot = %slot.display(), "the slot was built from another history or storage version: building afresh");
                conn.execute_batch("USE history; DETACH lake")
                    .map_err(duck("detaching the slot"))?;
            }
            Err(e) => {
                tracing::info!(slot = %slot.display(), "building afresh: cannot update the slot in place: {}", crate::error::duckdb_message(&e));
            }
        }
    }
    let file = build_path(target);
    let options = format!(" (STORAGE_VERSION {})", sql_string(storage_version));
    attach_file(conn, &file, &options).map_err(duck("creating the build"))?;
    Ok(Slot::Fresh { file, slot })
}

/// Checks a storage version's shape (`v1.4.0`) before DuckDB sees it.
pub(crate) fn check_storage_version(version: &str) -> Result<()> {
    let digits = version.strip_prefix('v').unwrap_or("");
    let parts: Vec<&str> = digits.split('.').collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Ok(());
    }
    Err(Error::Transform {
        reason: format!("storage version {version:?}: expected vMAJOR.MINOR.PATCH, e.g. v1.4.0"),
        source: None,
    })
}

/// Whether a reader has `path` open: a [`Lakehouse`](super::Lakehouse) of
/// this process (DuckDB's `fcntl` locks belong to the process and vanish when
/// any descriptor of the file closes, so they cannot tell), or another process
/// holding DuckDB's lock — probed with an open-file-description write lock,
/// which conflicts with every other lock, released before DuckDB attaches.
fn held(path: &Path) -> bool {
    use nix::fcntl::{FcntlArg, fcntl};
    use nix::libc;
    if super::lakehouse::open_in_this_process(path) {
        return true;
    }
    // A write lock needs the file open for writing (the slot is ours, 0640).
    let Ok(file) = fs::OpenOptions::new().read(true).write(true).open(path) else {
        return true;
    };
    let lock = libc::flock {
        l_type: libc::F_WRLCK as _,
        l_whence: libc::SEEK_SET as _,
        l_start: 0,
        l_len: 0, // the whole file
        l_pid: 0,
    };
    fcntl(&file, FcntlArg::F_OFD_SETLK(&lock)).is_err()
}

/// `ATTACH path AS lake{options}` and makes it the default database.
fn attach_file(
    conn: &Connection,
    path: &Path,
    options: &str,
) -> std::result::Result<(), duckdb::Error> {
    conn.execute_batch(&format!(
        "ATTACH {} AS lake{options}; USE lake",
        sql_string(&path.to_string_lossy())
    ))
}

/// Whether the attached `lake` was built from `history_id` in
/// `storage_version` (the end of its models' print, `{fingerprint}/{version}`).
fn built_from(conn: &Connection, history_id: &str, storage_version: &str) -> bool {
    let found: std::result::Result<(i64, String, String), _> = conn.query_row(
        "SELECT b.schema_version, b.history_id, p.models \
         FROM lake.materia.build AS b, lake.materia.published AS p",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    );
    matches!(found, Ok((v, h, m)) if v == super::history::SCHEMA_VERSION
        && h == history_id
        && m.rsplit_once('/').is_some_and(|(_, version)| version == storage_version))
}

/// Makes the written slot `DUCKDB_PATH`, durably (see the module doc).
pub(crate) fn publish(slot: &Slot, target: &Path) -> Result<()> {
    let file = slot.file();
    let wal = with_suffix(file, ".wal");
    if wal.exists() {
        return Err(Error::Transform {
            reason: format!(
                "the build left a WAL ({}) after CHECKPOINT; not publishing",
                wal.display()
            ),
            source: None,
        });
    }
    restrict_mode(file)?;
    fs::File::open(file).and_then(|f| f.sync_all()).at(file)?;
    let dir = target.parent().unwrap_or(Path::new("/"));
    if let Slot::Fresh { file, slot } = slot {
        // The slot's WAL belongs to the file being replaced.
        remove_path(&with_suffix(slot, ".wal"))?;
        fs::rename(file, slot).at(slot)?;
    }
    // A WAL beside the target belongs to no build of ours (the published file
    // is never opened for writing); DuckDB would replay it into the new file.
    let stale = with_suffix(target, ".wal");
    if stale.exists() {
        let aside = with_suffix(target, &format!(".wal.stale-{}", std::process::id()));
        tracing::warn!(wal = %stale.display(), aside = %aside.display(), "moving a stale WAL aside");
        fs::rename(&stale, &aside).at(&stale)?;
    }
    let link = build_path(target);
    fs::hard_link(slot.slot(), &link).at(&link)?;
    if let Err(e) = fs::rename(&link, target).at(target) {
        let _ = remove_path(&link);
        return Err(e);
    }
    fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)
}
