//! Restore drills: proof that the bucket restores, not only that it is there.
//!
//! A drill restores the whole bucket prefix into a temporary landing zone,
//! checks every restored file against the one landed here (same keys, same
//! SHA-256), builds a lakehouse from the restored files with the real models,
//! and compares it with the published one: the same releases, and per table
//! the same row count and content fingerprint. The temporary directory is
//! removed; the outcome is kept in `.materia/drill.json` for `materia status`.
//!
//! The fingerprint of a table is its row count and the sum of a hash of each
//! row, so row order does not matter. Columns that say when a build ran
//! (`loaded_at`, `rejected_at`) are left out, a `release_id` counts as the
//! landing key it stands for (ids are assigned in load order), and floating
//! point values count to 12 significant digits (a sum may differ in its last
//! bit from one build to the next). A quarantined file counts by its key
//! alone: its `raw.rejected.reason` quotes DuckDB's error, which names the
//! file's absolute path — another one under the drill's directory.
//!
//! A drill that was killed (its timeout, SIGKILL, a power cut) leaves its
//! directory behind; the next drill removes it (see [`sweep_stale_work_dirs`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result, duckdb_message, duckdb_source};
use crate::landing::durable::{self, LockFile};
use crate::landing::{LandingStore, MetaDir, Sha256Digest};
use crate::mirror::Mirror;
use crate::transform::{Lakehouse, TransformOptions, transform};

/// Columns that record when a build ran, not what the data says.
const BUILD_TIME_COLUMNS: [&str; 2] = ["loaded_at", "rejected_at"];

/// Columns (schema, table, column) that describe a build's circumstances, not
/// the data: a quarantine reason names the file's path on this machine.
const CIRCUMSTANTIAL_COLUMNS: [(&str, &str, &str); 1] = [("raw", "rejected", "reason")];

/// The name of every drill's work directory starts with this.
const WORK_PREFIX: &str = "materia-drill-";

/// The lock a running drill holds in its work directory.
const WORK_LOCK: &str = ".materia-drill.lock";

/// A work directory whose lock is free is stale once it has not changed for
/// this long — not at once: a drill starting now has made its directory a
/// moment before it takes the lock.
const FREE_LOCK_STALE_AFTER: Duration = Duration::from_secs(10 * 60);

/// A work directory without a lock (an earlier version's) is stale once it
/// has not changed for this long: no drill runs that long (the drill unit's
/// timeout is 4 h).
const UNLOCKED_STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Where a drill works and what it compares with.
///
/// ```
/// let options = materia_core::drill::DrillOptions::new("/data/materia/lakehouse.duckdb");
/// assert_eq!(options.work_dir, std::env::temp_dir());
/// ```
#[derive(Clone, Debug)]
pub struct DrillOptions {
    /// The published lakehouse (`DUCKDB_PATH`).
    pub duckdb_path: PathBuf,
    /// Where the temporary landing zone and lakehouse go (it needs room for a
    /// copy of the landing zone and a lakehouse).
    pub work_dir: PathBuf,
    /// DuckDB's `memory_limit` for the rebuild.
    pub memory_limit: String,
    /// The caller's models, as the published lakehouse was built with them.
    pub models: Vec<crate::transform::Model>,
    /// The declared tables, as the published lakehouse was built with them
    /// (default: the built-in ones; `Config::tables` gives a config's).
    pub tables: std::collections::BTreeMap<String, crate::dataset::TableSpec>,
}

impl DrillOptions {
    /// Defaults: work in the system's temp directory.
    pub fn new(duckdb_path: impl Into<PathBuf>) -> Self {
        DrillOptions {
            duckdb_path: duckdb_path.into(),
            work_dir: std::env::temp_dir(),
            memory_limit: "2GB".into(),
            models: Vec::new(),
            tables: crate::dataset::Config::default().tables(),
        }
    }
}

