//! Transform: the landing zone into one DuckDB lakehouse that readers never wait for.
//!
//! Beside `DUCKDB_PATH`:
//!
//! - the **history**, `{DUCKDB_PATH}.history` (`history.rs`): private to
//!   transform, written in place. Each release's values are stored once per
//!   change — a row when a value first appears, changes or disappears, with the
//!   releases it holds for — so a day's load costs that release, not the
//!   history, and the file grows with the changes, not with the releases. Each
//!   declared dataset ([`TableSpec`]) has its own tables, generated from its
//!   declaration (`declared.rs`).
//! - the **published lakehouse**, `DUCKDB_PATH`: what readers open, a hard
//!   link to one of two slots, `{DUCKDB_PATH}.a` / `.b` (`publish.rs`). A
//!   build writes the other slot — the build before last — in place (the
//!   history's new changes appended, the release-sized tables rebuilt by the
//!   `table` models), audits it, `CHECKPOINT`s it (no WAL left), fsyncs it and
//!   renames a new link to it over `DUCKDB_PATH`, the directory fsynced. The
//!   published file is never opened for writing, so the web app's read-only
//!   handle never conflicts: a reader that has it open keeps its snapshot, new
//!   opens see the new build. A slot a reader still holds, a first build, or
//!   other models or history, get a fresh file instead.
//!
//! A build takes `{DUCKDB_PATH}.lock` (one transform at a time), removes what a
//! killed build left, and loads each new landing file — checked end to end
//! first (gzip, recorded hashes, its dataset's columns) — in a history
//! transaction of its own; a file that cannot be loaded (bad gzip or columns,
//! rows DuckDB cannot read, a key twice or empty) is quarantined in
//! `raw.rejected` with its reason and skipped by every later build. Then, when
//! the history moved on from what is published (`materia.build`: schema
//! version and generation), it publishes.
//!
//! Crash reasoning: a kill or power cut during a load rolls that release back
//! (DuckDB's WAL; the commit is durable); during the publish it leaves the slot
//! being written (never the published one: DuckDB's WAL keeps it consistent
//! and the next build redoes it) or a fresh build file that the next build
//! removes, and `DUCKDB_PATH` as it was. A history committed but not yet
//! published is published by the next build, even with nothing new. The
//! published file is always a complete build, old or new. The history is a
//! cache of the landing zone: missing, unreadable, of another schema version
//! or other dataset declarations, or with a release landed out of publication
//! order (an archive backfill), it is rebuilt from the landing files — so a
//! lakehouse from an older release of Materia upgrades itself.

mod declared;
mod history;
mod lakehouse;
mod models;
mod publish;
mod readers;
pub mod rows;
mod serving;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use duckdb::{Config, Connection};
use serde::Serialize;

pub use duckdb;
pub use lakehouse::{Balance, Lakehouse, ReadLimits, Revision};
pub use models::{Model, Severity};
pub use readers::{Readers, Snapshot};
pub(crate) use readers::{build_id, stat_published};
pub use rows::{OrderedRows, Rows};
pub(crate) use rows::{quoted_ident, quoted_name};

use history::{History, Loaded};

use crate::csv::split_header;
use crate::dataset::TableSpec;
use crate::error::{Error, IoContext, Result};
use crate::landing::durable::{self, LockFile};
use crate::landing::{Entry, LandingStore};

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
    /// The caller's models (`table` and `audit`), run after the built-in ones
    /// (see [`Model`]).
    pub models: Vec<Model>,
    /// The datasets loaded, by name, with their tables (default: the built-in
    /// `psd` and `cot`; `Config::tables` gives a config's).
    pub tables: BTreeMap<String, TableSpec>,
    /// The DuckDB storage version the published file is written with: the
    /// oldest DuckDB that must open it (default [`STORAGE_VERSION`]).
    pub storage_version: String,
}

