//! The SQL models and the small runner that orders them — the part of SQLMesh
//! Materia needs, no more.
//!
//! Each file in `materia-core/models/` is embedded at compile time and starts
//! with a header:
//!
//! ```sql
//! -- model: serving.psd_latest
//! -- kind: table            (setup | table | view | audit)
//! -- depends: serving.releases
//! ```
//!
//! `setup` models run first, on the history database (`history.rs`). `table`
//! and `view` models build the published file every build (the history is
//! attached as `history`), and `audit` files hold statements (each after `--
//! audit: error|warn TEXT`) that select its offending rows (`audit.rs`).
//! Models run in dependency order (ties by name). A caller adds its own
//! `table`, `view` and `audit` models. Each declared dataset's setup and
//! serving models are generated (`declared/`) and run with these; its load is
//! not a model: typed statements run per release (`load.rs`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::engine::{duck, object_kind};
use crate::error::{Error, IoContext, Result, duckdb_message, duckdb_source};

/// How a model is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Creates the history's tables, before any load.
    Setup,
    /// Builds a table of the published file.
    Table,
    /// Creates a view in the published file (`CREATE OR REPLACE VIEW`).
    View,
    /// Selects offending rows of the published file.
    Audit,
}

impl Kind {
    /// The kind as a model's `-- kind:` header names it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Setup => "setup",
            Kind::Table => "table",
            Kind::View => "view",
            Kind::Audit => "audit",
        }
    }

    /// Whether the model builds a relation of the published file — a table
    /// or a view, which run together in dependency order (the one place that
    /// says which models build the published file).
    pub(crate) fn builds_relation(self) -> bool {
        matches!(self, Kind::Table | Kind::View)
    }
}

/// The kinds a caller's model can have, as errors list them.
const CALLER_KINDS: &str = "`table`, `view` or `audit`";

/// One SQL model: a file's text with its `-- model:`, `-- kind:` and
/// `-- depends:` header. Built-in models ship in the binary; a caller adds its
/// own (`table`, `view` and `audit` kinds), which run after the built-in ones
/// in dependency order, with the same audits — from a directory
/// (`materia transform --models DIR`) or as values.
///
/// ```
/// use materia_core::transform::Model;
/// let m = Model::parse("brazil.sql", "-- model: serving.brazil\n-- kind: view\n\
///     -- depends: serving.psd_latest\n\
///     CREATE OR REPLACE VIEW serving.brazil AS SELECT * FROM serving.psd_latest WHERE country_code = 'BR';\n")?;
/// assert_eq!(m.name(), "serving.brazil");
/// assert!(Model::parse("x.sql", "-- model: x\n-- kind: load\n").is_err(), "load models are built in");
/// let unknown = Model::parse("x.sql", "-- model: x\n-- kind: incremental\n").unwrap_err().to_string();
/// assert!(unknown.contains("x.sql") && unknown.contains("\"incremental\"") && unknown.contains("`view`"));
/// # Ok::<(), materia_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Model {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) depends: Vec<String>,
    pub(crate) sql: Cow<'static, str>,
    /// Where it came from, for errors (`models/40_coffee_balance.sql`, a user's path, a generated table).
    pub(crate) file: String,
    /// The caller's ([`Model::parse`]), not built in or generated.
    pub(crate) by_caller: bool,
}

impl Model {
    /// Parses a caller's model (`table`, `view` or `audit`); `file` names it
    /// in errors.
    pub fn parse(file: impl Into<String>, sql: impl Into<String>) -> Result<Model> {
        let file = file.into();
        let model = parse(&file, Cow::Owned(sql.into()))?;
        if model.kind == Kind::Setup {
            return Err(built_in_kind(&file, "setup"));
        }
        check_name(&model)?;
        Ok(Model {
            by_caller: true,
            ..model
        })
    }

