//! Transform: the landing zone into one DuckDB lakehouse that readers never wait for.
//!
//! A build:
//! 1. takes `{DUCKDB_PATH}.lock` (one transform at a time) and removes build files
//!    left by a killed transform;
//! 2. asks the published lakehouse (read-only) which landing files it holds
//!    (`raw.releases`, the ledger of loads); with nothing new it stops there;
//! 3. checks each new landing file end to end (gzip, recorded hashes, CSV header):
//!    a bad file fails the build, naming it — never skipped;
//! 4. copies the published file aside (`.{name}.build-*` in the same directory)
//!    and, in one transaction, appends only the new releases to `raw.*`
//!    (DuckDB's own CSV reader, explicit types) and rebuilds the `serving.*`
//!    tables from the models in `materia-core/models/`;
//! 5. commits and runs the audits on the build: an `error` audit fails the build
//!    and the build file is discarded;
//! 6. `CHECKPOINT`s and closes (no WAL left), fsyncs, renames over
//!    `DUCKDB_PATH`, fsyncs the directory.
//!
//! The published file is never opened for writing, so the web app's read-only
//! handle never conflicts; a reader that has it open keeps its snapshot, new opens
//! see the new build. A failure or a kill at any point leaves it as it was.

mod lakehouse;
mod models;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use duckdb::{Config, Connection};
use serde::Serialize;

pub use duckdb;
pub use lakehouse::{Balance, Lakehouse, Revision};
pub use models::Severity;

use crate::csv::{PSD_COLUMNS, split_header};
use crate::error::{Error, IoContext, Result};
use crate::landing::durable::{self, LockFile};
use crate::landing::{Dataset, Entry, LandingKey, LandingStore};

/// Where and how to build.
///
/// ```
/// let options = materia_core::transform::TransformOptions::new("./data/lakehouse.duckdb");
/// assert_eq!(options.memory_limit, "2GB");
/// ```
#[derive(Clone, Debug)]
pub struct TransformOptions {
    /// The published lakehouse (`DUCKDB_PATH`).
    pub duckdb_path: PathBuf,
    /// DuckDB's `memory_limit` for the build (set explicitly, never DuckDB's default).
    pub memory_limit: String,
    /// DuckDB's worker threads (default: one per core).
    pub threads: usize,
}

impl TransformOptions {
    /// Defaults for building `duckdb_path`.
    pub fn new(duckdb_path: impl Into<PathBuf>) -> Self {
        TransformOptions {
            duckdb_path: duckdb_path.into(),
            memory_limit: "2GB".into(),
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// An audit that found offending rows (a warning; errors fail the build).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditFinding {
    /// Error or warning.
    pub severity: Severity,
    /// What the audit checks.
    pub audit: String,
    /// Offending rows.
    pub rows: u64,
}

/// What a transform did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TransformReport {
    /// New landing files loaded by this build.
    pub releases_loaded: u64,
    /// Rows appended to `raw.psd`.
    pub rows_loaded: u64,
    /// Releases in the lakehouse after the build.
    pub releases_total: u64,
    /// The published lakehouse; `None` when there was nothing new to publish.
    pub published: Option<PathBuf>,
    /// Landing files this build found unloadable and quarantined: recorded in
    /// `raw.rejected` and skipped by every later build.
    pub rejected: Vec<Rejected>,
    /// Warnings from the audits.
    pub warnings: Vec<AuditFinding>,
    /// What each model did and how long it took, in run order.
    pub steps: Vec<Step>,
    /// Wall time of the build, in milliseconds.
    pub millis: u64,
}

/// A landing file that cannot be loaded, and why.
///
/// ```
/// let r = materia_core::transform::Rejected { landing_key: "psd/2026/11/x.csv.gzip".into(), reason: "not a PSD CSV".into() };
/// assert_eq!(serde_json::to_value(&r).unwrap()["reason"], "not a PSD CSV");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// The file's landing key.
    pub landing_key: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One model's part of a build.
///
/// ```
/// use materia_core::transform::{Step, StepMode};
/// let step = Step { model: "serving.psd_revisions".into(), mode: StepMode::Append, millis: 12 };
/// assert_eq!(serde_json::to_value(&step).unwrap()["mode"], "append");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The model's name, e.g. `serving.psd_revisions`.
    pub model: String,
    /// What ran.
    pub mode: StepMode,
    /// Wall time, in milliseconds.
    pub millis: u64,
}