/// One thing the drill found different, named.
///
/// ```
/// let d = materia_core::drill::Difference { subject: "psd/2026/11/x.csv.gzip".into(), reason: "not in the bucket".into() };
/// assert_eq!(d.to_string(), "psd/2026/11/x.csv.gzip: not in the bucket");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// An object, a landing key, a release or a table.
    pub subject: String,
    /// What differs.
    pub reason: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.subject, self.reason)
    }
}

/// One table of the rebuilt lakehouse against the published one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableCheck {
    /// `schema.table`.
    pub table: String,
    /// Rows in the rebuilt lakehouse.
    pub rows: u64,
    /// Its fingerprint there.
    pub fingerprint: String,
    /// Whether the published table has the same rows and fingerprint.
    pub same: bool,
}

/// What a drill did and found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DrillReport {
    /// When it started.
    pub started_at: Timestamp,
    /// Objects restored from the bucket.
    pub restored: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Releases in the rebuilt lakehouse.
    pub releases: u64,
    /// Each table compared.
    pub tables: Vec<TableCheck>,
    /// Everything that differs; empty: the backup restores to the same lakehouse.
    pub differences: Vec<Difference>,
    /// Wall time, in milliseconds.
    pub millis: u64,
}

impl DrillReport {
    /// Whether nothing differs.
    pub fn is_ok(&self) -> bool {
        self.differences.is_empty()
    }
}

/// The last drill, as `.materia/drill.json` keeps it.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// assert!(materia_core::drill::LastDrill::load(dir.path())?.is_none());
/// # Ok::<(), materia_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastDrill {
    /// When it started.
    pub at: Timestamp,
    /// Whether nothing differed.
    pub ok: bool,
    /// Objects restored.
    pub restored: u64,
    /// How many differences.
    pub differences: u64,
    /// The first few, to say what went wrong.
    pub first: Vec<Difference>,
    /// Wall time, in milliseconds.
    pub millis: u64,
}

impl LastDrill {
    /// Reads the record of the landing zone at `landing_root`; `None` before
    /// the first drill.
    pub fn load(landing_root: impl AsRef<Path>) -> Result<Option<LastDrill>> {
        durable::read_json(&MetaDir::of(landing_root).drill(), "a drill record")
    }

    fn save(&self, landing: &LandingStore) -> Result<()> {
        durable::replace_json(&landing.meta().drill(), self)
    }
}

