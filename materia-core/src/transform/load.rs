//! Loading a declared dataset's new landing files into the history with the
//! [`LoadSql`] its declaration generates (`declared/`): one release at a
//! time — staged, checked, applied in a transaction of its own — or, for a
//! first build, many releases at once.
//!
//! What varies per release (its file, its publication order) is bound to the
//! statements' DuckDB named parameters (`$file`, `$ord`, `$files`,
//! `$last_ord`: [`Param`]), never written into their text.

use std::path::{Path, PathBuf};
use std::time::Instant;

use duckdb::types::Value;
use duckdb::{Connection, Row};

use super::engine::{duck, is_data_error};
use super::history::{History, Loaded, count};
use super::intake::landing_file_problem;
use super::report::{Rejected, Step, StepMode, TransformReport};
use crate::dataset::TableSpec;
use crate::error::{Result, duckdb_message};
use crate::landing::{Entry, LandingStore};

/// A build's progress over its new releases, every dataset's: a line per
/// release loaded, at info level (the default), and a bar on stderr when
/// asked for (`TransformOptions::progress`: the CLI on a terminal).
pub(crate) struct Progress {
    done: usize,
    total: usize,
    bar: indicatif::ProgressBar,
}

impl Progress {
    /// Progress over `total` releases, with a bar when `show`.
    pub(crate) fn new(total: usize, show: bool) -> Progress {
        Progress {
            done: 0,
            total,
            bar: crate::progress::releases_bar(total as u64, show),
        }
    }

    /// One release done: loaded (a line naming it) or quarantined (counted;
    /// the build names it with its reason when it ends).
    fn release(&mut self, entry: &Entry, outcome: Option<&Loaded>) {
        self.done += 1;
        self.bar.inc(1);
        if let Some(Loaded::Rows { rows, .. }) = outcome {
            let (done, total) = (self.done, self.total);
            // Above the bar, not through it.
            self.bar.suspend(|| {
                tracing::info!(
                    dataset = %entry.key.dataset,
                    release = %entry.key,
                    rows,
                    "loaded release {done} of {total}"
                );
            });
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// How much CSV a first build loads at once (see [`load_dataset`]).
const BATCH_CONTENT_BYTES: u64 = 512 << 20;

/// The statements that load a declared table's releases into the history,
/// generated from its declaration (`declared/`) once per build. They stage
/// into temp tables (`_stage`, `_new`, `_gone`, `_ended`, `_files`, `_v`:
/// [`super::history::STAGING_TABLES`]) and write `raw.{d}_changes`,
/// `raw.{d}_closed` and `raw.{d}_current`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LoadSql {
    /// `raw.{d}_changes`: names the load in the build's steps and in errors.
    pub name: String,
    /// Reads the release (`$file`) into the temp table `_stage`.
    pub stage: Statement,
    /// One row, (duplicate keys, empty keys): any non-zero count quarantines
    /// the release.
    pub check: Statement,
    /// Writes the staged release's changes (`$ord`: its publication order)
    /// to the history, in order.
    pub apply: Vec<Statement>,
    /// One row: how many rows `apply` wrote.
    pub changes: Statement,
    /// Loading many releases at once, for a dataset's first build.
    pub batch: BatchSql,
}

/// The statements that load a dataset's first releases at once: the versions
/// by window functions over all of them, the rows the one-by-one load writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BatchSql {
    /// Reads every release (`$files`, in publication order: the first is
    /// publication order 1) into `_stage`, each row with its `__materia_ord`.
    pub stage: Vec<Statement>,
    /// One row: how many rows are unusable (an empty key, a key twice in a
    /// release). Any, and the releases are loaded one by one instead, which
    /// quarantines precisely.
    pub check: Statement,
    /// Writes the versions (`$last_ord`: the last release's order).
    pub apply: Vec<Statement>,
    /// (ord, rows, changes) of each release.
    pub changes: Statement,
}

impl LoadSql {
    /// The statements as one text, each part after a `-- section: NAME`
    /// line: `stage`, `check`, `apply`, `changes`, then the batch's
    /// `stage-all`, `check-all`, `apply-all`, `changes-all`.
    pub(crate) fn text(&self) -> String {
        let b = &self.batch;
        let sections: [(&str, &[Statement]); 8] = [
            ("stage", std::slice::from_ref(&self.stage)),
            ("check", std::slice::from_ref(&self.check)),
            ("apply", &self.apply),
            ("changes", std::slice::from_ref(&self.changes)),
            ("stage-all", &b.stage),
            ("check-all", std::slice::from_ref(&b.check)),
            ("apply-all", &b.apply),
            ("changes-all", std::slice::from_ref(&b.changes)),
        ];
        let mut out = String::new();
        for (name, statements) in sections {
            out.push_str("-- section: ");
            out.push_str(name);
            out.push('\n');
            for s in statements {
                out.push_str(&s.0);
            }
        }
        out
    }
}

/// One SQL statement (its text ends with `;` and a newline); what varies
/// per release is a DuckDB named parameter in it (`$ord`, see [`Param`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Statement(pub String);

/// A value bound per load, by the name of its parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Param {
    /// `$file`: the path of the release being loaded.
    File,
    /// `$ord`: the release's publication order in its dataset.
    Ord,
    /// `$files`: the paths of a batch's releases, in publication order.
    Files,
    /// `$last_ord`: a batch's last publication order (its length).
    LastOrd,
}

