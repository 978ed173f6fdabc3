//! What a build records in the file it publishes, and reads back from the
//! published one: the input of the build, so the next build can tell what
//! changed (`transform`), what would vanish (`drops.rs`) and why a model
//! runs (`plan.rs`).
//!
//! - `materia.published`: `models` (one fingerprint of every model and load,
//!   with the storage version: a slot built with another one is built
//!   afresh), `storage_version`, `config` (the declarations' file; NULL: the
//!   built-in declarations) and `models_dir` (NULL: none);
//! - `materia.datasets`: each declared dataset and its declaration's
//!   fingerprint;
//! - `materia.models`: each model (name, kind, fingerprint of its SQL, file,
//!   origin — `built-in`, `generated` or `user` — and the history generation
//!   it was built at).
//!
//! A file of an older Materia has only `materia.published.models`: its
//! datasets are read from its ledger (`raw.releases`), its models are unknown.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use duckdb::{Connection, OptionalExt};
use serde::Serialize;

use super::engine::duck;
use super::models::{Kind, Model};
use crate::error::Result;

/// Where a build's declarations and models came from, recorded in the file it
/// publishes (`materia status` shows them): the caller passes what it was
/// given (the CLI: `--config`/`MATERIA_CONFIG`, `--models`/`MATERIA_MODELS`).
///
/// ```
/// let sources = materia_core::transform::Sources { config: Some("/etc/materia.toml".into()), models_dir: None };
/// assert_eq!(sources.config_text(), "/etc/materia.toml");
/// assert_eq!(materia_core::transform::Sources::default().config_text(), "built-in declarations");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sources {
    /// The config file that declared the datasets (`None`: the built-in
    /// declarations).
    pub config: Option<PathBuf>,
    /// The directory of the caller's models (`None`: none).
    pub models_dir: Option<PathBuf>,
}

impl Sources {
    /// The config's path, or `built-in declarations`.
    pub fn config_text(&self) -> String {
        self.config.as_ref().map_or_else(
            || "built-in declarations".to_owned(),
            |p| p.display().to_string(),
        )
    }

    /// The models directory, or `no models directory`.
    pub fn models_text(&self) -> String {
        self.models_dir.as_ref().map_or_else(
            || "no models directory".to_owned(),
            |p| p.display().to_string(),
        )
    }
}

/// Where a model comes from.
pub(crate) const BUILT_IN: &str = "built-in";
/// A model a dataset's declaration generates.
pub(crate) const GENERATED: &str = "generated";
/// A model of the caller's (`--models`).
pub(crate) const USER: &str = "user";

/// One model as a build ran it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ModelRecord {
    pub name: String,
    pub kind: String,
    /// The fingerprint of its name and SQL.
    pub fingerprint: String,
    pub file: String,
    /// [`BUILT_IN`], [`GENERATED`] or [`USER`].
    pub origin: String,
    /// The history generation it was built at.
    pub generation: i64,
    /// The build that ran it (copied with its table): two slots' tables are
    /// the same only when the same build made them, even for a model reading
    /// `random()` or `now()`.
    pub built_by: String,
}

impl ModelRecord {
    /// Whether it leaves a table (or view) in the published file.
    pub(crate) fn has_table(&self) -> bool {
        self.kind != Kind::Audit.name() && self.kind != Kind::Setup.name()
    }
}

/// What a build is made of (its models' generation: the history's at the
/// time it is written).
#[derive(Clone, Debug, Default)]
pub(crate) struct Record {
    /// `materia.published.models`.
    pub models_print: String,
    /// `None`: not recorded.
    pub storage_version: Option<String>,
    pub sources: Sources,
    /// Each dataset's declaration fingerprint (`""`: unknown, a file of an
    /// older Materia).
    pub datasets: BTreeMap<String, String>,
    /// Empty in a file of an older Materia.
    pub models: Vec<ModelRecord>,
}

impl Record {
    /// The record of a build of `models` (in run order), of which `user` are
    /// the caller's and `generated` the declarations'.
    pub(crate) fn new(
        models: &[Model],
        generated: &BTreeSet<String>,
        user: &BTreeSet<String>,
        datasets: BTreeMap<String, String>,
        models_print: String,
        storage_version: &str,
        sources: Sources,
    ) -> Record {
        let origin = |name: &String| {
            if user.contains(name) {
                USER
            } else if generated.contains(name) {
                GENERATED
            } else {
                BUILT_IN
            }
        };
        Record {
            models_print,
            storage_version: Some(storage_version.to_owned()),
            sources,
            datasets,
            models: models
                .iter()
                .map(|m| ModelRecord {
                    name: m.name.clone(),
                    kind: m.kind.name().to_owned(),
                    fingerprint: fingerprint(m),
                    file: m.file.clone(),
                    origin: origin(&m.name).to_owned(),
                    generation: 0,
                    built_by: String::new(),
                })
                .collect(),
        }
    }

    /// Whether the file records its models and sources (a file of an older
    /// Materia does not).
    pub(crate) fn is_complete(&self) -> bool {
        !self.models.is_empty()
    }