/// Restores `mirror`'s bucket into a temporary directory, checks it against
/// `landing`, rebuilds the lakehouse from it and compares that with the
/// published one. Differences are in the report (an error is a drill that
/// could not run); the outcome is recorded for `materia status`.
///
/// ```no_run
/// # fn main() -> materia_core::Result<()> {
/// use materia_core::drill::{DrillOptions, drill};
/// use materia_core::landing::LandingStore;
/// use materia_core::mirror::{Mirror, MirrorOptions};
/// let store = LandingStore::open("/data/materia/landing")?;
/// let mirror = Mirror::new(MirrorOptions::new("s3://materia-raw/landing"))?;
/// let report = drill(&mirror, &store, &DrillOptions::new("/data/materia/lakehouse.duckdb"))?;
/// for d in &report.differences {
///     eprintln!("DIFFERENT {d}");
/// }
/// # Ok(()) }
/// ```
pub fn drill(
    mirror: &Mirror,
    landing: &LandingStore,
    options: &DrillOptions,
) -> Result<DrillReport> {
    let started = Instant::now();
    let started_at = Timestamp::now();
    std::fs::create_dir_all(&options.work_dir).at(&options.work_dir)?;
    match sweep_stale_work_dirs(&options.work_dir) {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "removed the work directories of killed drills"),
        Err(e) => tracing::warn!("cannot sweep the work directories of killed drills: {e}"),
    }
    let work = tempfile::Builder::new()
        .prefix(WORK_PREFIX)
        .tempdir_in(&options.work_dir)
        .at(&options.work_dir)?;
    // Held while the drill runs: a drill starting meanwhile leaves this alone.
    let _running = LockFile::open(&work.path().join(WORK_LOCK), "a running drill")?
        .try_hold("a new directory's lock cannot be busy")?;
    let restored_store = LandingStore::open(work.path().join("landing"))?;
    let restore = mirror.restore(&restored_store)?;
    let mut differences: Vec<Difference> = restore
        .refused
        .iter()
        .map(|r| Difference {
            subject: r.object.clone(),
            reason: format!("refused by restore: {}", r.reason),
        })
        .collect();
    differences.extend(compare_files(landing, &restored_store)?);

    let rebuilt = work.path().join("lakehouse.duckdb");
    let mut transform_options = TransformOptions::new(&rebuilt);
    transform_options.memory_limit = options.memory_limit.clone();
    transform_options.models = options.models.clone();
    transform_options.tables = options.tables.clone();
    let built = transform(&restored_store, &transform_options)?;
    let (tables, lake_differences) = compare_lakehouses(&options.duckdb_path, &rebuilt)?;
    differences.extend(lake_differences);

    let report = DrillReport {
        started_at,
        restored: restore.downloaded,
        bytes: restore.bytes,
        releases: built.releases_total,
        tables,
        differences,
        millis: started.elapsed().as_millis() as u64,
    };
    LastDrill {
        at: started_at,
        ok: report.is_ok(),
        restored: report.restored,
        differences: report.differences.len() as u64,
        first: report.differences.iter().take(5).cloned().collect(),
        millis: report.millis,
    }
    .save(landing)?;
    Ok(report)
}

/// Removes the work directories of drills that were killed, in `work_dir`;
/// returns how many. Only real directories named `materia-drill-*` and owned
/// by this user count (a symlink is never followed, nor removed), and of those
/// only the stale: their lock free and unchanged for 10 minutes, or without
/// a lock (an earlier version's) and unchanged for 24 hours — a running
/// drill's directory is left alone. One that cannot be removed is logged and
/// left.
pub fn sweep_stale_work_dirs(work_dir: &Path) -> Result<u64> {
    let mut removed = 0;
    for entry in std::fs::read_dir(work_dir).at(work_dir)? {
        let path = entry.at(work_dir)?.path();
        let named = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(WORK_PREFIX));
        if !named {
            continue;
        }
        match remove_if_stale(&path) {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!("a killed drill's directory is left: {e}"),
        }
    }
    Ok(removed)
}

/// Removes `path` when it is a stale drill directory (see
/// [`sweep_stale_work_dirs`]), holding its lock meanwhile; whether it did.
fn remove_if_stale(path: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).at(path),
    };
    if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() {
        return Ok(false);
    }
    let unchanged = meta
        .modified()
        .at(path)?
        .elapsed()
        .unwrap_or(Duration::ZERO);
    let lock_path = path.join(WORK_LOCK);
    // Held until the directory is gone.
    let _lock = match durable::open_regular(&lock_path) {
        Ok(lock) => match lock.try_lock() {
            Ok(()) if unchanged >= FREE_LOCK_STALE_AFTER => Some(lock),
            Ok(()) | Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
            Err(std::fs::TryLockError::Error(e)) => return Err(e).at(&lock_path),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if unchanged < UNLOCKED_STALE_AFTER {
                return Ok(false);
            }
            None
        }
        Err(e) => return Err(e).at(&lock_path),
    };
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(true),
        // Another drill swept it first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).at(path),
    }
}

