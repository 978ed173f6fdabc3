//! What a declared table ([`TableSpec`]) generates, so that a dataset is one
//! declaration, not hand-written SQL: its history tables (a `setup` model),
//! its load (a [`LoadSql`], generated in `load_sql.rs`, run by `load.rs`) and its serving tables (two
//! `table` models).
//!
//! For a dataset `d` (its name with `-` as `_` in table names):
//! - history: `raw.d_changes` (the declared columns, `deleted`, `from_ord`:
//!   a row each time a key's values first appear, change or — `replace`
//!   datasets — disappear: a `deleted` row carries the values the key had),
//!   `raw.d_closed` (key, `from_ord`, `to_ord`: the release from which a
//!   version no longer holds), `raw.d_current` (each key's current version;
//!   one release's size);
//! - published: copies of `raw.d_changes` and `raw.d_closed` (appended to),
//!   the view `serving.d_history` over them (every version with the releases
//!   it holds for), the table `serving.d_latest` (the current values) and the
//!   table macro `serving.d_as_of(year, month)` (what the newest release
//!   landed under that month said).
//!
//! The golden files `materia-core/tests/data/generated-sql/{psd,cot}.sql`
//! hold [`generated_sql`] of the built-in datasets: a change to what is
//! generated shows there in review.

mod load_sql;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write;

use super::engine::sql_string;
use super::load::LoadSql;
use super::models::{self, Kind, Model};
use crate::dataset::Column;
use crate::dataset::TableSpec;
use load_sql::Spelling;

/// What the declared tables generate, built once per build.
pub(crate) struct Declared {
    /// Each dataset's setup and serving models, run with the others.
    pub models: Vec<Model>,
    /// Each dataset's load, by dataset name.
    pub loads: BTreeMap<String, LoadSql>,
    /// The declarations' fingerprint: a history loaded under others is
    /// rebuilt (see [`Spelling::Placeholders`]).
    pub fingerprint: String,
    /// Each dataset's declaration fingerprint (what it generates), by name:
    /// recorded in the published file, so a build tells which changed.
    pub datasets: BTreeMap<String, String>,
    /// The dataset of each generated model, by the model's name.
    pub model_datasets: BTreeMap<String, String>,
    /// Each load's text as the fingerprints hash it, by the load's name.
    hashed_loads: BTreeMap<String, String>,
}

impl Declared {
    /// Generates what `tables` (by dataset name) declare.
    pub(crate) fn new(tables: &BTreeMap<String, TableSpec>) -> Declared {
        let mut declared = Declared {
            models: Vec::new(),
            loads: BTreeMap::new(),
            fingerprint: String::new(),
            datasets: BTreeMap::new(),
            model_datasets: BTreeMap::new(),
            hashed_loads: BTreeMap::new(),
        };
        // Per dataset: setup, load, serving models (the order hashed since
        // the loads were models among the others).
        let mut hashed: Vec<(String, String)> = Vec::new();
        for (dataset, table) in tables {
            let g = Gen::new(dataset, table);
            let [setup, history, latest] = g.models();
            let load = g.load(Spelling::Placeholders);
            let load_text = load.text();
            hashed.push((setup.name.clone(), setup.sql.to_string()));
            hashed.push((load.name.clone(), load_text.clone()));
            for m in [&history, &latest] {
                hashed.push((m.name.clone(), m.sql.to_string()));
            }
            let own = &hashed[hashed.len() - 4..];
            declared.datasets.insert(
                dataset.clone(),
                models::fingerprint(own.iter().map(|(n, s)| (n.as_str(), s.as_str()))),
            );
            declared.hashed_loads.insert(load.name, load_text);
            declared
                .loads
                .insert(dataset.clone(), g.load(Spelling::Bound));
            for m in [&setup, &history, &latest] {
                declared
                    .model_datasets
                    .insert(m.name.clone(), dataset.clone());
            }
            declared.models.extend([setup, history, latest]);
        }
        declared.fingerprint =
            models::fingerprint(hashed.iter().map(|(n, s)| (n.as_str(), s.as_str())));
        declared
    }