    /// Every `*.sql` file in `dir` (not its subdirectories), by name.
    pub fn from_dir(dir: &Path) -> Result<Vec<Model>> {
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).at(dir)? {
            let path = entry.at(dir)?.path();
            if path.extension().is_some_and(|e| e == "sql") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        paths
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).at(p)?;
                Model::parse(p.display().to_string(), text)
            })
            .collect()
    }

    /// The model's name (`-- model:`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the model's statements one by one, so an error names the file
    /// and the line it happened at.
    pub(crate) fn run(&self, conn: &duckdb::Connection) -> Result<()> {
        for (line, statement) in statements(&self.sql) {
            if let Err(e) = conn.execute_batch(statement) {
                let text = duckdb_message(&e);
                let within = error_line(&text)
                    .or_else(|| quoted_name_line(&text, statement))
                    .map_or(0, |l| l.saturating_sub(1));
                let skipped = statement
                    .lines()
                    .position(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"));
                // `line` is where the statement's code starts; DuckDB counts
                // from the statement's first (possibly blank) line.
                let at = if within > 0 {
                    line - skipped.unwrap_or(0) + within
                } else {
                    line
                };
                return Err(Error::Transform {
                    reason: format!("model {} ({}:{at}): {text}", self.name, self.file),
                    source: duckdb_source(e),
                });
            }
        }
        if self.kind == Kind::View || (self.kind == Kind::Table && self.by_caller) {
            self.check_relation(conn)?;
        }
        Ok(())
    }

    /// A caller's `table` or `view` model must leave the table or view it is
    /// named after: a file that creates the other kind, or one of another
    /// name, is told so.
    fn check_relation(&self, conn: &duckdb::Connection) -> Result<()> {
        let (what, create) = match self.kind {
            Kind::View => ("view", "VIEW"),
            _ => ("table", "TABLE"),
        };
        let db: String = conn
            .query_row("SELECT current_database()", [], |r| r.get(0))
            .map_err(duck("the database being built"))?;
        if object_kind(conn, &db, &self.name)?.as_deref() != Some(create) {
            return Err(bad(
                &self.file,
                format!(
                    "a `{what}` model, but no {what} {} exists after it ran: create it with \
                     CREATE OR REPLACE {create} {} AS …",
                    self.name, self.name
                ),
            ));
        }
        Ok(())
    }
}

/// The line (1-based, in `statement`) of the first `"name"` DuckDB quotes in
/// its error — a binder error names the column or table it cannot find.
fn quoted_name_line(message: &str, statement: &str) -> Option<usize> {
    let start = message.find('"')? + 1;
    let name = &message[start..start + message[start..].find('"')?];
    if name.is_empty() {
        return None;
    }
    statement
        .lines()
        .position(|l| l.contains(name))
        .map(|i| i + 1)
}

/// DuckDB's `LINE n:` in a parser or binder error, if any.
fn error_line(message: &str) -> Option<usize> {
    let rest = &message[message.find("LINE ")? + 5..];
    rest[..rest.find(':')?].trim().parse().ok()
}

/// The statements of a SQL text with the line each starts at (1-based),
/// split at `;` outside quotes and comments; empty ones left out.
pub(crate) fn statements(sql: &str) -> Vec<(usize, &str)> {
    let bytes = sql.as_bytes();
    let (mut out, mut start, mut line, mut start_line) = (Vec::new(), 0, 1, 1);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => line += 1,
            quote @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    if bytes[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    if bytes[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                push(&mut out, &sql[start..=i], start_line);
                start = i + 1;
                start_line = line;
            }
            _ => {}
        }
        i += 1;
    }
    if start < bytes.len() {
        push(&mut out, &sql[start..], start_line);
    }
    out
}

/// Adds `text` (one statement) if it holds code, with the line its code
/// starts at (`first` is the line its text starts at).
fn push<'a>(out: &mut Vec<(usize, &'a str)>, text: &'a str, first: usize) {
    let is_code = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with("--");
    if let Some(skipped) = text.lines().position(is_code) {
        // A statement's text begins right after the previous `;`, on its line.
        out.push((first + skipped, text));
    }
}

/// Whether an audit failure fails the build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// Fails the build.
    Error,
    /// Reported with the count of offending rows.
    Warn,
}

/// One audit statement.
#[derive(Clone, Debug)]
pub(crate) struct Audit {
    pub severity: Severity,
    pub description: String,
    pub sql: String,
    /// `file:line` of the line after its `-- audit:` line (its statement).
    pub at: String,
}

const FILES: &[(&str, &str)] = &[
    ("00_schema.sql", include_str!("../../models/00_schema.sql")),
    (
        "20_releases.sql",
        include_str!("../../models/20_releases.sql"),
    ),
    (
        "40_coffee_balance.sql",
        include_str!("../../models/40_coffee_balance.sql"),
    ),
    (
        "50_psd_revisions.sql",
        include_str!("../../models/50_psd_revisions.sql"),
    ),
    (
        "60_cot_coffee.sql",
        include_str!("../../models/60_cot_coffee.sql"),
    ),
    ("90_audits.sql", include_str!("../../models/90_audits.sql")),
];

