//! The private history database, `{DUCKDB_PATH}.history`: every loaded
//! release's values stored once per change, written in place.
//!
//! Only `transform` opens it, under the transform lock, so no reader ever waits
//! for it and it never waits for a reader. Each release is loaded in a DuckDB
//! transaction of its own (DuckDB's WAL makes the commit durable; a kill or a
//! power cut before it leaves the history as it was before that release, a
//! kill after it keeps the release). The published file is derived from it,
//! so a crash between a commit and the publish only means the next transform
//! publishes (see `materia.build.generation`).
//!
//! Loading releases into it is `load.rs`'s: a first build (or a rebuild)
//! loads its first releases in one transaction with the load's batch
//! statements (window functions over all of them, the same rows), up to a
//! bound of CSV, then goes on release by release.
//!
//! The history is a cache of the landing zone, the source of truth: when it is
//! missing, unreadable, of another schema version or loaded under other
//! dataset declarations, or a release lands out of publication order (an
//! archive backfill), it is deleted and rebuilt from the landing files.

use std::path::{Path, PathBuf};

use duckdb::Connection;

use super::engine::{duck, sql_string};
use super::files::{remove_with_wal, restrict_mode, with_suffix};
use super::models::{Kind, Model};
use super::report::Rejected;
use crate::error::{Result, duckdb_message};
use crate::landing::Entry;

/// The layout of the history and of the published file. A history or a
/// published file of another version is rebuilt from the landing zone.
pub(crate) const SCHEMA_VERSION: i64 = 4;

/// The temp tables the loads' statements create (`load.rs`).
pub(crate) const STAGING_TABLES: [&str; 6] = ["_stage", "_new", "_gone", "_ended", "_files", "_v"];

/// Schema version, history id and generation (`materia.build`).
pub(crate) type BuildInfo = (i64, String, i64);

/// The history file of the lakehouse at `target`.
pub(crate) fn path_of(target: &Path) -> PathBuf {
    with_suffix(target, ".history")
}

/// What one release's load did.
pub(crate) enum Loaded {
    /// Its rows are in the history.
    Rows { rows: u64, changes: u64 },
    /// It cannot be loaded; it is recorded in `raw.rejected`.
    Rejected(Rejected),
}

/// The history, attached as `history` to `conn`.
pub(crate) struct History<'a> {
    conn: &'a Connection,
    /// Whether this build created it (first build, rebuilt, full refresh).
    pub created: bool,
}

impl<'a> History<'a> {
    /// Attaches the history at `path` to `conn` (creating it), runs the setup
    /// models among `models` and returns it, or `None` when it must be
    /// rebuilt (another schema version, loaded under other dataset
    /// declarations — `tables`, their fingerprint —, or DuckDB cannot open
    /// it) — then it is detached and deleted.
    pub(crate) fn attach(
        conn: &'a Connection,
        path: &Path,
        models: &[Model],
        tables: &str,
    ) -> Result<Option<History<'a>>> {
        let attach = format!(
            "ATTACH {} AS history; USE history",
            sql_string(&path.to_string_lossy())
        );
        if let Err(e) = conn.execute_batch(&attach) {
            if !path.exists() {
                return Err(duck("attaching the history")(e));
            }
            tracing::warn!(history = %path.display(), "rebuilding the history: DuckDB cannot open it: {}", duckdb_message(&e));
            remove_history(path)?;
            return Ok(None);
        }
        restrict_mode(path)?;
        let mut history = History {
            conn,
            created: false,
        };
        for m in models.iter().filter(|m| m.kind == Kind::Setup) {
            m.run(conn)?;
        }
        let found: Option<(i64, String)> = {
            use duckdb::OptionalExt;
            conn.query_row(
                "SELECT schema_version, tables FROM materia.build",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            // A layout without the column: older than any version we wrote.
            .unwrap_or(Some((0, String::new())))
        };
        let why = match found {
            None => {
                conn.execute(
                    "INSERT INTO materia.build VALUES (?, gen_random_uuid()::VARCHAR, 0, ?)",
                    duckdb::params![SCHEMA_VERSION, tables],
                )
                .map_err(duck("materia.build"))?;
                history.created = true;
                return Ok(Some(history));
            }
            Some((SCHEMA_VERSION, found)) if found == tables => return Ok(Some(history)),
            Some((SCHEMA_VERSION, _)) => "the dataset declarations changed".to_owned(),
            Some((other, _)) => format!(
                "its layout (schema version {other}) is older than this release's ({SCHEMA_VERSION})"
            ),
        };
        tracing::info!(history = %path.display(), "rebuilding the history: {why}");
        discard(conn, path)?;
        Ok(None)
    }