impl Param {
    /// The parameter's name, without the `$`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Param::File => "file",
            Param::Ord => "ord",
            Param::Files => "files",
            Param::LastOrd => "last_ord",
        }
    }
}

/// The values one load binds to its statements' parameters.
struct Bindings(Vec<(Param, Value)>);

impl Bindings {
    /// One release: its file and publication order.
    fn release(file: &Path, ord: i64) -> Bindings {
        Bindings(vec![
            (
                Param::File,
                Value::Text(file.to_string_lossy().into_owned()),
            ),
            (Param::Ord, Value::BigInt(ord)),
        ])
    }

    /// A batch: its files, in publication order, from order 1.
    fn batch(files: &[PathBuf]) -> Bindings {
        let paths = files
            .iter()
            .map(|f| Value::Text(f.to_string_lossy().into_owned()))
            .collect();
        Bindings(vec![
            (Param::Files, Value::List(paths)),
            (Param::LastOrd, Value::BigInt(files.len() as i64)),
        ])
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(p, _)| p.name() == name)
            .map(|(_, v)| v)
    }
}

impl Statement {
    /// The statement prepared on `conn`, `values` bound to its parameters.
    fn bind<'c>(
        &self,
        conn: &'c Connection,
        values: &Bindings,
    ) -> duckdb::Result<duckdb::Statement<'c>> {
        let mut stmt = conn.prepare(&self.0)?;
        for i in 1..=stmt.parameter_count() {
            let name = stmt.parameter_name(i)?;
            let value = values
                .get(&name)
                .ok_or(duckdb::Error::InvalidParameterName(name))?;
            stmt.raw_bind_parameter(i, value)?;
        }
        Ok(stmt)
    }

    /// Runs the statement with `values`.
    fn execute(&self, conn: &Connection, values: &Bindings) -> duckdb::Result<()> {
        self.bind(conn, values)?.raw_execute().map(drop)
    }

    /// Runs the query with `values`: its rows, each mapped by `f`.
    fn query<T>(
        &self,
        conn: &Connection,
        values: &Bindings,
        mut f: impl FnMut(&Row<'_>) -> duckdb::Result<T>,
    ) -> duckdb::Result<Vec<T>> {
        let mut stmt = self.bind(conn, values)?;
        stmt.raw_execute()?;
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(f(row)?);
        }
        Ok(out)
    }

    /// Runs the query with `values`: its first row, mapped by `f`.
    fn query_row<T>(
        &self,
        conn: &Connection,
        values: &Bindings,
        f: impl FnMut(&Row<'_>) -> duckdb::Result<T>,
    ) -> duckdb::Result<T> {
        self.query(conn, values, f)?
            .into_iter()
            .next()
            .ok_or(duckdb::Error::QueryReturnedNoRows)
    }
}

