//! The models a declared table generates: its history tables (setup), its
//! load (the sections `history.rs` runs) and its serving tables — so a
//! dataset is one declaration ([`TableSpec`]), not hand-written SQL.
//!
//! For a dataset `d` (its name with `-` as `_` in table names):
//! - history: `raw.d_changes` (the declared columns, `deleted`, `from_ord`:
//!   a row each time a key's values first appear, change or — `replace`
//!   datasets — disappear: a `deleted` row carries the values the key had), `raw.d_closed` (key, `from_ord`, `to_ord`: the
//!   release from which a version no longer holds), `raw.d_current` (each
//!   key's current version; one release's size);
//! - published: copies of `raw.d_changes` and `raw.d_closed` (appended to),
//!   the view `serving.d_history` over them (every version with the releases
//!   it holds for), the table `serving.d_latest` (the current values) and the
//!   table macro `serving.d_as_of(year, month)` (what the newest release
//!   landed under that month said).

use std::borrow::Cow;
use std::fmt::Write;

use super::models::{Kind, Model};
use super::sql_string;
use crate::dataset::{Column, Disposition, TableSpec};

/// The history tables' prefix for a dataset (`raw.{prefix}_changes`, …).
pub(crate) fn prefix(dataset: &str) -> String {
    // As `Dataset::table_prefix` (a declared name is a valid `Dataset`).
    dataset.replace('-', "_")
}

/// The name of a dataset's load model.
pub(crate) fn load_model_name(dataset: &str) -> String {
    format!("raw.{}_changes", prefix(dataset))
}

/// Every model `table` generates for `dataset`: setup, load, and the three
/// serving objects (two table models).
pub(crate) fn models(dataset: &str, table: &TableSpec) -> Vec<Model> {
    let g = Gen::new(dataset, table);
    let file = format!("datasets.{dataset}.table (generated)");
    let model = |name: String, kind: Kind, depends: Vec<String>, sql: String| Model {
        name,
        kind,
        depends,
        sql: Cow::Owned(sql),
        file: file.clone(),
    };
    let p = &g.prefix;
    vec![
        model(
            format!("raw.{p}_tables"),
            Kind::Setup,
            vec!["schema".into()],
            g.setup(),
        ),
        model(
            load_model_name(dataset),
            Kind::Load,
            vec![format!("raw.{p}_tables")],
            g.load(),
        ),
        model(
            format!("serving.{p}_history"),
            Kind::Table,
            vec!["serving.releases".into()],
            g.history(),
        ),
        model(
            format!("serving.{p}_latest"),
            Kind::Table,
            vec!["serving.releases".into()],
            g.latest(),
        ),
    ]
}

