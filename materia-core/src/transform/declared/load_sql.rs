//! The load a declared table generates ([`LoadSql`]): the statements that
//! stage a release, check it and apply its changes, and the batch that loads
//! a first build's releases at once.

use super::{Gen, ident};
use crate::dataset::{Column, Disposition};
use crate::transform::engine::sql_string;
use crate::transform::load::{BatchSql, LoadSql, Param, Statement};

/// How a generated load writes what varies per release ([`Param`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Spelling {
    /// DuckDB's named parameters (`$ord`), bound when the load runs: the
    /// SQL executed.
    Bound,
    /// `{{ord}}`: the placeholders Materia substituted into the load's text
    /// before its loads were typed. Only hashed — the fingerprints keep the
    /// text they had, so upgrading rebuilds no history and no slot.
    Placeholders,
}

impl Spelling {
    /// `param` in this spelling.
    fn param(self, param: Param) -> String {
        match (self, param) {
            (Spelling::Bound, p) => format!("${}", p.name()),
            // A list of string literals was substituted between the brackets.
            (Spelling::Placeholders, Param::Files) => "[{{files}}]".into(),
            (Spelling::Placeholders, p) => format!("{{{{{}}}}}", p.name()),
        }
    }

    /// A batch's table of (path, publication order), from `$files`
    /// (formerly a `VALUES` list substituted in).
    fn file_ords(self) -> String {
        match self {
            Spelling::Bound => {
                let files = self.param(Param::Files);
                format!("(SELECT unnest({files}), generate_subscripts({files}, 1)::INTEGER)")
            }
            Spelling::Placeholders => "(VALUES {{file_ords}})".into(),
        }
    }
}