/// The storage version of the published file by default: DuckDB 1.4 and
/// later open it (Python `duckdb` 1.4/1.5, Node's 1.4, the 1.x CLI). DuckDB
/// 2.0's own format (`v2.0.0`) would lock every 1.x client out.
pub const STORAGE_VERSION: &str = "v1.4.0";

impl TransformOptions {
    /// Defaults for building `duckdb_path`.
    pub fn new(duckdb_path: impl Into<PathBuf>) -> Self {
        TransformOptions {
            duckdb_path: duckdb_path.into(),
            memory_limit: "2GB".into(),
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            models: Vec::new(),
            tables: crate::dataset::Config::default().tables(),
            storage_version: STORAGE_VERSION.into(),
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
    /// Rows read from the new releases.
    pub rows_loaded: u64,
    /// Rows written to the change history (values that appeared, changed or
    /// disappeared).
    pub changes: u64,
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
/// let r = materia_core::transform::Rejected { landing_key: "psd/2026/11/x.csv.gzip".into(), reason: "bad gzip".into() };
/// assert_eq!(serde_json::to_value(&r).unwrap()["reason"], "bad gzip");
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

/// How much CSV a first build loads at once (see `history::load_all`).
const BATCH_CONTENT_BYTES: u64 = 512 << 20;

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

    let models = models::ordered(&options.tables, &options.models)?;
    let fingerprint = declared::fingerprint(&options.tables);
    // A slot written with another storage version is built afresh too.
    let models_print = format!(
        "{}/{}",
        models::fingerprint(&models),
        options.storage_version
    );
    publish::check_storage_version(&options.storage_version)?;
    let spill = with_suffix(&build_path(&target), ".spill");
    let conn = engine(options, &spill)?;
    let mut report = TransformReport {
        releases_loaded: 0,
        rows_loaded: 0,
        changes: 0,
        releases_total: 0,
        published: None,
        rejected: Vec::new(),
        warnings: Vec::new(),
        steps: Vec::new(),
        millis: 0,
    };
    let plan = Plan {
        tables: &options.tables,
        models: &models,
        fingerprint: &fingerprint,
        models_print: &models_print,
        storage_version: &options.storage_version,
    };
    let outcome = build(store, &conn, &plan, &target, &mut report);
    drop(conn);
    if let Err(e) = remove_path(&spill) {
        tracing::warn!("{e}");
    }
    let publish_now = outcome?;
    for r in &report.rejected {
        tracing::error!(file = %r.landing_key, "quarantined: {}", r.reason);
    }
    if let Some(slot) = publish_now {
        publish::publish(&slot, &target)?;
        tracing::info!(
            lakehouse = %target.display(),
            releases = report.releases_loaded,
            rows = report.rows_loaded,
            changes = report.changes,
            "published"
        );
        report.published = Some(target);
    } else {
        tracing::info!(lakehouse = %target.display(), "nothing new to load");
    }
    report.millis = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// DuckDB for a build: in memory (the files are attached), with the memory
/// limit and threads asked for, spilling to `spill` (a build file: a killed
/// build's is removed by the next).
fn engine(options: &TransformOptions, spill: &Path) -> Result<Connection> {
    let config = Config::default()
        .max_memory(&options.memory_limit)
        .and_then(|c| c.threads(options.threads as i64))
        .map_err(duck("configuring DuckDB"))?;
    let conn = Connection::open_in_memory_with_flags(config).map_err(duck("opening DuckDB"))?;
    conn.execute_batch(&format!(
        "SET temp_directory = {}",
        sql_string(&spill.to_string_lossy())
    ))
    .map_err(duck("temp_directory"))?;
    Ok(conn)
}

/// What a build loads and runs.
struct Plan<'a> {
    /// The declared tables, by dataset.
    tables: &'a BTreeMap<String, TableSpec>,
    /// Every model, in run order.
    models: &'a [models::Model],
    /// The declarations' fingerprint (a history loaded under others is rebuilt).
    fingerprint: &'a str,
    /// The models' fingerprint (a slot built with others is built afresh).
    models_print: &'a str,
    /// The published file's DuckDB storage version.
    storage_version: &'a str,
}

/// Loads the new landing files into the history and, when the history moved on
/// from the published file, builds the next one: returns its slot.
fn build(
    store: &LandingStore,
    conn: &Connection,
    plan: &Plan<'_>,
    target: &Path,
    report: &mut TransformReport,
) -> Result<Option<publish::Slot>> {
    let history_path = history::path_of(target);
    let mut resets = 0;
    let history = loop {
        let Some(history) = History::attach(conn, &history_path, plan.models, plan.fingerprint)?
        else {
            resets += 1;
            continue;
        };
        let known: HashSet<String> = history.known_keys()?.into_iter().collect();
        // The new files of each declared dataset, in publication order.
        let mut new: BTreeMap<&str, Vec<Entry>> = BTreeMap::new();
        for e in store.list() {
            if let Some((name, _)) = plan.tables.get_key_value(e.key.dataset.as_str())
                && !known.contains(&e.key.to_string())
            {
                new.entry(name.as_str()).or_default().push(e);
            }
        }
        for entries in new.values_mut() {
            entries.sort_by_key(|e| {
                (
                    e.key.year,
                    e.key.month,
                    e.release.as_ref().map(|r| r.landed_at),
                )
            });
        }
        let mut out_of_order = None;
        for entries in new.values() {
            if let Some(first) = entries.first()
                && !history.appends(first)?
            {
                out_of_order = Some(first.key.to_string());
            }
        }
        if let Some(first) = out_of_order
            && resets == 0
        {
            tracing::info!(release = %first, "a release landed out of publication order: rebuilding the history");
            history::discard(conn, &history_path)?;
            resets += 1;
            continue;
        }
        for (dataset, entries) in new {
            load_dataset(store, &history, &plan.tables[dataset], entries, report)?;
        }
        break history;
    };
    report.releases_total = history.releases()?;
    let info = history.build_info()?;
    conn.execute_batch("CHECKPOINT history")
        .map_err(duck("CHECKPOINT history"))?;
    if published_build(target).as_ref() == Some(&info) {
        return Ok(None);
    }
    let slot = publish::attach(
        conn,
        target,
        &info.1,
        plan.models_print,
        plan.storage_version,
    )?;
    report.warnings = serving::build(
        conn,
        plan.models,
        plan.models_print,
        &slot,
        &mut report.steps,
    )?;
    Ok(Some(slot))
}

/// Loads one dataset's new files (in publication order) into the history:
/// those that cannot be loaded are quarantined, the others loaded — a first
/// build's first releases at once, up to BATCH_CONTENT_BYTES of CSV (past that
/// DuckDB's window sort spills more than the one-by-one load costs), the rest,
/// or all when that is not possible, one release at a time.
fn load_dataset(
    store: &LandingStore,
    history: &History<'_>,
    table: &TableSpec,
    entries: Vec<Entry>,
    report: &mut TransformReport,
) -> Result<()> {
    let mut good = Vec::new();
    for entry in entries {
        match landing_file_problem(store, &entry, table)? {
            Some(reason) => {
                let rejected = Rejected {
                    landing_key: entry.key.to_string(),
                    reason,
                };
                history.reject(&rejected)?;
                report.rejected.push(rejected);
            }
            None => good.push(entry),
        }
    }
    let mut batch_len = 0;
    let mut content = 0u64;
    for entry in &good {
        content += entry
            .release
            .as_ref()
            .map_or(entry.file_bytes * 8, |r| r.content_bytes);
        if content > BATCH_CONTENT_BYTES {
            break;
        }
        batch_len += 1;
    }
    let mut loaded = Vec::new();
    let mut rest = &good[..];
    if let Some(at_once) = history.load_all(store, &good[..batch_len], &mut report.steps)? {
        loaded = at_once;
        rest = &good[batch_len..];
    }
    for entry in rest {
        loaded.push(history.load(store, entry, &mut report.steps)?);
    }
    for outcome in loaded {
        match outcome {
            Loaded::Rows { rows, changes } => {
                report.releases_loaded += 1;
                report.rows_loaded += rows;
                report.changes += changes;
            }
            Loaded::Rejected(rejected) => report.rejected.push(rejected),
        }
    }
    Ok(())
}

/// The schema version, history id and generation the published file was
/// built from; `None` when there is none, or it predates them, or cannot be read.
fn published_build(target: &Path) -> Option<history::BuildInfo> {
    if !target.exists() {
        return None;
    }
    match Lakehouse::open_read_only(target).and_then(|lake| lake.build_info()) {
        Ok(info) => info,
        Err(e) => {
            tracing::warn!("the published lakehouse will be replaced: {e}");
            None
        }
    }
}

/// Removes a failed build's file and WAL.
fn remove_build(build: &Path) {
    if let Err(e) = remove_with_wal(build) {
        tracing::warn!("{e}");
    }
}

/// Removes a DuckDB file and its WAL, whichever exist.
fn remove_with_wal(path: &Path) -> Result<()> {
    remove_path(path)?;
    remove_path(&with_suffix(path, ".wal"))
}

/// Makes a file DuckDB created (with the umask's mode, 0644 under 022) the
/// store's 0640, keeping anything stricter the umask asked for.
fn restrict_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path).at(path)?.permissions().mode();
    let restricted = mode & durable::FILE_MODE;
    if restricted != mode & 0o7777 {
        fs::set_permissions(path, fs::Permissions::from_mode(restricted)).at(path)?;
    }
    Ok(())
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
/// (gzip, recorded hashes) and have the columns its table declares. I/O errors
/// are errors, not reasons to quarantine.
fn landing_file_problem(
    store: &LandingStore,
    entry: &Entry,
    table: &TableSpec,
) -> Result<Option<String>> {
    let path = store.path_of(&entry.key);
    if let Some(problem) = store.check(&entry.key)? {
        return Ok(Some(problem));
    }
    let mut reader = std::io::BufReader::new(store.get(&entry.key)?);
    let mut line = Vec::new();
    std::io::BufRead::read_until(&mut reader, b'\n', &mut line).at(&path)?;
    let found = split_header(line.strip_suffix(b"\n").unwrap_or(&line));
    let expected = table.header();
    if found == expected {
        return Ok(None);
    }
    Ok(Some(format!(
        "its columns differ from datasets.{}.table: {}",
        entry.key.dataset,
        column_difference(&expected, &found)
    )))
}

/// What differs between the declared columns and a file's header.
///
/// Names are shown with `{:?}` (a hostile header is quoted, never raw), at
/// most 10 of each kind.
fn column_difference(expected: &[String], found: &[String]) -> String {
    let list = |names: Vec<&String>| {
        let shown: Vec<String> = names.iter().take(10).map(|n| format!("{n:?}")).collect();
        let more = names.len().saturating_sub(10);
        if more > 0 {
            format!("{} and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        }
    };
    let missing: Vec<&String> = expected.iter().filter(|c| !found.contains(c)).collect();
    let extra: Vec<&String> = found.iter().filter(|c| !expected.contains(c)).collect();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", list(missing)));
    }
    if !extra.is_empty() {
        parts.push(format!("unexpected {}", list(extra)));
    }
    if parts.is_empty() {
        let at = expected
            .iter()
            .zip(found)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        parts.push(format!(
            "the same columns in another order (column {} is {:?}, declared {:?})",
            at + 1,
            found.get(at).map_or("", String::as_str),
            expected.get(at).map_or("", String::as_str)
        ));
    }
    parts.join("; ")
}

fn duck(context: &str) -> impl Fn(duckdb::Error) -> Error + '_ {
    move |e| Error::Transform {
        reason: format!("{context}: {e}"),
        source: Some(Box::new(e)),
    }
}

/// A SQL string literal.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
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