/// Every landed file must come back under its key with the same bytes, and
/// nothing else may.
fn compare_files(landing: &LandingStore, restored: &LandingStore) -> Result<Vec<Difference>> {
    let here: BTreeMap<String, Sha256Digest> = landing
        .list()
        .into_iter()
        .map(|e| Ok((e.key.to_string(), file_sha256(landing, &e)?)))
        .collect::<Result<_>>()?;
    let back: BTreeMap<String, Sha256Digest> = restored
        .list()
        .into_iter()
        .map(|e| Ok((e.key.to_string(), file_sha256(restored, &e)?)))
        .collect::<Result<_>>()?;
    let mut differences = Vec::new();
    for (key, sha) in &here {
        let reason = match back.get(key) {
            None => "landed here, not restored from the bucket".to_owned(),
            Some(other) if other != sha => {
                format!("the bucket's copy has SHA-256 {other}, the landed file {sha}")
            }
            Some(_) => continue,
        };
        differences.push(Difference {
            subject: key.clone(),
            reason,
        });
    }
    for key in back.keys().filter(|k| !here.contains_key(*k)) {
        differences.push(Difference {
            subject: key.clone(),
            reason: "in the bucket, not landed here".into(),
        });
    }
    for bad in restored.verify()?.bad {
        differences.push(Difference {
            subject: bad
                .key
                .map_or_else(|| bad.path.display().to_string(), |k| k.to_string()),
            reason: format!("restored copy fails verify: {}", bad.problem),
        });
    }
    Ok(differences)
}

/// The recorded SHA-256 of a landed file, or (a file put in place by hand) its
/// bytes' SHA-256.
fn file_sha256(store: &LandingStore, entry: &crate::landing::Entry) -> Result<Sha256Digest> {
    if let Some(release) = &entry.release {
        return Ok(release.file_sha256);
    }
    let reader = store.get(&entry.key)?;
    let (digest, _) = Sha256Digest::of_reader(reader).at(store.path_of(&entry.key))?;
    Ok(digest)
}

/// The rebuilt lakehouse's releases and tables against the published one's.
fn compare_lakehouses(
    published: &Path,
    rebuilt: &Path,
) -> Result<(Vec<TableCheck>, Vec<Difference>)> {
    let mut differences = Vec::new();
    if !published.exists() {
        differences.push(Difference {
            subject: published.display().to_string(),
            reason: "no published lakehouse to compare with".into(),
        });
        return Ok((Vec::new(), differences));
    }
    let theirs = Lakehouse::open_read_only(published)?;
    let ours = Lakehouse::open_read_only(rebuilt)?;
    let (their_keys, our_keys) = (theirs.loaded_keys()?, ours.loaded_keys()?);
    for key in their_keys.difference(&our_keys) {
        differences.push(Difference {
            subject: format!("release {key}"),
            reason: "in the published lakehouse, not in the one rebuilt from the bucket".into(),
        });
    }
    for key in our_keys.difference(&their_keys) {
        differences.push(Difference {
            subject: format!("release {key}"),
            reason: "rebuilt from the bucket, not in the published lakehouse".into(),
        });
    }
    let their_tables = fingerprints(&theirs)?;
    let our_tables = fingerprints(&ours)?;
    let names: BTreeSet<&String> = their_tables.keys().chain(our_tables.keys()).collect();
    let mut tables = Vec::new();
    for name in names {
        match (our_tables.get(name), their_tables.get(name)) {
            (Some(ours), Some(theirs)) => {
                let same = ours == theirs;
                if !same {
                    differences.push(Difference {
                        subject: format!("table {name}"),
                        reason: format!(
                            "published: {} rows, fingerprint {}; rebuilt: {} rows, fingerprint {}",
                            theirs.0, theirs.1, ours.0, ours.1
                        ),
                    });
                }
                tables.push(TableCheck {
                    table: name.clone(),
                    rows: ours.0,
                    fingerprint: ours.1.clone(),
                    same,
                });
            }
            (None, _) => differences.push(Difference {
                subject: format!("table {name}"),
                reason: "in the published lakehouse only".into(),
            }),
            (_, None) => differences.push(Difference {
                subject: format!("table {name}"),
                reason: "in the rebuilt lakehouse only".into(),
            }),
        }
    }
    Ok((tables, differences))
}