/// How a model was brought up to date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StepMode {
    /// An incremental model appended the new releases only.
    Append,
    /// An incremental model was rebuilt over the whole history (first build, or a
    /// release that landed out of order).
    Rebuild,
    /// A `table` model, rebuilt every build.
    Table,
}

/// The dataset the models read.
const PSD: &str = "psd";

/// Whether [`transform`] loads `dataset` into the lakehouse (today: `psd`).
///
/// ```
/// use materia_core::transform::loads;
/// assert!(loads(&"psd".parse()?));
/// assert!(!loads(&"cftc_cot".parse()?));
/// # Ok::<(), materia_core::Error>(())
/// ```
pub fn loads(dataset: &Dataset) -> bool {
    dataset.as_str() == PSD
}

/// Brings `options.duckdb_path` up to date with `store`, loading only the landing
/// files it does not hold yet.
///
/// ```no_run
/// # fn main() -> materia_core::Result<()> {
/// use materia_core::landing::LandingStore;
/// use materia_core::transform::{TransformOptions, transform};
/// let store = LandingStore::open("/data/materia/landing")?;
/// let report = transform(&store, &TransformOptions::new("/data/materia/lakehouse.duckdb"))?;
/// println!("{} releases, {} rows", report.releases_loaded, report.rows_loaded);
/// # Ok(()) }
/// ```
pub fn transform(store: &LandingStore, options: &TransformOptions) -> Result<TransformReport> {
    let started = Instant::now();
    let target = absolute(&options.duckdb_path)?;
    let dir = target.parent().unwrap_or(Path::new("/")).to_path_buf();
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(durable::DIR_MODE)
            .create(&dir)
            .at(&dir)?;
    }
    let lock_path = with_suffix(&target, ".lock");
    // One build at a time: a second one waits for the first.
    let _lock = LockFile::open(&lock_path, "another transform of this lakehouse")?.hold()?;
    remove_stale_builds(&target)?;

    let psd: Dataset = PSD.parse()?;
    let (loaded, rejected_before) = loaded_keys(&target)?;
    let mut new: Vec<Entry> = store
        .list()
        .into_iter()
        .filter(|e| e.key.dataset == psd)
        .filter(|e| {
            let key = e.key.to_string();
            !loaded.contains(&key) && !rejected_before.contains(&key)
        })
        .collect();
    new.sort_by_key(|e| {
        (
            e.key.year,
            e.key.month,
            e.release.as_ref().map(|r| r.landed_at),
        )
    });
    if new.is_empty() && target.exists() {
        tracing::info!(lakehouse = %target.display(), "nothing new to load");
        return Ok(TransformReport {
            releases_loaded: 0,
            rows_loaded: 0,
            releases_total: loaded.len() as u64,
            published: None,
            rejected: Vec::new(),
            warnings: Vec::new(),
            steps: Vec::new(),
            millis: started.elapsed().as_millis() as u64,
        });
    }
    let checking = Instant::now();
    let mut rejected = Vec::new();
    let mut good = Vec::new();
    for entry in new {
        match landing_file_problem(store, &entry)? {
            Some(reason) => rejected.push(reject(entry, reason)),
            None => good.push(entry),
        }
    }
    tracing::debug!(
        files = good.len() + rejected.len(),
        millis = checking.elapsed().as_millis() as u64,
        "landing files checked"
    );

    let build = build_path(&target);
    let report = loop {
        match build_into(store, options, &target, &build, &good, &rejected) {
            Ok(report) => break report,
            Err(failure) => {
                remove_build(&build);
                let Failure::Load(error) = failure else {
                    return Err(failure.into_error());
                };
                // One file DuckDB cannot read fails the load of all of them:
                // find it (them), quarantine it, and build the rest.
                let culprits = probe_each(store, &good)?;
                if culprits.is_empty() {
                    return Err(error);
                }
                good.retain(|e| !culprits.iter().any(|(key, _)| key == &e.key));
                for (key, reason) in culprits {
                    rejected.push(Rejected {
                        landing_key: key.to_string(),
                        reason,
                    });
                }
            }
        }
    };
    for r in &report.rejected {
        tracing::error!(file = %r.landing_key, "quarantined: {}", r.reason);
    }
    publish(&build, &target)?;
    tracing::info!(
        lakehouse = %target.display(),
        releases = report.releases_loaded,
        rows = report.rows_loaded,
        "published"
    );
    Ok(TransformReport {
        published: Some(target),
        millis: started.elapsed().as_millis() as u64,
        ..report
    })
}