    /// The fingerprint of a build's models — `ordered`, as `models::ordered`
    /// gives them, and the loads — recorded in the published file: a slot
    /// built with others is built afresh. The loads are hashed after the
    /// setup models, by name, where the model runner ordered them when they
    /// were models (a `raw.` name sorts before every `serving.` one), so an
    /// upgrade keeps the slots.
    pub(crate) fn models_fingerprint(&self, ordered: &[Model]) -> String {
        let setups = ordered.iter().take_while(|m| m.kind == Kind::Setup).count();
        fn model(m: &Model) -> (&str, &str) {
            (&m.name, &m.sql)
        }
        let loads = self
            .hashed_loads
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_str()));
        models::fingerprint(
            ordered[..setups]
                .iter()
                .map(model)
                .chain(loads)
                .chain(ordered[setups..].iter().map(model)),
        )
    }
}

/// Everything `table` generates for `dataset`, as text: its setup model,
/// its load — the statements a build runs for each release, each part after
/// a `-- section: NAME` line (the one-release load: `stage`, `check`,
/// `apply`, `changes`; a first build's batch: `stage-all`…`changes-all`) —
/// and its two serving models. What varies per release is a DuckDB named
/// parameter, bound when the load runs: `$file` and `$ord` (the release's
/// path and publication order), `$files` and `$last_ord` (a batch's paths, in
/// publication order, and its last order).
///
/// The golden files `materia-core/tests/data/generated-sql/{psd,cot}.sql`
/// hold it for the built-in datasets (`MATERIA_BLESS=1` rewrites them).
///
/// ```
/// use materia_core::transform::{TransformOptions, generated_sql};
/// let tables = TransformOptions::new("lakehouse.duckdb").tables;
/// let sql = generated_sql("psd", &tables["psd"]);
/// assert!(sql.contains("CREATE TABLE IF NOT EXISTS raw.\"psd_changes\" ("));
/// assert!(sql.contains("SELECT *, false AS deleted, $ord AS from_ord FROM _new;"));
/// ```
pub fn generated_sql(dataset: &str, table: &TableSpec) -> String {
    let g = Gen::new(dataset, table);
    let [setup, history, latest] = g.models();
    let load = g.load(Spelling::Bound);
    let model = |m: &Model| {
        format!(
            "-- model: {}\n-- kind: {}\n-- depends: {}\n{}",
            m.name,
            m.kind.name(),
            m.depends.join(", "),
            m.sql
        )
    };
    format!(
        "{}\n-- load: {}\n{}\n{}\n{}",
        model(&setup),
        load.name,
        load.text(),
        model(&history),
        model(&latest)
    )
}

/// The tables (and the macro) a declared dataset has in the published
/// lakehouse, as a build that drops it names them.
///
/// ```
/// let names = materia_core::transform::dataset_tables("weather-eu");
/// assert_eq!(names[0], "raw.weather_eu_changes");
/// assert!(names.contains(&"serving.weather_eu_latest".to_owned()));
/// ```
pub fn dataset_tables(dataset: &str) -> Vec<String> {
    let p = prefix(dataset);
    [
        "raw.{}_changes",
        "raw.{}_closed",
        "serving.{}_history",
        "serving.{}_latest",
        "serving.{}_as_of",
    ]
    .iter()
    .map(|t| t.replace("{}", &p))
    .collect()
}

/// The history tables' prefix for a dataset (`raw.{prefix}_changes`, …).
fn prefix(dataset: &str) -> String {
    // As `Dataset::table_prefix` (a declared name is a valid `Dataset`).
    dataset.replace('-', "_")
}

/// The generator of one declared table's SQL.
struct Gen<'a> {
    dataset: &'a str,
    prefix: String,
    table: &'a TableSpec,
}

