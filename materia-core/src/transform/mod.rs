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
//!   declaration (`declared/`).
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
//!
//! Layout: `declared/` generates what each declared table needs (its
//! history tables, its typed load, its serving tables); `models.rs` parses
//! and orders the SQL models (built-in and the caller's); `intake.rs` checks
//! a landing file before it is loaded; `load.rs` loads releases with the
//! generated statements, binding what varies per release; `history.rs` owns
//! the history database; `publish.rs` the two slots; `serving.rs` builds a
//! slot with the `table` and `view` models and the audits (`audit.rs` runs
//! one); `lakehouse.rs` and `readers.rs`
//! read the published file; `rows.rs` renders query results; `engine.rs`,
//! `files.rs` and `report.rs` hold the build's DuckDB helpers, its files and
//! what it reports.

mod audit;
mod declared;
mod engine;
mod files;
mod history;
mod intake;
mod lakehouse;
mod load;
mod models;
mod publish;
mod readers;
mod report;
pub mod rows;
mod serving;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use duckdb::Connection;

pub use declared::generated_sql;
pub use duckdb;
pub use lakehouse::{Balance, Lakehouse, ReadLimits, Revision};
pub use models::{Model, Severity};
pub use readers::{Readers, Snapshot};
pub(crate) use readers::{build_id, stat_published};
pub use report::{AuditFinding, Rejected, Step, StepMode, TransformReport};
pub use rows::{OrderedRows, Rows};
pub(crate) use rows::{quoted_ident, quoted_name};

use declared::Declared;
use engine::{duck, engine};
use files::{absolute, build_path, create_dir, remove_path, remove_stale_builds, with_suffix};
use history::History;

use crate::dataset::TableSpec;
use crate::error::Result;
use crate::landing::durable::LockFile;
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
    /// Show a bar over the new releases on stderr (the CLI sets it when
    /// stderr is a terminal); a line per release is logged at info either way.
    pub progress: bool,
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
            progress: false,
        }
    }
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
    create_dir(target.parent().unwrap_or(Path::new("/")))?;
    let lock_path = with_suffix(&target, ".lock");
    // One build at a time: a second one waits for the first.
    let _lock = LockFile::open(&lock_path, "another transform of this lakehouse")?.hold()?;
    remove_stale_builds(&target)?;

    let declared = Declared::new(&options.tables);
    let models = models::ordered(declared.models.clone(), &options.models)?;
    // A slot written with another storage version is built afresh too.
    let models_print = format!(
        "{}/{}",
        declared.models_fingerprint(&models),
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
        declared: &declared,
        models: &models,
        models_print: &models_print,
        storage_version: &options.storage_version,
        progress: options.progress,
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

/// What a build loads and runs.
struct Plan<'a> {
    /// The declared tables, by dataset.
    tables: &'a BTreeMap<String, TableSpec>,
    /// What they generate: their loads, and the declarations' fingerprint (a
    /// history loaded under others is rebuilt).
    declared: &'a Declared,
    /// Every model, in run order.
    models: &'a [models::Model],
    /// The models' fingerprint (a slot built with others is built afresh).
    models_print: &'a str,
    /// The published file's DuckDB storage version.
    storage_version: &'a str,
    /// A bar over the new releases (`TransformOptions::progress`).
    progress: bool,
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
    let fingerprint = &plan.declared.fingerprint;
    let mut resets = 0;
    let history = loop {
        let Some(history) = History::attach(conn, &history_path, plan.models, fingerprint)? else {
            resets += 1;
            continue;
        };
        let new = new_files(store, &history, plan.tables)?;
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
        let mut progress = load::Progress::new(new.values().map(Vec::len).sum(), plan.progress);
        for (dataset, entries) in new {
            let load = (&plan.tables[dataset], &plan.declared.loads[dataset]);
            load::load_dataset(store, &history, load, entries, report, &mut progress)?;
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

/// The landing files of each declared dataset that `history` holds neither
/// loaded nor rejected, in publication order (year, month, landing time).
fn new_files<'t>(
    store: &LandingStore,
    history: &History<'_>,
    tables: &'t BTreeMap<String, TableSpec>,
) -> Result<BTreeMap<&'t str, Vec<Entry>>> {
    let known: HashSet<String> = history.known_keys()?.into_iter().collect();
    let mut new: BTreeMap<&str, Vec<Entry>> = BTreeMap::new();
    for e in store.list() {
        if let Some((name, _)) = tables.get_key_value(e.key.dataset.as_str())
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
    Ok(new)
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
