//! [`plan`]: what the next `transform` would do and why, without doing it —
//! `sqlmesh plan`, `rclone --dry-run`. It writes nothing: the history and
//! the published file are opened read-only when they exist, no lock file
//! or build file is created.

use std::collections::BTreeSet;
use std::path::PathBuf;

use duckdb::Connection;
use serde::Serialize;

use super::drops::{self, Vanishing};
use super::engine::duck;
use super::files::absolute;
use super::history::{self, History, SCHEMA_VERSION};
use super::record::Record;
use super::runs::{self, RunReason};
use super::{Inputs, Published, Sources, TransformOptions, landing_files, new_files, out_of_order};
use crate::error::{Error, Result};
use crate::landing::LandingStore;

/// What the next [`transform`](super::transform) with the same options would
/// do, and why. Its JSON field names are stable (`materia transform --plan
/// --json` prints it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BuildPlan {
    /// The published lakehouse.
    pub lakehouse: PathBuf,
    /// Whether the build would publish a new lakehouse.
    pub publishes: bool,
    /// Whether the build would be refused: it leaves out a dataset or model
    /// of the published build that `--drop` does not confirm (see `drops`).
    pub refused: bool,
    /// The releases it would load, per dataset.
    pub new_releases: Vec<NewReleases>,
    /// Whether it would rebuild the history, and why.
    pub history: HistoryPlan,
    /// The models that would run, in run order, and why (the audits run with
    /// every build that publishes).
    pub models: Vec<ModelPlan>,
    /// The datasets and models of the published build that this one leaves
    /// out, with their tables.
    pub drops: Vec<Vanishing>,
    /// Where this build's declarations and models come from.
    pub sources: Sources,
    /// Where the published build's came from (`None`: nothing published, or
    /// not recorded).
    pub published_sources: Option<Sources>,
}

/// The releases of one dataset a build would load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewReleases {
    /// The dataset.
    pub dataset: String,
    /// How many.
    pub count: usize,
    /// The first one's landing key (publication order).
    pub first: String,
    /// The last one's.
    pub last: String,
}

/// Whether a build would rebuild the history from the landing zone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HistoryPlan {
    /// It would.
    pub rebuilt: bool,
    /// Why (empty when it is kept).
    pub reasons: Vec<RebuildReason>,
}

/// Why a build would rebuild the history.
///
/// ```
/// use materia_core::transform::RebuildReason;
/// let r = RebuildReason::DeclarationsChanged { datasets: vec!["weather".into()] };
/// assert_eq!(serde_json::to_value(&r).unwrap()["reason"], "declarations_changed");
/// assert_eq!(r.to_string(), "the declaration changed for weather");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RebuildReason {
    /// There is no history yet (a first build).
    NoHistory,
    /// DuckDB cannot open it.
    Unreadable {
        /// DuckDB's error.
        error: String,
    },
    /// It has another layout.
    SchemaVersion {
        /// The history's.
        found: i64,
        /// This Materia's.
        expected: i64,
    },
    /// The dataset declarations differ from those it was loaded under.
    DeclarationsChanged {
        /// The datasets declared, removed or changed since the published
        /// build (empty when it does not record them).
        datasets: Vec<String>,
    },
    /// A release landed before one already loaded (an archive backfill).
    OutOfOrder {
        /// Its landing key.
        release: String,
    },
    /// `--full-refresh`.
    FullRefresh,
}

impl std::fmt::Display for RebuildReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RebuildReason::NoHistory => f.write_str("there is no history yet"),
            RebuildReason::Unreadable { error } => write!(f, "DuckDB cannot open it: {error}"),
            RebuildReason::SchemaVersion { found, expected } => {
                write!(
                    f,
                    "its layout is version {found}, this Materia's {expected}"
                )
            }
            RebuildReason::DeclarationsChanged { datasets } if datasets.is_empty() => {
                f.write_str("the dataset declarations changed")
            }
            RebuildReason::DeclarationsChanged { datasets } => {
                write!(f, "the declaration changed for {}", datasets.join(", "))
            }
            RebuildReason::OutOfOrder { release } => {
                write!(f, "{release} landed out of publication order")
            }
            RebuildReason::FullRefresh => f.write_str("--full-refresh"),
        }
    }
}

/// A model a build would run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModelPlan {
    /// Its name.
    pub model: String,
    /// Its kind (`table`, …).
    pub kind: String,
    /// Why it runs.
    pub reasons: Vec<RunReason>,
}