impl Gen<'_> {
    /// The load, what varies per release written in `spelling`.
    pub(super) fn load(&self, spelling: Spelling) -> LoadSql {
        let read = self.read(&spelling.param(Param::File), false);
        LoadSql {
            name: format!("raw.{}_changes", self.prefix),
            stage: Statement(format!("CREATE OR REPLACE TEMP TABLE _stage AS\n{read};\n")),
            check: self.check(),
            apply: self.apply(spelling),
            changes: Statement(
                "SELECT (SELECT count(*) FROM _new) + (SELECT count(*) FROM _gone);\n".into(),
            ),
            batch: self.batch(spelling),
        }
    }

    /// One release's check: keys twice and empty keys.
    fn check(&self) -> Statement {
        Statement(format!(
            "-- Sort-based: adjacent equal key hashes are candidates, confirmed on the full key.\n\
             WITH keyed AS (\n    SELECT hash({keys}) AS __materia_h, {keys} FROM _stage),\n\
             candidates AS (\n    SELECT __materia_h FROM (\n        SELECT __materia_h, lag(__materia_h) OVER (ORDER BY __materia_h) AS __materia_prev FROM keyed)\n    \
             WHERE __materia_h = __materia_prev)\n\
             SELECT (SELECT count(*) FROM (\n            SELECT 1 FROM keyed WHERE __materia_h IN (SELECT __materia_h FROM candidates)\n            \
             GROUP BY {keys} HAVING count(*) > 1)) AS duplicate_keys,\n       \
             (SELECT count(*) FROM _stage WHERE {key_null}) AS empty_keys;\n",
            keys = self.keys(""),
            key_null = self.key_null(""),
        ))
    }

    /// One release's changes, written to the history.
    fn apply(&self, spelling: Spelling) -> Vec<Statement> {
        let (changes, current, closed) = (self.t("changes"), self.t("current"), self.t("closed"));
        let keys = self.keys("");
        let on_ce = self.key_eq("c", "e");
        let ord = spelling.param(Param::Ord);
        vec![
            self.new_versions(),
            self.gone(),
            Statement(format!(
                "CREATE OR REPLACE TEMP TABLE _ended AS\nSELECT {keys} FROM _new\nUNION ALL\nSELECT {keys} FROM _gone;\n"
            )),
            Statement(format!(
                "INSERT INTO {closed}\nSELECT {c_keys}, c.from_ord, {ord}\nFROM {current} AS c\nSEMI JOIN _ended AS e ON {on_ce};\n",
                c_keys = self.keys("c."),
            )),
            Statement(format!(
                "INSERT INTO {changes}\nSELECT *, false AS deleted, {ord} AS from_ord FROM _new;\n"
            )),
            Statement(format!(
                "INSERT INTO {changes}\nSELECT *, true AS deleted, {ord} AS from_ord FROM _gone;\n"
            )),
            Statement(format!(
                "CREATE OR REPLACE TABLE {current} AS\nSELECT c.*\nFROM {current} AS c\nANTI JOIN _ended AS e ON {on_ce}\n\
                 UNION ALL\nSELECT * FROM {changes} WHERE from_ord = {ord};\n"
            )),
        ]
    }

    /// `_new`: the staged rows that are new versions.
    fn new_versions(&self) -> Statement {
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
        Statement(format!(
            "-- New versions: a key not current, current as deleted, or with any value changed.\n\
             CREATE OR REPLACE TEMP TABLE _new AS\nSELECT s.*\nFROM _stage AS s\nLEFT JOIN {current} AS c ON {on_cs}\n\
             WHERE c.{first_key} IS NULL OR c.deleted\n   OR {changed};\n",
            current = self.t("current"),
            on_cs = self.key_eq("c", "s"),
        ))
    }

    /// `_gone`: the current keys the release deletes.
    fn gone(&self) -> Statement {
        let current = self.t("current");
        Statement(match self.table.disposition {
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
        })
    }

    /// Every release of a first build at once, versions by window functions
    /// — the rows the one-by-one load would write.
    fn batch(&self, spelling: Spelling) -> BatchSql {
        let keys = self.keys("");
        let read = self.read(&spelling.param(Param::Files), true);
        BatchSql {
            stage: vec![
                Statement(format!(
                    "CREATE OR REPLACE TEMP TABLE _files AS SELECT * FROM {} AS t(path, ord);\n",
                    spelling.file_ords()
                )),
                Statement(format!("CREATE OR REPLACE TEMP TABLE _stage AS\n{read};\n")),
            ],
            check: Statement(format!(
                "SELECT count(*) FROM (\n    SELECT __materia_ord FROM _stage WHERE {key_null}\n    UNION ALL\n    \
                 SELECT __materia_ord FROM _stage GROUP BY __materia_ord, {keys} HAVING count(*) > 1);\n",
                key_null = self.key_null(""),
            )),
            apply: self.batch_apply(spelling),
            changes: Statement(format!(
                "SELECT s.ord, s.n, coalesce(c.n, 0)\n\
                 FROM (SELECT __materia_ord AS ord, count(*) AS n FROM _stage GROUP BY 1) AS s\n\
                 LEFT JOIN (SELECT from_ord, count(*) AS n FROM {changes} GROUP BY from_ord) AS c ON c.from_ord = s.ord\n\
                 ORDER BY s.ord;\n",
                changes = self.t("changes"),
            )),
        }
    }

    /// A batch's versions, written to the history.
    fn batch_apply(&self, spelling: Spelling) -> Vec<Statement> {
        let (changes, current, closed) = (self.t("changes"), self.t("current"), self.t("closed"));
        let keys = self.keys("");
        let values = self.values_struct();
        // The batch's own columns: `__materia_`-prefixed, a prefix no
        // declared column may take, so any CSV header can be loaded.
        let internal = "__materia_ord, __materia_prev_ord, __materia_next_ord, __materia_prev";
        let replace = self.table.disposition == Disposition::Replace;
        let reappears = if replace {
            " OR __materia_prev_ord <> __materia_ord - 1"
        } else {
            ""
        };
        let mut out = vec![
            Statement(format!(
                "CREATE OR REPLACE TEMP TABLE _v AS\n\
                 SELECT *, lag(__materia_ord) OVER w AS __materia_prev_ord, lead(__materia_ord) OVER w AS __materia_next_ord,\n       \
                 lag({values}) OVER w AS __materia_prev\n\
                 FROM _stage\nWINDOW w AS (PARTITION BY {keys} ORDER BY __materia_ord);\n"
            )),
            Statement(format!(
                "INSERT INTO {changes}\nSELECT * EXCLUDE ({internal}), false AS deleted, __materia_ord AS from_ord\nFROM _v\n\
                 WHERE __materia_prev_ord IS NULL{reappears} OR __materia_prev IS DISTINCT FROM {values};\n"
            )),
        ];
        if replace {
            out.push(Statement(format!(
                "INSERT INTO {changes}\nSELECT * EXCLUDE ({internal}), true AS deleted, __materia_ord + 1 AS from_ord\nFROM _v\n\
                 WHERE __materia_ord < {last_ord}\n  AND (__materia_next_ord IS NULL OR __materia_next_ord <> __materia_ord + 1);\n",
                last_ord = spelling.param(Param::LastOrd),
            )));
        }
        out.push(Statement(format!(
            "INSERT INTO {closed}\nSELECT {keys}, from_ord, to_ord\n\
             FROM (SELECT {keys}, from_ord,\n             lead(from_ord) OVER (PARTITION BY {keys} ORDER BY from_ord) AS to_ord\n      FROM {changes})\n\
             WHERE to_ord IS NOT NULL;\n"
        )));
        out.push(Statement(format!(
            "CREATE OR REPLACE TABLE {current} AS\nSELECT * FROM {changes}\n\
             QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY from_ord DESC) = 1;\n"
        )));
        out
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
}
