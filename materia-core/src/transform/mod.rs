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
//!   another history or storage version, get a fresh file instead.
//!
//! A build takes `{DUCKDB_PATH}.lock` (one transform at a time), removes what a
//! killed build left, and loads each new landing file — checked end to end
//! first (gzip, recorded hashes, its dataset's columns) — in a history
//! transaction of its own; a file that cannot be loaded (bad gzip or columns,
//! rows DuckDB cannot read, a key twice or empty) is quarantined in
//! `raw.rejected` with its reason and skipped by every later build. Then, when
//! the history moved on from what is published (`materia.build`: schema
//! version and generation), or a model, a declaration or the storage version
//! differs from what the published file records (`record.rs`), it publishes
//! (`runs.rs` says which models run, and why). Before anything is written, a
//! build that would leave out a dataset or a caller's model of the published
//! build is refused unless confirmed (`drops.rs`); [`plan`] tells what a
//! build would do, writing nothing (`plan.rs`).
//!
//! Crash reasoning: a kill or power cut during a load rolls that release back
//! (DuckDB's WAL; the commit is durable); during the publish it leaves the slot
//! being written (never the published one: its record was voided before any
//! model ran, so the next build writes that slot afresh) or a fresh build
//! file that the next build removes, and `DUCKDB_PATH` as it was. A history committed but not yet
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
//! the history database; `record.rs` what a build records of its inputs,
//! `runs.rs` which models run and why, `drops.rs` the refusal to drop by
//! omission, `plan.rs` the plan; `publish.rs` the two slots; `serving.rs` builds a
//! slot with the `table` and `view` models and the audits (`audit.rs` runs
//! one); `lakehouse.rs` and `readers.rs`
//! read the published file; `rows.rs` renders query results; `engine.rs`,
//! `files.rs` and `report.rs` hold the build's DuckDB helpers, its files and
//! what it reports.

mod audit;
mod declared;
mod drops;
mod engine;
mod files;
mod history;
mod intake;
mod lakehouse;
mod load;
mod models;
mod plan;
mod publish;
mod readers;
mod record;
mod report;
pub mod rows;
mod runs;
mod serving;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use duckdb::Connection;

pub use declared::{dataset_tables, generated_sql};
pub use drops::{Removal, Vanishing};
pub use duckdb;
pub use lakehouse::{Balance, Lakehouse, ReadLimits, Revision};
pub use models::{Model, Severity};
pub use plan::{BuildPlan, HistoryPlan, ModelPlan, NewReleases, RebuildReason, plan};
pub use readers::{Readers, Snapshot};
pub(crate) use readers::{build_id, stat_published};
pub use record::Sources;
pub use report::{AuditFinding, Rejected, Step, StepMode, TransformReport};
pub use rows::{OrderedRows, Rows};
pub(crate) use rows::{quoted_ident, quoted_name};
pub use runs::RunReason;

use declared::Declared;
use engine::{duck, engine};
use files::{absolute, build_path, create_dir, remove_path, remove_stale_builds, with_suffix};
use history::History;
use record::Record;

use crate::dataset::TableSpec;
use crate::error::Result;
use crate::landing::durable::LockFile;
use crate::landing::{Entry, LandingStore};

/// Where and how to build.
///
/// ```
/// let options = materia_core::transform::TransformOptions::new("./data/lakehouse.duckdb");
/// assert_eq!(options.memory_limit, "2GB");
/// assert!(options.drops.is_empty() && options.select.is_empty() && !options.full_refresh);
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
    /// Where `tables` and `models` came from, recorded in the published file.
    pub sources: Sources,
    /// Datasets and models of the published build that this one may leave
    /// out (`--drop`): any other left out refuses the build.
    pub drops: Vec<Removal>,
    /// Models to rebuild even with nothing new, with every model that depends
    /// on them (`--select`).
    pub select: Vec<String>,
    /// Discard the history and rebuild it, and every model, from the landing
    /// zone into a fresh file (`--full-refresh`).
    pub full_refresh: bool,
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
            sources: Sources::default(),
            drops: Vec::new(),
            select: Vec::new(),
            full_refresh: false,
        }
    }
}

