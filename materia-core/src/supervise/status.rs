//! Where the pipeline stands, gathered in one value (`materia status`): the
//! supervisor's state, the landing zone, the lakehouse, the backup and the last
//! restore drill. Reading it changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Serialize;

use super::state::State;
use crate::error::Result;
use crate::landing::{LandingKey, LandingStore, Stats};
use crate::transform::{Lakehouse, Rejected, Sources};

/// The newest landed file of a dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Newest {
    /// Its landing key.
    pub key: LandingKey,
    /// When it landed (`None`: a file the ledger does not record).
    pub landed_at: Option<Timestamp>,
}

/// The published lakehouse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Published {
    /// The lakehouse file.
    pub path: PathBuf,
    /// When it was last published (the file's modification time).
    pub modified_at: Option<Timestamp>,
    /// Seconds since then.
    pub age_seconds: Option<u64>,
    /// Landing files quarantined by transform (`raw.rejected`).
    pub rejected: Vec<Rejected>,
    /// Where its declarations and models came from (`None`: not recorded,
    /// a build of an older Materia).
    pub sources: Option<Sources>,
}

/// Where the pipeline stands: what `materia status` prints (its `--json` is
/// this value serialized).
///
/// ```
/// # fn main() -> materia_core::Result<()> {
/// use materia_core::landing::LandingStore;
/// use materia_core::supervise::Status;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = LandingStore::open(dir.path().join("landing"))?;
/// let status = Status::gather(&store, &dir.path().join("lakehouse.duckdb"))?;
/// assert!(status.state.last_cycle.is_none(), "no cycle has run");
/// assert_eq!(status.landing.files, 0);
/// assert!(status.lakehouse.is_none(), "nothing published yet");
/// assert!(status.last_backup.is_none(), "no push has uploaded");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// The supervisor's state: its version, the last cycle, each step's last
    /// run, the alert streak.
    #[serde(flatten)]
    pub state: State,
    /// Files and bytes landed.
    pub landing: Stats,
    /// The newest landed file of each dataset, by name.
    pub newest: BTreeMap<String, Newest>,
    /// The published lakehouse (`None`: not published yet).
    pub lakehouse: Option<Published>,
    /// The last restore drill.
    #[cfg(feature = "s3")]
    pub last_drill: Option<crate::drill::LastDrill>,
    /// When a push last recorded an upload (`None`: no `materia mirror` has
    /// uploaded from this landing zone).
    pub last_backup: Option<Timestamp>,
}

impl Status {
    /// Gathers the status of the landing zone `store` and the lakehouse at
    /// `duckdb_path`. A state or drill record that cannot be read is an error;
    /// a lakehouse whose quarantine list cannot be read is reported without
    /// it (and a warning logged).
    pub fn gather(store: &LandingStore, duckdb_path: &Path) -> Result<Status> {
        let landing_dir = store.root();
        let state = State::load(landing_dir)?;
        let landing = store.stats();
        let newest = newest(store, &landing);
        Ok(Status {
            state,
            landing,
            newest,
            lakehouse: published(duckdb_path),
            #[cfg(feature = "s3")]
            last_drill: crate::drill::LastDrill::load(landing_dir)?,
            last_backup: last_backup(store),
        })
    }
}

/// The newest landed file of each dataset in `landing`.
fn newest(store: &LandingStore, landing: &Stats) -> BTreeMap<String, Newest> {
    let mut newest = BTreeMap::new();
    for dataset in landing.datasets.keys() {
        if let Ok(d) = dataset.parse()
            && let Some(entry) = store.latest(&d)
        {
            let landed_at = entry.release.as_ref().map(|r| r.landed_at);
            newest.insert(
                dataset.clone(),
                Newest {
                    key: entry.key,
                    landed_at,
                },
            );
        }
    }
    newest
}

/// The lakehouse at `path`, when one is published there.
fn published(path: &Path) -> Option<Published> {
    let modified = std::fs::metadata(path).ok()?.modified().ok();
    let lake = Lakehouse::open_read_only(path);
    let (rejected, sources) = match &lake {
        Ok(lake) => (lake.rejected(), lake.sources()),
        Err(e) => {
            tracing::warn!("cannot read the lakehouse: {e}");
            (Ok(Vec::new()), Ok(None))
        }
    };
    Some(Published {
        path: path.to_path_buf(),
        modified_at: modified.and_then(|t| Timestamp::try_from(t).ok()),
        age_seconds: modified.and_then(|t| t.elapsed().ok()).map(|d| d.as_secs()),
        rejected: rejected.unwrap_or_else(|e| {
            tracing::warn!("cannot read the quarantine list: {e}");
            Vec::new()
        }),
        sources: sources.unwrap_or_else(|e| {
            tracing::warn!("cannot read where the build's models came from: {e}");
            None
        }),
    })
}

/// The newest change to the mirror's records under `.materia/mirror/` (its
/// locks aside): when a push last recorded an upload.
fn last_backup(store: &LandingStore) -> Option<Timestamp> {
    std::fs::read_dir(store.meta().mirror())
        .ok()?
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".lock"))
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()
        .and_then(|t| Timestamp::try_from(t).ok())
}
