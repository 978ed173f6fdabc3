//! The SQL models and the small runner that orders them — the part of SQLMesh
//! Materia needs, no more.
//!
//! Each file in `materia-core/models/` is embedded at compile time and starts
//! with a header:
//!
//! ```sql
//! -- model: serving.psd_latest
//! -- kind: table            (setup | load | table | audit)
//! -- depends: serving.releases
//! ```
//!
//! `setup` models run first, on the history database (`history.rs`); a `load`
//! model runs once per new release on the history, in three sections (each after
//! a `-- section: NAME` line): `stage` reads the file at `{{file}}` into the temp
//! table `_stage`, `check` returns one row of counts (any non-zero count
//! quarantines the release), `apply` writes its changes (its publication order
//! is `{{ord}}`), `changes` counts the rows it wrote. `table` models build the published file from scratch every
//! build (the history is attached as `history`), and `audit` files hold
//! statements (each after `-- audit: error|warn TEXT`) that count offending rows
//! of it. Models run in dependency order (ties by name).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};

/// How a model is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Setup,
    Load,
    Table,
    Audit,
}

/// One parsed model file.
#[derive(Clone, Debug)]
pub(crate) struct Model {
    pub name: String,
    pub kind: Kind,
    pub depends: Vec<String>,
    pub sql: &'static str,
}

/// The parts of a `load` model, each after a `-- section: NAME` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LoadSections<'a> {
    /// Reads the release (`{{file}}`) into the temp table `_stage`.
    pub stage: &'a str,
    /// One row of counts; any non-zero count quarantines the release.
    pub check: &'a str,
    /// Applies the staged release (`{{ord}}`) to the history.
    pub apply: &'a str,
    /// Counts the rows `apply` wrote.
    pub changes: &'a str,
}

impl Model {
    /// Splits a `load` model into its sections.
    pub fn load_sections(&self) -> Result<LoadSections<'static>> {
        let sql: &'static str = self.sql;
        let mut parts: BTreeMap<&str, &'static str> = BTreeMap::new();
        let mut current: Option<(&str, usize)> = None;
        let mut offset = 0;
        for line in sql.split_inclusive('\n') {
            if let Some(name) = line.trim_end().strip_prefix("-- section:") {
                if let Some((prev, start)) = current.take() {
                    parts.insert(prev, &sql[start..offset]);
                }
                let name = name.trim();
                if parts.contains_key(name) {
                    return Err(bad(&self.name, format!("section {name} twice")));
                }
                current = Some((name, offset + line.len()));
            }
            offset += line.len();
        }
        if let Some((last, start)) = current {
            parts.insert(last, &sql[start..]);
        }
        let mut take = |name: &str| {
            parts
                .remove(name)
                .ok_or_else(|| bad(&self.name, format!("no `-- section: {name}`")))
        };
        let sections = LoadSections {
            stage: take("stage")?,
            check: take("check")?,
            apply: take("apply")?,
            changes: take("changes")?,
        };
        if let Some(unknown) = parts.keys().next() {
            return Err(bad(&self.name, format!("unknown section {unknown}")));
        }
        Ok(sections)
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
}

const FILES: &[(&str, &str)] = &[
    ("00_schema.sql", include_str!("../../models/00_schema.sql")),
    (
        "10_psd_changes.sql",
        include_str!("../../models/10_psd_changes.sql"),
    ),
    (
        "20_releases.sql",
        include_str!("../../models/20_releases.sql"),
    ),
    (
        "25_psd_history.sql",
        include_str!("../../models/25_psd_history.sql"),
    ),
    (
        "30_psd_latest.sql",
        include_str!("../../models/30_psd_latest.sql"),
    ),
    (
        "40_coffee_balance.sql",
        include_str!("../../models/40_coffee_balance.sql"),
    ),
    (
        "50_psd_revisions.sql",
        include_str!("../../models/50_psd_revisions.sql"),
    ),
    ("90_audits.sql", include_str!("../../models/90_audits.sql")),
];

fn bad(file: &str, reason: impl std::fmt::Display) -> Error {
    Error::Transform {
        reason: format!("model {file}: {reason}"),
        source: None,
    }
}