/// Brings `options.duckdb_path` up to date with `store`, loading only the
/// landing files it does not hold yet, and rebuilding what changed since the
/// published build: a model's SQL, a declaration, the storage version (see
/// [`plan`] for what a build would do, without doing it). A build that would
/// leave out a dataset or a caller's model the published build has is
/// refused before anything is written, unless confirmed in `options.drops`.
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

    let inputs = Inputs::new(options)?;
    let published = Published::read(&target);
    // Before anything is written: the history is not discarded either.
    if let Some(record) = &published.record {
        drops::check(record, &inputs.record, &options.drops)?;
    }
    let spill = with_suffix(&build_path(&target), ".spill");
    let conn = engine(options, &spill)?;
    let mut report = TransformReport::default();
    let outcome = build(store, &conn, &inputs, &published, &target, &mut report);
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

/// What a build is made of.
struct Inputs<'a> {
    options: &'a TransformOptions,
    /// What the declared tables generate: their loads, and the declarations'
    /// fingerprint (a history loaded under others is rebuilt).
    declared: Declared,
    /// Every model, in run order.
    models: Vec<Model>,
    /// What the build records in the file it publishes.
    record: Record,
    /// The models `--select` names.
    selected: BTreeSet<String>,
}

impl<'a> Inputs<'a> {
    /// Generates and orders what `options` declare; checks the storage
    /// version and the selection.
    fn new(options: &'a TransformOptions) -> Result<Inputs<'a>> {
        publish::check_storage_version(&options.storage_version)?;
        let declared = Declared::new(&options.tables);
        let models = models::ordered(declared.models.clone(), &options.models)?;
        let selected = runs::selection(&models, &options.select)?;
        // A slot written with another storage version is built afresh too.
        let models_print = format!(
            "{}/{}",
            declared.models_fingerprint(&models),
            options.storage_version
        );
        let names = |ms: &[Model]| ms.iter().map(|m| m.name.clone()).collect::<BTreeSet<_>>();
        let record = Record::new(
            &models,
            &names(&declared.models),
            &names(&options.models),
            declared.datasets.clone(),
            models_print,
            &options.storage_version,
            options.sources.clone(),
        );
        Ok(Inputs {
            options,
            declared,
            models,
            record,
            selected,
        })
    }

    /// The declared tables, by dataset.
    fn tables(&self) -> &'a BTreeMap<String, TableSpec> {
        &self.options.tables
    }

    /// What decides which models run.
    fn wanted(&self) -> runs::Wanted<'_> {
        runs::Wanted {
            models: &self.models,
            record: &self.record,
            model_datasets: &self.declared.model_datasets,
            selected: &self.selected,
        }
    }
}

/// The published build: the history state it was built from and its record
/// (both `None` when there is none, or it cannot be read).
#[derive(Default)]
struct Published {
    info: Option<history::BuildInfo>,
    record: Option<Record>,
}

impl Published {
    /// Reads the published file at `target`, read-only; one that cannot be
    /// read will be replaced (a warning says why).
    fn read(target: &Path) -> Published {
        if !target.exists() {
            return Published::default();
        }
        let read = Lakehouse::open_read_only(target)
            .and_then(|lake| Ok((lake.build_info()?, lake.record()?)));
        match read {
            Ok((info, record)) => Published { info, record },
            Err(e) => {
                tracing::warn!("the published lakehouse will be replaced: {e}");
                Published::default()
            }
        }
    }
}