/// A caller's model of a kind only built-in models have.
fn built_in_kind(file: &str, kind: &str) -> Error {
    bad(
        file,
        format!("kind {kind:?} is built in; a model you add is {CALLER_KINDS}"),
    )
}

fn bad(file: &str, reason: impl std::fmt::Display) -> Error {
    Error::Transform {
        reason: format!("model {file}: {reason}"),
        source: None,
    }
}

/// The schemas Materia keeps: no caller's model may build in them.
const RESERVED_SCHEMAS: [&str; 3] = ["raw", "materia", "history"];

/// A caller's model name: one or two identifiers (letters, digits, `_`, not
/// starting with a digit) joined by `.`; a `table` or `view` model's is
/// `schema.name`, outside the schemas Materia keeps — so a model can never
/// replace `raw.releases` or `materia.build`, and every name can be confirmed
/// with `--drop model:NAME`.
fn check_name(model: &Model) -> Result<()> {
    let ident = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let parts: Vec<&str> = model.name.split('.').collect();
    let shaped = parts.len() <= 2 && parts.iter().all(|p| ident(p));
    let why = if !shaped {
        "a model name is one or two identifiers (letters, digits, _) joined by `.`, e.g. serving.brazil"
    } else if model.kind.builds_relation() && parts.len() != 2 {
        "a `table` or `view` model is named schema.name, e.g. serving.brazil"
    } else if model.kind.builds_relation()
        && RESERVED_SCHEMAS.contains(&parts[0].to_ascii_lowercase().as_str())
    {
        "the schemas raw, materia and history are Materia's own: build in another (serving, or one of yours)"
    } else {
        return Ok(());
    };
    Err(bad(
        &model.file,
        format!("-- model: {:?}: {why}", model.name),
    ))
}

fn parse(file: &str, sql: Cow<'static, str>) -> Result<Model> {
    let header = |key: &str| {
        sql.lines()
            .take_while(|l| l.starts_with("--"))
            .find_map(|l| l.strip_prefix(&format!("-- {key}:")).map(str::trim))
    };
    let name = header("model").ok_or_else(|| bad(file, "no `-- model:` header"))?;
    let kind = match header("kind") {
        Some("setup") => Kind::Setup,
        // The loads are generated from the dataset declarations.
        Some("load") => return Err(built_in_kind(file, "load")),
        Some("table") => Kind::Table,
        Some("view") => Kind::View,
        Some("audit") => Kind::Audit,
        Some(other) => {
            return Err(bad(
                file,
                format!("unknown kind {other:?}: a model is {CALLER_KINDS}"),
            ));
        }
        None => {
            return Err(bad(
                file,
                format!("no `-- kind:` header: a model is {CALLER_KINDS}"),
            ));
        }
    };
    let depends = header("depends")
        .map(|d| {
            d.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok(Model {
        name: name.to_owned(),
        kind,
        depends,
        file: file.to_owned(),
        sql,
        by_caller: false,
    })
}

/// The models in the order to run them: the built-in ones and `generated`
/// (those the declared tables generate), then `extra` (`table`, `view` and
/// `audit` models of the caller) after every built-in one, audits last.
pub(crate) fn ordered(generated: Vec<Model>, extra: &[Model]) -> Result<Vec<Model>> {
    let mut builtin = FILES
        .iter()
        .map(|(file, sql)| parse(&format!("materia-core/models/{file}"), Cow::Borrowed(*sql)))
        .collect::<Result<Vec<_>>>()?;
    builtin.extend(generated);
    let builtin = order(builtin, &BTreeSet::new())?;
    let known: BTreeSet<String> = builtin.iter().map(|m| m.name.clone()).collect();
    if let Some(clash) = extra.iter().find(|m| known.contains(&m.name)) {
        return Err(bad(
            &clash.file,
            format!("{} is a built-in model", clash.name),
        ));
    }
    let extra = order(extra.to_vec(), &known)?;
    let (audits, tables): (Vec<Model>, Vec<Model>) = builtin
        .into_iter()
        .chain(extra)
        .partition(|m| m.kind == Kind::Audit);
    Ok(tables.into_iter().chain(audits).collect())
}

/// Topological order (Kahn), ties broken by name; setup always first.
/// Dependencies on `done` count as met.
fn order(models: Vec<Model>, done: &BTreeSet<String>) -> Result<Vec<Model>> {
    let mut by_name: BTreeMap<String, Model> = BTreeMap::new();
    for m in models {
        if let Some(first) = by_name.get(&m.name) {
            let text = format!("{} is declared twice: here and in {}", m.name, first.file);
            return Err(bad(&m.file, text));
        }
        by_name.insert(m.name.clone(), m);
    }
    for m in by_name.values() {
        if let Some(missing) = m
            .depends
            .iter()
            .find(|d| !by_name.contains_key(*d) && !done.contains(*d))
        {
            return Err(bad(&m.file, format!("depends on unknown model {missing}")));
        }
    }
    let mut done: BTreeSet<String> = done.clone();
    let mut out = Vec::with_capacity(by_name.len());
    let total = by_name.len();
    while out.len() < total {
        let next = by_name
            .values()
            .filter(|m| !done.contains(&m.name))
            .filter(|m| m.depends.iter().all(|d| done.contains(d)))
            .min_by_key(|m| (m.kind != Kind::Setup, m.name.clone()))
            .ok_or_else(|| {
                let stuck: Vec<&str> = by_name
                    .keys()
                    .filter(|n| !done.contains(*n))
                    .map(String::as_str)
                    .collect();
                bad(&stuck.join(", "), "dependency cycle")
            })?;
        done.insert(next.name.clone());
        out.push(next.clone());
    }
    Ok(out)
}

/// A fingerprint of named SQL texts (models' names and SQL), in order.
pub(crate) fn fingerprint<'a>(texts: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (name, sql) in texts {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(sql.as_bytes());
        hasher.update([0]);
    }
    crate::landing::Sha256Digest::from_hasher(hasher).to_string()
}