    /// The model named `name`.
    pub(crate) fn model(&self, name: &str) -> Option<&ModelRecord> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Writes the record into the attached `lake`: each model as `carried`
    /// has it (a table kept or copied from another build), else built now,
    /// at `generation` by `built_by`.
    pub(crate) fn write(
        &self,
        conn: &Connection,
        (generation, built_by): (i64, &str),
        carried: &BTreeMap<String, ModelRecord>,
    ) -> Result<()> {
        let context = duck("recording the build (materia.published)");
        conn.execute_batch(
            "CREATE SCHEMA IF NOT EXISTS lake.materia; \
             CREATE OR REPLACE TABLE lake.materia.published (models VARCHAR, \
               storage_version VARCHAR, config VARCHAR, models_dir VARCHAR); \
             CREATE OR REPLACE TABLE lake.materia.datasets (dataset VARCHAR, fingerprint VARCHAR); \
             CREATE OR REPLACE TABLE lake.materia.models (name VARCHAR, kind VARCHAR, \
               fingerprint VARCHAR, file VARCHAR, origin VARCHAR, generation BIGINT, \
               built_by VARCHAR)",
        )
        .map_err(&context)?;
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        conn.execute(
            "INSERT INTO lake.materia.published VALUES (?, ?, ?, ?)",
            duckdb::params![
                self.models_print,
                self.storage_version,
                path(&self.sources.config),
                path(&self.sources.models_dir)
            ],
        )
        .map_err(&context)?;
        for (dataset, print) in &self.datasets {
            conn.execute(
                "INSERT INTO lake.materia.datasets VALUES (?, ?)",
                [dataset, print],
            )
            .map_err(&context)?;
        }
        for m in &self.models {
            let (generation, built_by) = carried
                .get(&m.name)
                .map_or((generation, built_by), |c| (c.generation, &c.built_by));
            conn.execute(
                "INSERT INTO lake.materia.models VALUES (?, ?, ?, ?, ?, ?, ?)",
                duckdb::params![
                    m.name,
                    m.kind,
                    m.fingerprint,
                    m.file,
                    m.origin,
                    generation,
                    built_by
                ],
            )
            .map_err(&context)?;
        }
        Ok(())
    }

    /// The record of the database `db` on `conn` (`Some("lake")`; `None`: the
    /// connection's own database, a published file opened on its own);
    /// `None` when it has none.
    pub(crate) fn read(conn: &Connection, db: Option<&str>) -> duckdb::Result<Option<Record>> {
        let db = match db {
            Some(db) => db.to_owned(),
            None => conn.query_row("SELECT current_database()", [], |r| r.get(0))?,
        };
        let has = |table: &str| -> duckdb::Result<bool> {
            conn.query_row(
                "SELECT count(*) > 0 FROM duckdb_tables() \
                 WHERE database_name = ? AND schema_name = 'materia' AND table_name = ?",
                [db.as_str(), table],
                |r| r.get(0),
            )
        };
        if !has("published")? {
            return Ok(None);
        }
        let db = super::quoted_ident(&db);
        let Some(models_print) = conn
            .query_row(
                &format!("SELECT models FROM {db}.materia.published"),
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()?
        else {
            return Ok(None);
        };
        let mut record = Record {
            // `{fingerprint}/{storage version}`, in every Materia's files.
            storage_version: models_print.rsplit_once('/').map(|(_, v)| v.to_owned()),
            models_print,
            ..Record::default()
        };
        if !has("models")? {
            // An older Materia's file: its datasets are those it loaded.
            record.datasets = strings(
                conn,
                &format!("SELECT DISTINCT dataset, '' FROM {db}.raw.releases"),
            )?
            .into_iter()
            .collect();
            return Ok(Some(record));
        }
        let (version, config, models_dir) = conn.query_row(
            &format!("SELECT storage_version, config, models_dir FROM {db}.materia.published"),
            [],
            |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            },
        )?;
        record.storage_version = version.or(record.storage_version);
        record.sources = Sources {
            config: config.map(PathBuf::from),
            models_dir: models_dir.map(PathBuf::from),
        };
        record.datasets = strings(
            conn,
            &format!("SELECT dataset, fingerprint FROM {db}.materia.datasets"),
        )?
        .into_iter()
        .collect();
        let mut stmt = conn.prepare(&format!(
            "SELECT name, kind, fingerprint, file, origin, generation, built_by \
             FROM {db}.materia.models"
        ))?;
        record.models = stmt
            .query_map([], |r| {
                Ok(ModelRecord {
                    name: r.get(0)?,
                    kind: r.get(1)?,
                    fingerprint: r.get(2)?,
                    file: r.get(3)?,
                    origin: r.get(4)?,
                    generation: r.get(5)?,
                    built_by: r.get(6)?,
                })
            })?
            .collect::<duckdb::Result<Vec<_>>>()?;
        Ok(Some(record))
    }
}

/// The fingerprint of one model: its name and SQL.
pub(crate) fn fingerprint(model: &Model) -> String {
    super::models::fingerprint([(model.name.as_str(), model.sql.as_ref())])
}

/// The (first, second) string columns of `sql`'s rows.
fn strings(conn: &Connection, sql: &str) -> duckdb::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare(sql)?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}