/// Loads the new landing files into the history and, when the history moved
/// on from the published file or what it is built with changed, builds the
/// next one: returns its slot.
fn build(
    store: &LandingStore,
    conn: &Connection,
    inputs: &Inputs<'_>,
    published: &Published,
    target: &Path,
    report: &mut TransformReport,
) -> Result<Option<publish::Slot>> {
    let history_path = history::path_of(target);
    if inputs.options.full_refresh && history_path.exists() {
        tracing::info!(history = %history_path.display(), "full refresh: discarding the history");
        history::remove_history(&history_path)?;
    }
    let history = load_history(store, conn, inputs, &history_path, report)?;
    report.releases_total = history.releases()?;
    let info = history.build_info()?;
    conn.execute_batch("CHECKPOINT history")
        .map_err(duck("CHECKPOINT history"))?;
    let moved = if published.info.as_ref() == Some(&info) {
        None
    } else if inputs.options.full_refresh {
        Some(RunReason::FullRefresh)
    } else if history.created {
        Some(RunReason::HistoryRebuilt)
    } else {
        Some(RunReason::NewData)
    };
    let Some(runs) = runs::decide(&inputs.wanted(), published.record.as_ref(), moved) else {
        return Ok(None);
    };
    let slot = publish::attach(conn, target, &info.1, &inputs.record)?;
    let build = serving::Build {
        models: &inputs.models,
        record: &inputs.record,
        runs: &runs,
        published: published.record.as_ref().map(|r| (target, r)),
        generation: info.2,
    };
    report.warnings = serving::build(conn, &build, &slot, &mut report.steps)?;
    Ok(Some(slot))
}

/// Attaches the history (rebuilding it when it must be) and loads the new
/// landing files into it.
fn load_history<'c>(
    store: &LandingStore,
    conn: &'c Connection,
    inputs: &Inputs<'_>,
    history_path: &Path,
    report: &mut TransformReport,
) -> Result<History<'c>> {
    let fingerprint = &inputs.declared.fingerprint;
    let mut resets = 0;
    loop {
        let Some(history) = History::attach(conn, history_path, &inputs.models, fingerprint)?
        else {
            resets += 1;
            continue;
        };
        let new = new_files(store, &history, inputs.tables())?;
        let out_of_order = out_of_order(&history, &new)?;
        if let Some(first) = out_of_order
            && resets == 0
        {
            tracing::info!(release = %first, "a release landed out of publication order: rebuilding the history");
            history::discard(conn, history_path)?;
            resets += 1;
            continue;
        }
        let mut progress =
            load::Progress::new(new.values().map(Vec::len).sum(), inputs.options.progress);
        for (dataset, entries) in new {
            let load = (&inputs.tables()[dataset], &inputs.declared.loads[dataset]);
            load::load_dataset(store, &history, load, entries, report, &mut progress)?;
        }
        return Ok(history);
    }
}

/// The first new release that does not sort after its dataset's loaded ones
/// (publication order), if any.
fn out_of_order(history: &History<'_>, new: &BTreeMap<&str, Vec<Entry>>) -> Result<Option<String>> {
    let mut found = None;
    for entries in new.values() {
        if let Some(first) = entries.first()
            && !history.appends(first)?
        {
            found = Some(first.key.to_string());
        }
    }
    Ok(found)
}

/// The landing files of each declared dataset that `history` holds neither
/// loaded nor rejected, in publication order (year, month, landing time).
fn new_files<'t>(
    store: &LandingStore,
    history: &History<'_>,
    tables: &'t BTreeMap<String, TableSpec>,
) -> Result<BTreeMap<&'t str, Vec<Entry>>> {
    let known: HashSet<String> = history.known_keys()?.into_iter().collect();
    landing_files(store, tables, |key| !known.contains(key))
}

/// The landing files of each declared dataset whose key `keep` accepts, in
/// publication order (year, month, landing time).
fn landing_files<'t>(
    store: &LandingStore,
    tables: &'t BTreeMap<String, TableSpec>,
    keep: impl Fn(&str) -> bool,
) -> Result<BTreeMap<&'t str, Vec<Entry>>> {
    let mut new: BTreeMap<&str, Vec<Entry>> = BTreeMap::new();
    for e in store.list() {
        if let Some((name, _)) = tables.get_key_value(e.key.dataset.as_str())
            && keep(&e.key.to_string())
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