fn reject(entry: Entry, reason: String) -> Rejected {
    Rejected {
        landing_key: entry.key.to_string(),
        reason,
    }
}

/// Removes a failed build's file, WAL and spill directory.
fn remove_build(build: &Path) {
    for leftover in [
        build.to_path_buf(),
        with_suffix(build, ".wal"),
        with_suffix(build, ".tmp"),
    ] {
        if let Err(e) = remove_path(&leftover) {
            tracing::warn!("{e}");
        }
    }
}

/// How a build failed: loading the new files (one of them may be unreadable),
/// or anything else.
enum Failure {
    Load(Error),
    Other(Error),
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Failure::Load(e) | Failure::Other(e) => e,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Other(e)
    }
}

/// Loads each file alone into a scratch in-memory database with the real load
/// models, and returns those DuckDB refuses as data (not for memory or I/O
/// reasons), with DuckDB's words.
fn probe_each(store: &LandingStore, files: &[Entry]) -> Result<Vec<(LandingKey, String)>> {
    let models = models::ordered()?;
    let mut culprits = Vec::new();
    for entry in files {
        let conn = Connection::open_in_memory().map_err(duck("probe"))?;
        for m in models.iter().filter(|m| m.kind == models::Kind::Setup) {
            conn.execute_batch(m.sql).map_err(duck(&m.name))?;
        }
        conn.execute_batch("CREATE TEMP TABLE _new_files (path VARCHAR, release_id INTEGER)")
            .map_err(duck("_new_files"))?;
        let path = store.path_of(&entry.key).to_string_lossy().into_owned();
        conn.execute("INSERT INTO _new_files VALUES (?, 1)", [&path])
            .map_err(duck("_new_files"))?;
        for m in models
            .iter()
            .filter(|m| m.kind == models::Kind::Incremental && m.sql.contains("{{new_files}}"))
        {
            let sql = m
                .sections()?
                .append
                .replace("{{new_files}}", &format!("[{}]", sql_string(&path)))
                .replace("{{first_new_release}}", "1");
            if let Err(e) = conn.execute_batch(&sql) {
                let text = e.to_string();
                if is_data_error(&text) {
                    culprits.push((entry.key.clone(), format!("DuckDB cannot load it: {text}")));
                    break;
                }
            }
        }
    }
    Ok(culprits)
}

/// Whether a DuckDB error is about the data read (so retrying cannot help),
/// not memory, interruption or the machine.
fn is_data_error(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["invalid input error", "conversion error", "csv error"]
        .iter()
        .any(|kind| lower.contains(kind))
        || (lower.contains("io error") && lower.contains("gzip"))
}

/// What keeps a landing file from being loaded, if anything: it must be sound
/// (gzip, recorded hashes) and have the PSD header. I/O errors are errors, not
/// reasons to quarantine.
fn landing_file_problem(store: &LandingStore, entry: &Entry) -> Result<Option<String>> {
    let path = store.path_of(&entry.key);
    if let Some(problem) = store.check(&entry.key)? {
        return Ok(Some(problem));
    }
    let mut reader = std::io::BufReader::new(store.get(&entry.key)?);
    let mut line = Vec::new();
    std::io::BufRead::read_until(&mut reader, b'\n', &mut line).at(&path)?;
    let found = split_header(line.strip_suffix(b"\n").unwrap_or(&line));
    if found != PSD_COLUMNS {
        let shown: String = String::from_utf8_lossy(&line).chars().take(120).collect();
        return Ok(Some(format!(
            "not a PSD CSV: expected the header {}, found {shown:?}",
            PSD_COLUMNS.join(",")
        )));
    }
    Ok(None)
}

fn duck(context: &str) -> impl Fn(duckdb::Error) -> Error + '_ {
    move |e| Error::Transform {
        reason: format!("{context}: {e}"),
        source: Some(Box::new(e)),
    }
}