/// A quoted identifier (lakehouse names are `[a-z0-9_]`, quoted anyway:
/// `month` or `value` must stay column names).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl<'a> Gen<'a> {
    fn new(dataset: &'a str, table: &'a TableSpec) -> Self {
        Gen {
            dataset,
            prefix: prefix(dataset),
            table,
        }
    }

    /// The history table `raw.{prefix}_{suffix}`.
    fn t(&self, suffix: &str) -> String {
        format!("raw.{}", ident(&format!("{}_{suffix}", self.prefix)))
    }

    /// The columns' quoted lakehouse names, each prefixed with `alias`.
    fn names<'c>(cols: impl Iterator<Item = &'c Column>, alias: &str) -> Vec<String> {
        cols.map(|c| format!("{alias}{}", ident(&c.sql_name())))
            .collect()
    }

    /// The key columns, comma-separated.
    fn keys(&self, alias: &str) -> String {
        Self::names(self.table.key_columns(), alias).join(", ")
    }

    /// `a.k = b.k` for every key column `k`, joined by `AND`.
    fn key_eq(&self, a: &str, b: &str) -> String {
        self.table
            .key_columns()
            .map(|c| {
                let n = ident(&c.sql_name());
                format!("{a}.{n} = {b}.{n}")
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// Whether any key column is NULL.
    fn key_null(&self, alias: &str) -> String {
        self.table
            .key_columns()
            .map(|c| format!("{alias}{} IS NULL", ident(&c.sql_name())))
            .collect::<Vec<_>>()
            .join(" OR ")
    }

    /// The value columns as one struct (compared as a whole), or NULL.
    fn values_struct(&self) -> String {
        let values = Self::names(self.table.value_columns(), "");
        if values.is_empty() {
            "NULL".into()
        } else {
            format!("struct_pack({})", values.join(", "))
        }
    }

    /// The history tables: `_changes`, `_current`, `_closed`.
    fn setup(&self) -> String {
        let mut cols = String::new();
        for c in &self.table.columns {
            let not_null = if self.table.key.contains(&c.name) {
                " NOT NULL"
            } else {
                ""
            };
            let _ = writeln!(
                cols,
                "    {} {}{not_null},",
                ident(&c.sql_name()),
                c.ty.sql()
            );
        }
        let key_cols: String = self
            .table
            .key_columns()
            .map(|c| format!("    {} {} NOT NULL,\n", ident(&c.sql_name()), c.ty.sql()))
            .collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {changes} (\n{cols}    deleted BOOLEAN NOT NULL,\n    from_ord INTEGER NOT NULL\n);\n\
             CREATE TABLE IF NOT EXISTS {current} AS SELECT * FROM {changes} LIMIT 0;\n\
             CREATE TABLE IF NOT EXISTS {closed} (\n{key_cols}    from_ord INTEGER NOT NULL,\n    to_ord INTEGER NOT NULL\n);\n",
            changes = self.t("changes"),
            current = self.t("current"),
            closed = self.t("closed"),
        )
    }

    /// The setup model (the history tables) and the two serving models.
    fn models(&self) -> [Model; 3] {
        let file = format!("datasets.{}.table (generated)", self.dataset);
        let model = |name: String, kind: Kind, depends: &str, sql: String| Model {
            name,
            kind,
            depends: vec![depends.to_owned()],
            sql: Cow::Owned(sql),
            file: file.clone(),
            by_caller: false,
        };
        let p = &self.prefix;
        [
            model(
                format!("raw.{p}_tables"),
                Kind::Setup,
                "schema",
                self.setup(),
            ),
            model(
                format!("serving.{p}_history"),
                Kind::Table,
                "serving.releases",
                self.history(),
            ),
            model(
                format!("serving.{p}_latest"),
                Kind::Table,
                "serving.releases",
                self.latest(),
            ),
        ]
    }

    /// The history's changes and closings copied into the published file
    /// (appended from where the file's copy ends: a slot updated in place
    /// copies one release's), and the `_history` view over them.
    fn history(&self) -> String {
        let p = &self.prefix;
        let ds = sql_string(self.dataset);
        let (changes, closed) = (self.t("changes"), self.t("closed"));
        format!(
            "CREATE SCHEMA IF NOT EXISTS raw;\n\
             CREATE SCHEMA IF NOT EXISTS serving;\n\
             CREATE TABLE IF NOT EXISTS {changes} AS SELECT * FROM history.{changes} LIMIT 0;\n\
             INSERT INTO {changes} SELECT * FROM history.{changes}\n\
             WHERE from_ord > (SELECT coalesce(max(from_ord), 0) FROM {changes});\n\
             CREATE TABLE IF NOT EXISTS {closed} AS SELECT * FROM history.{closed} LIMIT 0;\n\
             INSERT INTO {closed} SELECT * FROM history.{closed}\n\
             WHERE to_ord > (SELECT coalesce(max(to_ord), 0) FROM {closed});\n\
             CREATE OR REPLACE VIEW serving.{history} AS\n\
             SELECT p.* EXCLUDE (from_ord), p.from_ord AS release_ord, c.to_ord AS until_ord,\n       \
             r.etag AS release_etag, r.year AS release_year, r.month AS release_month\n\
             FROM {changes} AS p\n\
             JOIN serving.releases AS r ON r.dataset = {ds} AND r.ord = p.from_ord\n\
             LEFT JOIN {closed} AS c ON {on} AND c.from_ord = p.from_ord;\n\
             CREATE OR REPLACE MACRO serving.{as_of}(y, m) AS TABLE\n\
             SELECT h.* EXCLUDE (deleted, release_ord, until_ord, release_etag, release_year, release_month)\n\
             FROM serving.{history} AS h\n\
             WHERE NOT h.deleted\n  \
             AND h.release_ord <= (SELECT max(ord) FROM serving.releases WHERE dataset = {ds} AND year = y AND month = m)\n  \
             AND (h.until_ord IS NULL\n       \
             OR h.until_ord > (SELECT max(ord) FROM serving.releases WHERE dataset = {ds} AND year = y AND month = m));\n",
            history = ident(&format!("{p}_history")),
            as_of = ident(&format!("{p}_as_of")),
            on = self.key_eq("c", "p"),
        )
    }

    /// `serving.{prefix}_latest`: the current values, from the newest release.
    fn latest(&self) -> String {
        format!(
            "CREATE SCHEMA IF NOT EXISTS serving;\n\
             CREATE OR REPLACE TABLE serving.{latest} AS\n\
             SELECT c.* EXCLUDE (deleted, from_ord),\n       \
             r.etag AS release_etag, r.year AS release_year, r.month AS release_month\n\
             FROM history.{current} AS c\n\
             JOIN serving.releases AS r ON r.dataset = {ds} AND r.is_latest\n\
             WHERE NOT c.deleted;\n",
            latest = ident(&format!("{}_latest", self.prefix)),
            current = self.t("current"),
            ds = sql_string(self.dataset),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::models::{Severity, audits, ordered, statements};

    fn tables() -> BTreeMap<String, TableSpec> {
        crate::dataset::Config::default().tables()
    }

    fn shipped() -> Vec<Model> {
        ordered(Declared::new(&tables()).models, &[]).expect("valid models")
    }

    #[test]
    fn shipped_models_run_in_dependency_order() {
        let names: Vec<String> = shipped().into_iter().map(|m| m.name).collect();
        let pos = |n: &str| names.iter().position(|m| m == n).expect(n);
        assert_eq!(pos("schema"), 0);
        assert!(pos("raw.psd_tables") < pos("serving.psd_history"));
        assert!(pos("serving.releases") < pos("serving.psd_history"));
        assert!(pos("serving.psd_history") < pos("serving.psd_latest"));
        assert!(pos("serving.psd_latest") < pos("serving.coffee_balance"));
        assert!(pos("serving.coffee_balance") < pos("audits"));
        assert!(pos("serving.psd_revisions") < pos("audits"));
        assert!(pos("raw.cot_tables") < pos("serving.cot_latest"));
        assert!(pos("serving.cot_latest") < pos("serving.cot_coffee"));
    }

    #[test]
    fn audits_parse_with_severity() {
        let all = shipped();
        let audit_model = all.iter().find(|m| m.kind == Kind::Audit).expect("audits");
        let audits = audits(audit_model).expect("parse");
        assert!(audits.iter().any(|a| a.severity == Severity::Error));
        assert!(audits.iter().any(|a| a.severity == Severity::Warn));
        // Both shapes ship: counts (uniqueness) and offending rows (identities).
        assert!(audits.iter().any(|a| a.sql.starts_with("SELECT count(*)")));
        assert!(
            audits
                .iter()
                .any(|a| a.sql.starts_with("SELECT country_code"))
        );
    }

    #[test]
    fn every_load_statement_is_one_statement() {
        for load in Declared::new(&tables()).loads.values() {
            let b = &load.batch;
            let all = [
                &load.stage,
                &load.check,
                &load.changes,
                &b.check,
                &b.changes,
            ]
            .into_iter()
            .chain(&load.apply)
            .chain(&b.stage)
            .chain(&b.apply);
            for s in all {
                assert_eq!(statements(&s.0).len(), 1, "{}", s.0);
                assert!(s.0.ends_with(";\n"), "{}", s.0);
            }
        }
    }

    /// The history of every lakehouse records this fingerprint: another one
    /// rebuilds it from the landing zone on the next build after an upgrade.
    /// This one is what Materia computed before its loads were typed (commit
    /// 43153ca): change it only with the generated SQL, knowingly.
    #[test]
    fn the_declarations_fingerprint_is_the_one_histories_recorded() {
        assert_eq!(
            Declared::new(&tables()).fingerprint,
            "1ef29b004cfd7b380960cabc83f0c937f7bfccb766c1f2b5ba929f0fc8cb0d22",
            "the generated SQL changed: every history will be rebuilt after an upgrade"
        );
    }
}