    /// The history at `path` attached read-only to `conn` as `history`, to
    /// read what a build would load ([`plan`](super::plan)); `Err` with
    /// DuckDB's error when it cannot be opened.
    pub(crate) fn attach_read_only(
        conn: &'a Connection,
        path: &Path,
    ) -> std::result::Result<History<'a>, duckdb::Error> {
        conn.execute_batch(&format!(
            "ATTACH {} AS history (READ_ONLY); USE history",
            sql_string(&path.to_string_lossy())
        ))?;
        Ok(History {
            conn,
            created: false,
        })
    }

    /// The schema version and the declarations' fingerprint the history was
    /// loaded under (`None`: it has no `materia.build`, or one without them).
    pub(crate) fn loaded_under(&self) -> Option<(i64, String)> {
        self.conn
            .query_row(
                "SELECT schema_version, tables FROM materia.build",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok()
    }

    /// The schema version, this history's id and its generation (bumped by
    /// every commit that changes it).
    pub(crate) fn build_info(&self) -> Result<BuildInfo> {
        self.conn
            .query_row(
                "SELECT schema_version, history_id, generation FROM materia.build",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(duck("materia.build"))
    }

    /// Releases loaded, of every dataset.
    pub(crate) fn releases(&self) -> Result<u64> {
        count(self.conn, "SELECT count(*) FROM raw.releases")
    }

    /// The landing keys loaded, and those rejected.
    pub(crate) fn known_keys(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT landing_key FROM raw.releases UNION ALL SELECT landing_key FROM raw.rejected",
            )
            .map_err(duck("raw.releases"))?;
        stmt.query_map([], |r| r.get::<_, String>(0))
            .map_err(duck("raw.releases"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(duck("raw.releases"))
    }

    /// Whether `entry` sorts after every release of its dataset already loaded
    /// (publication order: year, month, landing time), so it can be appended.
    pub(crate) fn appends(&self, entry: &Entry) -> Result<bool> {
        use duckdb::OptionalExt;
        let newest: Option<(i64, i64, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT year, month, epoch_us(landed_at) FROM raw.releases \
                 WHERE dataset = ? ORDER BY ord DESC LIMIT 1",
                [entry.key.dataset.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(duck("raw.releases"))?;
        let this = (
            i64::from(entry.key.year.get()),
            i64::from(entry.key.month.get()),
            entry.release.as_ref().map(|r| r.landed_at.as_microsecond()),
        );
        Ok(newest.is_none_or(|newest| this >= newest))
    }

    /// Records a file that cannot be loaded, in a commit of its own.
    pub(crate) fn reject(&self, rejected: &Rejected) -> Result<()> {
        self.begin()?;
        self.conn
            .execute(
                "INSERT INTO raw.rejected VALUES (?, ?, now())",
                duckdb::params![rejected.landing_key, rejected.reason],
            )
            .map_err(duck("raw.rejected"))?;
        self.commit()
    }

    /// The connection the history is attached to.
    pub(crate) fn conn(&self) -> &'a Connection {
        self.conn
    }

    /// Begins a transaction (one per release, or per batch of releases).
    pub(crate) fn begin(&self) -> Result<()> {
        self.conn
            .execute_batch("BEGIN TRANSACTION")
            .map_err(duck("BEGIN"))
    }

    /// Drops the staging tables and commits the transaction.
    pub(crate) fn finish(&self) -> Result<()> {
        self.drop_staging()?;
        self.commit()
    }

    fn commit(&self) -> Result<()> {
        self.conn
            .execute_batch("UPDATE materia.build SET generation = generation + 1; COMMIT")
            .map_err(duck("COMMIT"))
    }

    /// The next release id, and the next publication order in `dataset`.
    pub(crate) fn next_ids(&self, dataset: &str) -> Result<(i64, i64)> {
        self.conn
            .query_row(
                "SELECT coalesce(max(release_id), 0) + 1, \
                        coalesce(max(ord) FILTER (dataset = ?), 0) + 1 FROM raw.releases",
                [dataset],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(duck("raw.releases"))
    }

    /// Adds a loaded release to the ledger of loads.
    pub(crate) fn record_release(
        &self,
        release_id: i64,
        entry: &Entry,
        ord: i64,
        rows: u64,
        changes: u64,
    ) -> Result<()> {
        let r = entry.release.as_ref();
        self.conn
            .execute(
                "INSERT INTO raw.releases VALUES (?, ?, ?, ?, ?, ?, ?::TIMESTAMPTZ, ?, ?, ?, ?, now())",
                duckdb::params![
                    release_id,
                    entry.key.dataset.as_str(),
                    entry.key.etag.as_str(),
                    entry.key.to_string(),
                    entry.key.year.get(),
                    entry.key.month.get(),
                    r.map(|r| r.landed_at.to_string()),
                    r.map(|r| r.content_sha256.to_string()),
                    ord,
                    rows as i64,
                    changes as i64,
                ],
            )
            .map_err(duck("raw.releases"))?;
        Ok(())
    }

    /// Drops the temp tables the loads leave (so the memory they
    /// hold goes before the commit).
    fn drop_staging(&self) -> Result<()> {
        let sql: String = STAGING_TABLES
            .iter()
            .map(|t| format!("DROP TABLE IF EXISTS {t};"))
            .collect();
        self.conn
            .execute_batch(&sql)
            .map_err(duck("dropping the staging tables"))
    }

    /// Records the release at `key` as rejected for `reason`, in a commit of
    /// its own (after a rollback).
    pub(crate) fn quarantine(&self, key: &str, reason: String) -> Result<Loaded> {
        let rejected = Rejected {
            landing_key: key.to_owned(),
            reason,
        };
        self.reject(&rejected)?;
        Ok(Loaded::Rejected(rejected))
    }

    /// Rolls the transaction back (a failure is logged: the next build
    /// starts from the last commit anyway).
    pub(crate) fn rollback(&self) {
        if let Err(e) = self.conn.execute_batch("ROLLBACK") {
            tracing::warn!("rollback: {}", duckdb_message(&e));
        }
    }
}

/// The count a `SELECT count(*) …` returns.
pub(crate) fn count(conn: &Connection, sql: &str) -> Result<u64> {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
        .map_err(duck(sql))
}

/// Deletes the history and its WAL (it is rebuilt from the landing zone).
pub(crate) fn remove_history(path: &Path) -> Result<()> {
    remove_with_wal(path)
}

/// Detaches the attached history at `path` from `conn` and deletes it.
pub(crate) fn discard(conn: &Connection, path: &Path) -> Result<()> {
    conn.execute_batch("USE memory; DETACH history")
        .map_err(duck("detaching the history"))?;
    remove_history(path)
}