/// What `transform(store, options)` would do now, and why — writing
/// nothing (see the module doc): the releases it would load, whether it
/// would rebuild the history, the models it would run, the tables it would
/// drop and whether it would be refused for them.
///
/// ```
/// # fn main() -> materia_core::Result<()> {
/// use materia_core::landing::LandingStore;
/// use materia_core::transform::{TransformOptions, plan};
/// let dir = tempfile::tempdir().unwrap();
/// let store = LandingStore::open(dir.path().join("landing"))?;
/// let plan = plan(&store, &TransformOptions::new(dir.path().join("lakehouse.duckdb")))?;
/// assert!(plan.publishes && plan.history.rebuilt, "a first build");
/// assert!(!dir.path().join("lakehouse.duckdb").exists(), "nothing written");
/// # Ok(()) }
/// ```
pub fn plan(store: &LandingStore, options: &TransformOptions) -> Result<BuildPlan> {
    let target = absolute(&options.duckdb_path)?;
    let inputs = Inputs::new(options)?;
    let published = Published::read(&target);
    let drops = published
        .record
        .as_ref()
        .map(|r| drops::vanishing(r, &inputs.record, &options.drops))
        .unwrap_or_default();
    let conn = Connection::open_in_memory().map_err(duck("opening DuckDB"))?;
    let seen = examine_history(store, &conn, &inputs, &target, published.record.as_ref())?;
    let moved = if seen.history.rebuilt {
        Some(if options.full_refresh {
            RunReason::FullRefresh
        } else {
            RunReason::HistoryRebuilt
        })
    } else if !seen.new.is_empty() || published.info != seen.info {
        Some(RunReason::NewData)
    } else {
        None
    };
    let runs = runs::decide(&inputs.wanted(), published.record.as_ref(), moved);
    let models = inputs
        .models
        .iter()
        .filter_map(|m| {
            let reasons = runs.as_ref()?.get(&m.name)?.clone();
            Some(ModelPlan {
                model: m.name.clone(),
                kind: m.kind.name().to_owned(),
                reasons,
            })
        })
        .collect();
    Ok(BuildPlan {
        lakehouse: target,
        publishes: runs.is_some(),
        refused: drops.iter().any(|d| !d.confirmed),
        new_releases: seen.new,
        history: seen.history,
        models,
        drops,
        sources: inputs.record.sources.clone(),
        published_sources: published
            .record
            .filter(Record::is_complete)
            .map(|r| r.sources),
    })
}

/// What the history says about the next build.
struct Seen {
    history: HistoryPlan,
    new: Vec<NewReleases>,
    /// The history's build info (`None`: it would be rebuilt).
    info: Option<history::BuildInfo>,
}

/// Opens the history read-only (when it exists) and tells whether the
/// build would rebuild it, and what it would load.
fn examine_history(
    store: &LandingStore,
    conn: &Connection,
    inputs: &Inputs<'_>,
    target: &std::path::Path,
    published: Option<&Record>,
) -> Result<Seen> {
    let path = history::path_of(target);
    let rebuild = |reason: RebuildReason| -> Result<Seen> {
        Ok(Seen {
            history: HistoryPlan {
                rebuilt: true,
                reasons: vec![reason],
            },
            new: summarize(landing_files(store, inputs.tables(), |_| true)?),
            info: None,
        })
    };
    if inputs.options.full_refresh {
        return rebuild(RebuildReason::FullRefresh);
    }
    if !path.exists() {
        return rebuild(RebuildReason::NoHistory);
    }
    let history = match History::attach_read_only(conn, &path) {
        Ok(history) => history,
        // A transform holds it (DuckDB's lock): its build is under way.
        Err(e) if e.to_string().contains("lock") => {
            return Err(Error::Transform {
                reason: format!(
                    "a transform of {} is running (the history is locked): plan again when it \
                     is done ({e})",
                    target.display()
                ),
                source: Some(Box::new(e)),
            });
        }
        Err(e) => {
            return rebuild(RebuildReason::Unreadable {
                error: e.to_string(),
            });
        }
    };
    let (found, tables) = history.loaded_under().unwrap_or((0, String::new()));
    if found != SCHEMA_VERSION {
        return rebuild(RebuildReason::SchemaVersion {
            found,
            expected: SCHEMA_VERSION,
        });
    }
    if tables != inputs.declared.fingerprint {
        let datasets = changed_datasets(published, &inputs.record);
        return rebuild(RebuildReason::DeclarationsChanged { datasets });
    }
    let new = new_files(store, &history, inputs.tables())?;
    if let Some(release) = out_of_order(&history, &new)? {
        return rebuild(RebuildReason::OutOfOrder { release });
    }
    Ok(Seen {
        history: HistoryPlan::default(),
        new: summarize(new),
        info: Some(history.build_info()?),
    })
}

/// The datasets declared, removed or changed between `published` and `this`.
fn changed_datasets(published: Option<&Record>, this: &Record) -> Vec<String> {
    let Some(published) = published else {
        return Vec::new();
    };
    let names: BTreeSet<&String> = published
        .datasets
        .keys()
        .chain(this.datasets.keys())
        .collect();
    names
        .into_iter()
        .filter(|d| published.datasets.get(*d) != this.datasets.get(*d))
        .cloned()
        .collect()
}

/// Count, first and last of each dataset's releases.
fn summarize(
    files: std::collections::BTreeMap<&str, Vec<crate::landing::Entry>>,
) -> Vec<NewReleases> {
    files
        .into_iter()
        .filter_map(|(dataset, entries)| {
            Some(NewReleases {
                dataset: dataset.to_owned(),
                count: entries.len(),
                first: entries.first()?.key.to_string(),
                last: entries.last()?.key.to_string(),
            })
        })
        .collect()
}