fn parse(file: &str, sql: &'static str) -> Result<Model> {
    let header = |key: &str| {
        sql.lines()
            .take_while(|l| l.starts_with("--"))
            .find_map(|l| l.strip_prefix(&format!("-- {key}:")).map(str::trim))
    };
    let name = header("model").ok_or_else(|| bad(file, "no `-- model:` header"))?;
    let kind = match header("kind") {
        Some("setup") => Kind::Setup,
        Some("load") => Kind::Load,
        Some("table") => Kind::Table,
        Some("audit") => Kind::Audit,
        other => return Err(bad(file, format!("unknown kind {other:?}"))),
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
        sql,
    })
}

/// The models in the order to run them.
pub(crate) fn ordered() -> Result<Vec<Model>> {
    let models = FILES
        .iter()
        .map(|(file, sql)| parse(file, sql))
        .collect::<Result<Vec<_>>>()?;
    order(models)
}

/// Topological order (Kahn), ties broken by name; setup always first.
fn order(models: Vec<Model>) -> Result<Vec<Model>> {
    let mut by_name: BTreeMap<String, Model> = BTreeMap::new();
    for m in models {
        if let Some(dup) = by_name.insert(m.name.clone(), m) {
            return Err(bad(&dup.name, "declared twice"));
        }
    }
    for m in by_name.values() {
        if let Some(missing) = m.depends.iter().find(|d| !by_name.contains_key(*d)) {
            return Err(bad(&m.name, format!("depends on unknown model {missing}")));
        }
    }
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::with_capacity(by_name.len());
    while out.len() < by_name.len() {
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

/// The audit statements of an audit model.
pub(crate) fn audits(model: &Model) -> Result<Vec<Audit>> {
    let mut out: Vec<Audit> = Vec::new();
    for line in model.sql.lines() {
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
            sql: "",
        }
    }

    #[test]
    fn shipped_models_run_in_dependency_order() {
        let names: Vec<String> = ordered()
            .expect("valid models")
            .into_iter()
            .map(|m| m.name)
            .collect();
        let pos = |n: &str| names.iter().position(|m| m == n).expect(n);
        assert_eq!(pos("schema"), 0);
        assert!(pos("raw.psd_changes") < pos("serving.psd_history"));
        assert!(pos("serving.releases") < pos("serving.psd_history"));
        assert!(pos("serving.psd_history") < pos("serving.psd_latest"));
        assert!(pos("serving.psd_latest") < pos("serving.coffee_balance"));
        assert!(pos("serving.coffee_balance") < pos("audits"));
        assert!(pos("serving.psd_revisions") < pos("audits"));
    }

    #[test]
    fn cycles_and_unknown_dependencies_are_errors() {
        let cycle = order(vec![
            model("a", Kind::Table, &["b"]),
            model("b", Kind::Table, &["a"]),
        ]);
        assert!(cycle.expect_err("cycle").to_string().contains("cycle"));
        let unknown = order(vec![model("a", Kind::Table, &["nope"])]);
        assert!(unknown.expect_err("unknown").to_string().contains("nope"));
    }

    #[test]
    fn load_sections_split_and_are_checked() {
        let mut m = model("m", Kind::Load, &[]);
        m.sql = "-- model: m\n-- section: stage\nCREATE;\n-- section: check\nSELECT 0, 0;\n\
                 -- section: apply\nINSERT;\n-- section: changes\nSELECT 1;\n";
        let s = m.load_sections().expect("sections");
        assert_eq!(
            (s.stage, s.check, s.apply, s.changes),
            ("CREATE;\n", "SELECT 0, 0;\n", "INSERT;\n", "SELECT 1;\n")
        );
        m.sql = "-- section: stage\nx\n-- section: apply\nz\n";
        let missing = m.load_sections().expect_err("no check");
        assert!(missing.to_string().contains("check"), "{missing}");
        m.sql = "-- section: stage\nx\n-- section: check\ny\n-- section: apply\nz\n-- section: changes\nw\n-- section: oops\n";
        let unknown = m.load_sections().expect_err("unknown");
        assert!(unknown.to_string().contains("oops"), "{unknown}");
        let shipped = ordered().expect("valid");
        for m in shipped.iter().filter(|m| m.kind == Kind::Load) {
            m.load_sections()
                .expect("shipped load models have valid sections");
        }
    }

    #[test]
    fn audits_parse_with_severity() {
        let all = ordered().expect("valid");
        let audit_model = all.iter().find(|m| m.kind == Kind::Audit).expect("audits");
        let audits = audits(audit_model).expect("parse");
        assert!(audits.iter().any(|a| a.severity == Severity::Error));
        assert!(audits.iter().any(|a| a.severity == Severity::Warn));
        assert!(audits.iter().all(|a| a.sql.contains("count(*)")));
    }
}