fn build_into(
    store: &LandingStore,
    options: &TransformOptions,
    target: &Path,
    build: &Path,
    new: &[Entry],
    rejected: &[Rejected],
) -> Result<TransformReport, Failure> {
    if target.exists() {
        fs::copy(target, build).at(build)?;
    }
    let config = Config::default()
        .max_memory(&options.memory_limit)
        .and_then(|c| c.threads(options.threads as i64))
        .map_err(duck("configuring DuckDB"))?;
    let conn = Connection::open_with_flags(build, config).map_err(duck("opening the build"))?;
    let models = models::ordered()?;
    let mut warnings = Vec::new();
    let mut steps = Vec::new();
    let (mut rows_loaded, releases_total);
    conn.execute_batch("BEGIN TRANSACTION")
        .map_err(duck("BEGIN"))?;
    {
        for m in models.iter().filter(|m| m.kind == models::Kind::Setup) {
            conn.execute_batch(m.sql).map_err(duck(&m.name))?;
        }
        conn.execute_batch("CREATE TEMP TABLE _new_files (path VARCHAR, release_id INTEGER)")
            .map_err(duck("_new_files"))?;
        let first_id: i64 = conn
            .query_row(
                "SELECT coalesce(max(release_id), 0) + 1 FROM raw.releases",
                [],
                |r| r.get(0),
            )
            .map_err(duck("raw.releases"))?;
        for (i, entry) in new.iter().enumerate() {
            let id = first_id + i as i64;
            let path = store.path_of(&entry.key);
            let r = entry.release.as_ref();
            conn.execute(
                "INSERT INTO raw.releases VALUES (?, ?, ?, ?, ?, ?, ?::TIMESTAMPTZ, ?, 0, now())",
                duckdb::params![
                    id,
                    entry.key.dataset.as_str(),
                    entry.key.etag.as_str(),
                    entry.key.to_string(),
                    entry.key.year.get(),
                    entry.key.month.get(),
                    r.map(|r| r.landed_at.to_string()),
                    r.map(|r| r.content_sha256.to_string()),
                ],
            )
            .map_err(duck("raw.releases"))?;
            conn.execute(
                "INSERT INTO _new_files VALUES (?, ?)",
                duckdb::params![path.to_string_lossy(), id],
            )
            .map_err(duck("_new_files"))?;
        }
        for r in rejected {
            conn.execute(
                "INSERT INTO raw.rejected VALUES (?, ?, now())",
                duckdb::params![r.landing_key, r.reason],
            )
            .map_err(duck("raw.rejected"))?;
        }
        let files: Vec<String> = new
            .iter()
            .map(|e| sql_string(&store.path_of(&e.key).to_string_lossy()))
            .collect();
        let file_list = format!("[{}]", files.join(", "));
        rows_loaded = 0;
        for m in &models {
            let step = Instant::now();
            let mode = match m.kind {
                models::Kind::Setup | models::Kind::Audit => None,
                // Never call read_csv with an empty list.
                models::Kind::Incremental if new.is_empty() => None,
                models::Kind::Incremental => {
                    let fill = |sql: &str| {
                        sql.replace("{{new_files}}", &file_list)
                            .replace("{{first_new_release}}", &first_id.to_string())
                    };
                    let sections = m.sections()?;
                    let rebuild = match sections.rebuild_if {
                        Some(query) => conn
                            .query_row(&fill(query), [], |r| r.get::<_, bool>(0))
                            .map_err(duck(&m.name))?,
                        None => false,
                    };
                    let sql = match sections.rebuild {
                        Some(full) if rebuild => full,
                        _ => sections.append,
                    };
                    let before = count(&conn, "SELECT count(*) FROM raw.psd")?;
                    let ran = conn.execute_batch(&fill(sql)).map_err(duck(&m.name));
                    if sql.contains("{{new_files}}") {
                        ran.map_err(Failure::Load)?;
                    } else {
                        ran?;
                    }
                    rows_loaded += count(&conn, "SELECT count(*) FROM raw.psd")? - before;
                    Some(if rebuild {
                        StepMode::Rebuild
                    } else {
                        StepMode::Append
                    })
                }
                models::Kind::Table => {
                    conn.execute_batch(m.sql).map_err(duck(&m.name))?;
                    Some(StepMode::Table)
                }
            };
            // Audits run after COMMIT (below): checking committed data is far
            // faster than transaction-local data, and the build file is private.
            if let Some(mode) = mode {
                let millis = step.elapsed().as_millis() as u64;
                tracing::debug!(model = %m.name, ?mode, millis, "model done");
                steps.push(Step {
                    model: m.name.clone(),
                    mode,
                    millis,
                });
            }
        }
        conn.execute_batch(
            "UPDATE raw.releases SET rows = c.n FROM \
             (SELECT release_id, count(*) AS n FROM raw.psd \
              WHERE release_id IN (SELECT release_id FROM _new_files) GROUP BY release_id) AS c \
             WHERE raw.releases.release_id = c.release_id",
        )
        .map_err(duck("raw.releases rows"))?;
        releases_total = count(&conn, "SELECT count(*) FROM raw.releases")?;
    }
    let step = Instant::now();
    conn.execute_batch("COMMIT").map_err(duck("COMMIT"))?;
    tracing::debug!(millis = step.elapsed().as_millis() as u64, "commit");
    // Audits run on the committed build. A failing `error` audit fails the
    // build; the caller discards the build file, so nothing is published.
    let step = Instant::now();
    for m in models.iter().filter(|m| m.kind == models::Kind::Audit) {
        for audit in models::audits(m)? {
            let rows = count(&conn, &audit.sql)?;
            if rows == 0 {
                continue;
            }
            if audit.severity == Severity::Error {
                return Err(Failure::Other(Error::Transform {
                    reason: format!(
                        "audit failed: {} ({rows} offending rows)",
                        audit.description
                    ),
                    source: None,
                }));
            }
            tracing::warn!(audit = %audit.description, rows, "audit warning");
            warnings.push(AuditFinding {
                severity: audit.severity,
                audit: audit.description,
                rows,
            });
        }
    }
    tracing::debug!(millis = step.elapsed().as_millis() as u64, "audits");
    let step = Instant::now();
    conn.execute_batch("CHECKPOINT")
        .map_err(duck("CHECKPOINT"))?;
    tracing::debug!(millis = step.elapsed().as_millis() as u64, "checkpoint");
    conn.close()
        .map_err(|(_, e)| duck("closing the build")(e))?;
    Ok(TransformReport {
        releases_loaded: new.len() as u64,
        rows_loaded,
        releases_total,
        published: None,
        rejected: rejected.to_vec(),
        warnings,
        steps,
        millis: 0,
    })
}