/// The audit statements of an audit model.
pub(crate) fn audits(model: &Model) -> Result<Vec<Audit>> {
    let mut out: Vec<Audit> = Vec::new();
    for (n, line) in model.sql.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("-- audit:") {
            let rest = rest.trim();
            let (severity, description) = rest.split_once(' ').unwrap_or((rest, ""));
            let severity = match severity {
                "error" => Severity::Error,
                "warn" => Severity::Warn,
                other => {
                    return Err(bad(
                        &model.name,
                        format!("unknown audit severity {other:?}"),
                    ));
                }
            };
            out.push(Audit {
                severity,
                description: description.to_owned(),
                sql: String::new(),
                at: format!("{}:{}", model.file, n + 2),
            });
        } else if let Some(audit) = out.last_mut()
            && !line.starts_with("--")
        {
            audit.sql.push_str(line);
            audit.sql.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, kind: Kind, depends: &[&str]) -> Model {
        Model {
            name: name.into(),
            kind,
            depends: depends.iter().map(|d| (*d).to_owned()).collect(),
            sql: Cow::Borrowed(""),
            file: format!("{name}.sql"),
            by_caller: false,
        }
    }

    #[test]
    fn cycles_and_unknown_dependencies_are_errors() {
        let cycle = order(
            vec![
                model("a", Kind::Table, &["b"]),
                model("b", Kind::Table, &["a"]),
            ],
            &BTreeSet::new(),
        );
        assert!(cycle.expect_err("cycle").to_string().contains("cycle"));
        let unknown = order(vec![model("a", Kind::Table, &["nope"])], &BTreeSet::new());
        assert!(unknown.expect_err("unknown").to_string().contains("nope"));
    }

    #[test]
    fn statements_split_outside_quotes_and_comments_with_their_lines() {
        let sql = "-- model: x\n-- kind: table\nCREATE TABLE a AS SELECT ';' AS s;\n\n-- a; comment\n\
                   SELECT 1 /* ; */\n  , \"x;y\";\nSELECT 2";
        let got: Vec<(usize, String)> = statements(sql)
            .into_iter()
            .map(|(line, s)| (line, s.trim().to_owned()))
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].0, 3);
        assert!(got[0].1.ends_with("';' AS s;"), "{got:?}");
        assert_eq!(got[1].0, 6, "{got:?}");
        assert_eq!((got[2].0, got[2].1.as_str()), (8, "SELECT 2"));
        assert_eq!(error_line("Binder Error: x\n\nLINE 3: SELECT"), Some(3));
    }
}