/// Loads one dataset's new files (in publication order) into the history:
/// those that cannot be loaded are quarantined, the others loaded — a first
/// build's first releases at once, up to [`BATCH_CONTENT_BYTES`] of CSV (past
/// that DuckDB's window sort spills more than the one-by-one load costs), the
/// rest, or all when that is not possible, one release at a time.
pub(crate) fn load_dataset(
    store: &LandingStore,
    history: &History<'_>,
    (table, sql): (&TableSpec, &LoadSql),
    entries: Vec<Entry>,
    report: &mut TransformReport,
    progress: &mut Progress,
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
                progress.release(&entry, None);
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
    if let Some(at_once) = load_batch(history, store, &good[..batch_len], sql, &mut report.steps)? {
        for (entry, outcome) in good.iter().zip(&at_once) {
            progress.release(entry, Some(outcome));
        }
        loaded = at_once;
        rest = &good[batch_len..];
    }
    for entry in rest {
        let outcome = load_release(history, store, entry, sql, &mut report.steps)?;
        progress.release(entry, Some(&outcome));
        loaded.push(outcome);
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

/// Loads one landing file as the next release of its dataset, in one
/// transaction: staged, checked (quarantined when DuckDB cannot read it or
/// a key repeats or is empty), then its changes applied.
fn load_release(
    history: &History<'_>,
    store: &LandingStore,
    entry: &Entry,
    sql: &LoadSql,
    steps: &mut Vec<Step>,
) -> Result<Loaded> {
    let started = Instant::now();
    let conn = history.conn();
    let key = entry.key.to_string();
    let (release_id, ord) = history.next_ids(entry.key.dataset.as_str())?;
    let values = Bindings::release(&store.path_of(&entry.key), ord);
    history.begin()?;
    if let Err(e) = sql.stage.execute(conn, &values) {
        history.rollback();
        let text = duckdb_message(&e);
        if is_data_error(&text) {
            return history.quarantine(&key, format!("DuckDB cannot load it: {text}"));
        }
        return Err(duck(&sql.name)(e));
    }
    let staged = started.elapsed();
    let (duplicates, empty): (i64, i64) = sql
        .check
        .query_row(conn, &values, |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(duck(&sql.name))?;
    if duplicates > 0 || empty > 0 {
        history.rollback();
        return history.quarantine(
            &key,
            format!(
                "{duplicates} key(s) appear more than once and {empty} row(s) have an empty key column"
            ),
        );
    }
    let rows = count(conn, "SELECT count(*) FROM _stage")?;
    let checked = started.elapsed();
    for statement in &sql.apply {
        statement.execute(conn, &values).map_err(duck(&sql.name))?;
    }
    let changes = sql
        .changes
        .query_row(conn, &values, |r| r.get::<_, i64>(0))
        .map_err(duck(&sql.name))? as u64;
    tracing::debug!(
        model = %sql.name,
        stage_ms = staged.as_millis() as u64,
        check_ms = (checked - staged).as_millis() as u64,
        apply_ms = (started.elapsed() - checked).as_millis() as u64,
        "load sections"
    );
    history.record_release(release_id, entry, ord, rows, changes)?;
    history.finish()?;
    steps.push(Step {
        model: sql.name.clone(),
        mode: if ord == 1 {
            StepMode::Rebuild
        } else {
            StepMode::Append
        },
        millis: started.elapsed().as_millis() as u64,
        reasons: Vec::new(),
    });
    tracing::debug!(release = %key, rows, changes, millis = started.elapsed().as_millis() as u64, "release loaded");
    Ok(Loaded::Rows { rows, changes })
}

/// Loads `entries` (sorted in publication order) at once when their dataset
/// has no release yet — a first build or a rebuild — in one transaction.
/// `None`: not possible (fewer than two, a file DuckDB cannot read, a
/// release with a key twice or empty): load them one by one instead, which
/// quarantines precisely.
fn load_batch(
    history: &History<'_>,
    store: &LandingStore,
    entries: &[Entry],
    sql: &LoadSql,
    steps: &mut Vec<Step>,
) -> Result<Option<Vec<Loaded>>> {
    let started = Instant::now();
    let Some(first) = entries.first() else {
        return Ok(None);
    };
    let (first_id, next_ord) = history.next_ids(first.key.dataset.as_str())?;
    if next_ord > 1 || entries.len() < 2 {
        return Ok(None);
    }
    let files: Vec<PathBuf> = entries.iter().map(|e| store.path_of(&e.key)).collect();
    let Some(counts) = apply_batch(history, sql, &Bindings::batch(&files))? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let ord = i as i64 + 1;
        let (_, rows, changes) = counts
            .iter()
            .find(|(o, _, _)| *o == ord)
            .copied()
            .unwrap_or((ord, 0, 0));
        let (rows, changes) = (rows as u64, changes as u64);
        history.record_release(first_id + i as i64, entry, ord, rows, changes)?;
        out.push(Loaded::Rows { rows, changes });
    }
    history.finish()?;
    steps.push(Step {
        model: sql.name.clone(),
        mode: StepMode::Rebuild,
        millis: started.elapsed().as_millis() as u64,
        reasons: Vec::new(),
    });
    tracing::debug!(
        releases = entries.len(),
        millis = started.elapsed().as_millis() as u64,
        "releases loaded at once"
    );
    Ok(Some(out))
}

/// Begins a transaction, stages, checks and applies a batch (`values`), and
/// returns its (ord, rows, changes) with the transaction open; `None`, rolled
/// back, when the batch cannot be loaded at once.
fn apply_batch(
    history: &History<'_>,
    sql: &LoadSql,
    values: &Bindings,
) -> Result<Option<Vec<(i64, i64, i64)>>> {
    let (conn, batch) = (history.conn(), &sql.batch);
    history.begin()?;
    for statement in &batch.stage {
        if let Err(e) = statement.execute(conn, values) {
            history.rollback();
            if is_data_error(&duckdb_message(&e)) {
                return Ok(None);
            }
            return Err(duck(&sql.name)(e));
        }
    }
    let unusable = batch
        .check
        .query_row(conn, values, |r| r.get::<_, i64>(0))
        .map_err(duck(&sql.name))?;
    if unusable > 0 {
        history.rollback();
        return Ok(None);
    }
    for statement in &batch.apply {
        statement.execute(conn, values).map_err(duck(&sql.name))?;
    }
    batch
        .changes
        .query(conn, values, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map(Some)
        .map_err(duck(&sql.name))
}