fn count(conn: &Connection, sql: &str) -> Result<u64> {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
        .map_err(duck(sql.trim()))
}

/// A SQL string literal.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The landing keys the published lakehouse holds, and those it rejected
/// (both empty when there is none).
fn loaded_keys(target: &Path) -> Result<(HashSet<String>, HashSet<String>)> {
    if !target.exists() {
        return Ok(Default::default());
    }
    let lake = Lakehouse::open_read_only(target)?;
    let rejected = lake
        .rejected()?
        .into_iter()
        .map(|r| r.landing_key)
        .collect();
    Ok((lake.loaded_keys()?, rejected))
}

/// Moves the finished build over the published file, durably.
fn publish(build: &Path, target: &Path) -> Result<()> {
    let build_wal = with_suffix(build, ".wal");
    if build_wal.exists() {
        return Err(Error::Transform {
            reason: format!(
                "the build left a WAL ({}) after CHECKPOINT; not publishing",
                build_wal.display()
            ),
            source: None,
        });
    }
    let file = fs::File::open(build).at(build)?;
    // DuckDB creates files with the umask's mode (0644 under 022): make it the
    // store's 0640, keeping anything stricter the umask asked for.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().at(build)?.permissions().mode() & durable::FILE_MODE;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .at(build)?;
    }
    file.sync_all().at(build)?;
    // A WAL beside the target belongs to no build of ours (we never open the
    // published file for writing); DuckDB would try to replay it into the new
    // file and fail. Move it aside, loudly.
    let stale = with_suffix(target, ".wal");
    if stale.exists() {
        let aside = with_suffix(target, &format!(".wal.stale-{}", std::process::id()));
        tracing::warn!(wal = %stale.display(), aside = %aside.display(), "moving a stale WAL aside");
        fs::rename(&stale, &aside).at(&stale)?;
    }
    fs::rename(build, target).at(target)?;
    let dir = target.parent().unwrap_or(Path::new("/"));
    fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn build_prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.build-")
}

fn build_path(target: &Path) -> PathBuf {
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
fn remove_stale_builds(target: &Path) -> Result<()> {
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
fn remove_path(path: &Path) -> Result<()> {
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

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).at(path)
}