/// Row count and fingerprint of every table in `raw` and `serving`.
fn fingerprints(lake: &Lakehouse) -> Result<BTreeMap<String, (u64, String)>> {
    let conn = lake.connection();
    let fail = |e: duckdb::Error| Error::Lakehouse {
        path: lake.path().to_path_buf(),
        reason: duckdb_message(&e),
        source: duckdb_source(e),
    };
    let mut stmt = conn
        .prepare(
            "SELECT table_schema, table_name, column_name, data_type \
             FROM information_schema.columns \
             WHERE table_schema IN ('raw', 'serving') \
             ORDER BY table_schema, table_name, ordinal_position",
        )
        .map_err(fail)?;
    let mut columns: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .map_err(fail)?;
    for row in rows {
        let (schema, table, column, data_type) = row.map_err(fail)?;
        columns
            .entry((schema, table))
            .or_default()
            .push((column, data_type));
    }
    let mut out = BTreeMap::new();
    for ((schema, table), cols) in columns {
        let sql = fingerprint_sql(&schema, &table, &cols);
        let (rows, sum): (i64, String) = conn
            .query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(fail)?;
        out.insert(format!("{schema}.{table}"), (rows as u64, sum));
    }
    Ok(out)
}

/// `SELECT count(*), sum(hash(row))` over a table's data columns.
fn fingerprint_sql(schema: &str, table: &str, columns: &[(String, String)]) -> String {
    let mut join = "";
    let mut exprs = Vec::new();
    for (column, data_type) in columns {
        if BUILD_TIME_COLUMNS.contains(&column.as_str())
            || CIRCUMSTANTIAL_COLUMNS.contains(&(schema, table, column.as_str()))
        {
            continue;
        }
        if column == "release_id" {
            join = " LEFT JOIN raw.releases AS _r ON _r.release_id = t.release_id";
            exprs.push("_r.landing_key".to_owned());
        } else if matches!(data_type.as_str(), "DOUBLE" | "FLOAT" | "REAL") {
            exprs.push(format!("format('{{:.12g}}', t.{})", quote(column)));
        } else {
            exprs.push(format!("t.{}", quote(column)));
        }
    }
    if exprs.is_empty() {
        exprs.push("0".into());
    }
    format!(
        "SELECT count(*), coalesce(sum(hash({})::HUGEINT), 0)::VARCHAR FROM {}.{} AS t{join}",
        exprs.join(", "),
        quote(schema),
        quote(table)
    )
}

/// A DuckDB identifier, quoted.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_skips_build_times_and_maps_release_ids() {
        let cols = [
            ("release_id", "INTEGER"),
            ("value", "DOUBLE"),
            ("loaded_at", "TIMESTAMP WITH TIME ZONE"),
            ("odd\"name", "VARCHAR"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()));
        let sql = fingerprint_sql("raw", "psd", &cols);
        assert_eq!(
            sql,
            "SELECT count(*), coalesce(sum(hash(_r.landing_key, format('{:.12g}', t.\"value\"), \
             t.\"odd\"\"name\")::HUGEINT), 0)::VARCHAR FROM \"raw\".\"psd\" AS t \
             LEFT JOIN raw.releases AS _r ON _r.release_id = t.release_id"
        );
    }

    #[test]
    fn a_quarantine_reason_is_not_fingerprinted() {
        let cols = [("landing_key", "VARCHAR"), ("reason", "VARCHAR")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()));
        let sql = fingerprint_sql("raw", "rejected", &cols);
        assert!(sql.contains("hash(t.\"landing_key\")"), "{sql}");
        assert!(!sql.contains("reason"), "{sql}");
        // Elsewhere a column named `reason` is data.
        assert!(fingerprint_sql("serving", "x", &cols).contains("t.\"reason\""));
    }
}