/// A fingerprint of the declarations: a history built under others is rebuilt.
pub(crate) fn fingerprint(tables: &std::collections::BTreeMap<String, TableSpec>) -> String {
    let generated: Vec<Model> = tables
        .iter()
        .flat_map(|(dataset, table)| models(dataset, table))
        .collect();
    super::models::fingerprint(&generated)
}

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

    fn t(&self, suffix: &str) -> String {
        format!("raw.{}", ident(&format!("{}_{suffix}", self.prefix)))
    }

    fn names<'c>(cols: impl Iterator<Item = &'c Column>, alias: &str) -> Vec<String> {
        cols.map(|c| format!("{alias}{}", ident(&c.sql_name())))
            .collect()
    }

    fn keys(&self, alias: &str) -> String {
        Self::names(self.table.key_columns(), alias).join(", ")
    }

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

    fn key_null(&self, alias: &str) -> String {
        self.table
            .key_columns()
            .map(|c| format!("{alias}{} IS NULL", ident(&c.sql_name())))
            .collect::<Vec<_>>()
            .join(" OR ")
    }

    fn values_struct(&self) -> String {
        let values = Self::names(self.table.value_columns(), "");
        if values.is_empty() {
            "NULL".into()
        } else {
            format!("struct_pack({})", values.join(", "))
        }
    }

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

    /// `read_csv` of `files` with the declared types, selecting the
    /// lakehouse names (and `f.ord` when `batch`).
    fn read(&self, files: &str, batch: bool) -> String {
        let select: Vec<String> = self
            .table
            .columns
            .iter()
            .map(|c| format!("c.{} AS {}", ident(&c.name), ident(&c.sql_name())))
            .collect();
        let types: Vec<String> = self
            .table
            .columns
            .iter()
            .map(|c| format!("{}: {}", sql_string(&c.name), sql_string(c.ty.sql())))
            .collect();
        let nulls: Vec<String> = self.table.nulls.iter().map(|n| sql_string(n)).collect();
        let (ord, filename, join) = if batch {
            (
                "f.ord AS __materia_ord, ",
                ", filename = '__materia_file'",
                "\nJOIN _files AS f ON f.path = c.__materia_file",
            )
        } else {
            ("", "", "")
        };
        format!(
            "SELECT {ord}{select}\nFROM read_csv({files},\n        compression = 'gzip', header = true, auto_detect = false,\n        \
             delim = ',', quote = '\"', escape = '\"', nullstr = [{nulls}]{filename},\n        columns = {{{types}}}) AS c{join}",
            select = select.join(", "),
            nulls = nulls.join(", "),
            types = types.join(", "),
        )
    }

    fn load(&self) -> String {
        let (changes, current, closed) = (self.t("changes"), self.t("current"), self.t("closed"));
        let keys = self.keys("");
        let changed: Vec<String> = self
            .table
            .value_columns()
            .map(|c| {
                let n = ident(&c.sql_name());
                format!("c.{n} IS DISTINCT FROM s.{n}")
            })
            .collect();
        let changed = if changed.is_empty() {
            "false".into()
        } else {
            changed.join("\n   OR ")
        };
        let first_key = ident(
            &self
                .table
                .key_columns()
                .next()
                .map_or_else(String::new, Column::sql_name),
        );
        let gone = match self.table.disposition {
            Disposition::Replace => format!(
                "-- Gone: current keys the release no longer has (a deletion is a revision too).\n\
                 CREATE OR REPLACE TEMP TABLE _gone AS\nSELECT c.* EXCLUDE (deleted, from_ord)\nFROM {current} AS c\n\
                 ANTI JOIN _stage AS s ON {on}\nWHERE NOT c.deleted;\n",
                on = self.key_eq("c", "s")
            ),
            Disposition::Merge => format!(
                "-- A merge dataset: a key the release lacks keeps its value.\n\
                 CREATE OR REPLACE TEMP TABLE _gone AS\nSELECT c.* EXCLUDE (deleted, from_ord) FROM {current} AS c WHERE false;\n"
            ),
        };
        let mut sql = String::new();
        let _ = write!(
            sql,
            "-- section: stage\nCREATE OR REPLACE TEMP TABLE _stage AS\n{read};\n\
             -- section: check\n\
             -- Sort-based: adjacent equal key hashes are candidates, confirmed on the full key.\n\
             WITH keyed AS (\n    SELECT hash({keys}) AS __materia_h, {keys} FROM _stage),\n\
             candidates AS (\n    SELECT __materia_h FROM (\n        SELECT __materia_h, lag(__materia_h) OVER (ORDER BY __materia_h) AS __materia_prev FROM keyed)\n    \
             WHERE __materia_h = __materia_prev)\n\
             SELECT (SELECT count(*) FROM (\n            SELECT 1 FROM keyed WHERE __materia_h IN (SELECT __materia_h FROM candidates)\n            \
             GROUP BY {keys} HAVING count(*) > 1)) AS duplicate_keys,\n       \
             (SELECT count(*) FROM _stage WHERE {key_null}) AS empty_keys;\n\
             -- section: apply\n\
             -- New versions: a key not current, current as deleted, or with any value changed.\n\
             CREATE OR REPLACE TEMP TABLE _new AS\nSELECT s.*\nFROM _stage AS s\nLEFT JOIN {current} AS c ON {on_cs}\n\
             WHERE c.{first_key} IS NULL OR c.deleted\n   OR {changed};\n\
             {gone}\
             CREATE OR REPLACE TEMP TABLE _ended AS\nSELECT {keys} FROM _new\nUNION ALL\nSELECT {keys} FROM _gone;\n\
             INSERT INTO {closed}\nSELECT {c_keys}, c.from_ord, {{{{ord}}}}\nFROM {current} AS c\nSEMI JOIN _ended AS e ON {on_ce};\n\
             INSERT INTO {changes}\nSELECT *, false AS deleted, {{{{ord}}}} AS from_ord FROM _new;\n\
             INSERT INTO {changes}\nSELECT *, true AS deleted, {{{{ord}}}} AS from_ord FROM _gone;\n\
             CREATE OR REPLACE TABLE {current} AS\nSELECT c.*\nFROM {current} AS c\nANTI JOIN _ended AS e ON {on_ce}\n\
             UNION ALL\nSELECT * FROM {changes} WHERE from_ord = {{{{ord}}}};\n\
             -- section: changes\nSELECT (SELECT count(*) FROM _new) + (SELECT count(*) FROM _gone);\n",
            read = self.read("{{file}}", false),
            key_null = self.key_null(""),
            on_cs = self.key_eq("c", "s"),
            on_ce = self.key_eq("c", "e"),
            c_keys = self.keys("c."),
        );
        sql.push_str(&self.load_all());
        sql
    }

    /// The batch sections: every release of a first build at once, versions
    /// by window functions — the rows the one-by-one sections would write.
    fn load_all(&self) -> String {
        let (changes, current, closed) = (self.t("changes"), self.t("current"), self.t("closed"));
        let keys = self.keys("");
        let values = self.values_struct();
        // The batch's own columns: `__materia_`-prefixed, a prefix no
        // declared column may take, so any CSV header can be loaded.
        let internal = "__materia_ord, __materia_prev_ord, __materia_next_ord, __materia_prev";
        let (reappears, deletions) = match self.table.disposition {
            Disposition::Replace => (
                " OR __materia_prev_ord <> __materia_ord - 1",
                format!(
                    "INSERT INTO {changes}\nSELECT * EXCLUDE ({internal}), true AS deleted, __materia_ord + 1 AS from_ord\nFROM _v\n\
                     WHERE __materia_ord < {{{{last_ord}}}}\n  AND (__materia_next_ord IS NULL OR __materia_next_ord <> __materia_ord + 1);\n",
                ),
            ),
            Disposition::Merge => ("", String::new()),
        };
        format!(
            "-- section: stage-all\n\
             CREATE OR REPLACE TEMP TABLE _files AS SELECT * FROM (VALUES {{{{file_ords}}}}) AS t(path, ord);\n\
             CREATE OR REPLACE TEMP TABLE _stage AS\n{read};\n\
             -- section: check-all\n\
             SELECT count(*) FROM (\n    SELECT __materia_ord FROM _stage WHERE {key_null}\n    UNION ALL\n    \
             SELECT __materia_ord FROM _stage GROUP BY __materia_ord, {keys} HAVING count(*) > 1);\n\
             -- section: apply-all\n\
             CREATE OR REPLACE TEMP TABLE _v AS\n\
             SELECT *, lag(__materia_ord) OVER w AS __materia_prev_ord, lead(__materia_ord) OVER w AS __materia_next_ord,\n       \
             lag({values}) OVER w AS __materia_prev\n\
             FROM _stage\nWINDOW w AS (PARTITION BY {keys} ORDER BY __materia_ord);\n\
             INSERT INTO {changes}\nSELECT * EXCLUDE ({internal}), false AS deleted, __materia_ord AS from_ord\nFROM _v\n\
             WHERE __materia_prev_ord IS NULL{reappears} OR __materia_prev IS DISTINCT FROM {values};\n\
             {deletions}\
             INSERT INTO {closed}\nSELECT {keys}, from_ord, to_ord\n\
             FROM (SELECT {keys}, from_ord,\n             lead(from_ord) OVER (PARTITION BY {keys} ORDER BY from_ord) AS to_ord\n      FROM {changes})\n\
             WHERE to_ord IS NOT NULL;\n\
             CREATE OR REPLACE TABLE {current} AS\nSELECT * FROM {changes}\n\
             QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY from_ord DESC) = 1;\n\
             -- section: changes-all\n\
             SELECT s.ord, s.n, coalesce(c.n, 0)\n\
             FROM (SELECT __materia_ord AS ord, count(*) AS n FROM _stage GROUP BY 1) AS s\n\
             LEFT JOIN (SELECT from_ord, count(*) AS n FROM {changes} GROUP BY from_ord) AS c ON c.from_ord = s.ord\n\
             ORDER BY s.ord;\n",
            read = self.read("[{{files}}]", true),
            key_null = self.key_null(""),
        )
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
