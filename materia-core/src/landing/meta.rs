//! [`MetaDir`]: `{LANDING_DIR}/.materia/`, the one owner of Materia's own files.
//!
//! Every file and folder under it, who writes it, and how:
//!
//! | entry | owner | what it is |
//! | --- | --- | --- |
//! | `ledger.jsonl` | `landing` | one JSON record per landed file, appended and fdatasynced before the file gets its name |
//! | `lock` | `landing` | `flock` serializing writers of the store across processes |
//! | `spool/` | `extract`, `mirror` | downloads waiting to be unpacked or landed: locked temp files only |
//! | `state.json` | `supervise` | the last cycle and each step's last run, replaced atomically |
//! | `run.lock` | `supervise` | `flock`: one cycle at a time |
//! | `step-report.jsonl` | `supervise`, `extract` | the running step's report of each dataset's outcome, replaced atomically by the step, removed by the supervisor |
//! | `mirror/` | `mirror` | per bucket (endpoint, bucket, prefix): `{id}.jsonl` confirmed uploads, `{id}.full` the last full push, `{id}.verify` where the sampled verify goes on, `{id}.lock`, `{id}.pending/` multipart uploads in flight |
//! | `drill.json` | `drill` | the last restore drill's outcome, replaced atomically |
//! | `.tmp.*` | any | a write or replacement in progress (or a crashed one, swept at open) |
//!
//! Every file is created `0640` and every folder `0750`, each new name made
//! durable by fsyncing its folder (see `durable.rs`). [`MetaDir::ENTRIES`] pins
//! this table; a test checks that nothing else ever appears.

use std::path::{Path, PathBuf};

use super::durable;
use crate::error::Result;

/// `{LANDING_DIR}/.materia/`: where each of Materia's own files lives.
///
/// ```
/// use materia_core::landing::{LandingStore, MetaDir};
/// let dir = tempfile::tempdir().unwrap();
/// let store = LandingStore::open(dir.path())?;
/// let meta = store.meta();
/// assert_eq!(meta.path(), dir.path().join(".materia"));
/// assert!(meta.ledger().ends_with(".materia/ledger.jsonl"));
/// assert_eq!(MetaDir::of(dir.path()).state(), meta.state());
/// # Ok::<(), materia_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaDir {
    dir: PathBuf,
}

impl MetaDir {
    /// The folder's name under the landing root.
    pub const NAME: &'static str = ".materia";

    /// Every entry that may appear in the folder (temp files aside), as listed
    /// in the module's table.
    pub const ENTRIES: [&'static str; 8] = [
        "ledger.jsonl",
        "lock",
        "spool",
        "state.json",
        "run.lock",
        "step-report.jsonl",
        "mirror",
        "drill.json",
    ];

    /// The folder of the landing zone at `landing_root` (nothing is created).
    pub fn of(landing_root: impl AsRef<Path>) -> MetaDir {
        MetaDir {
            dir: landing_root.as_ref().join(Self::NAME),
        }
    }

    /// Creates the landing root and the folder when missing (durably, `0750`).
    pub(crate) fn create(landing_root: &Path) -> Result<MetaDir> {
        durable::create_root(landing_root)?;
        let dir = durable::create_dirs(landing_root, Path::new(Self::NAME))?;
        Ok(MetaDir { dir })
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The ledger of landed files.
    pub fn ledger(&self) -> PathBuf {
        self.dir.join("ledger.jsonl")
    }

    /// The store's writer lock.
    pub fn store_lock(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// The spool folder for downloads.
    pub fn spool(&self) -> PathBuf {
        self.dir.join("spool")
    }

    /// The supervisor's state file.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The supervisor's run lock.
    pub fn run_lock(&self) -> PathBuf {
        self.dir.join("run.lock")
    }

    /// A step's report of each dataset's outcome (see `supervise`).
    pub fn step_report(&self) -> PathBuf {
        self.dir.join("step-report.jsonl")
    }

    /// The mirror's records.
    pub fn mirror(&self) -> PathBuf {
        self.dir.join("mirror")
    }

    /// The last restore drill's outcome.
    pub fn drill(&self) -> PathBuf {
        self.dir.join("drill.json")
    }

    /// A sub-folder (one of [`MetaDir::ENTRIES`]) created when missing.
    pub(crate) fn create_dir(&self, entry: &str) -> Result<PathBuf> {
        debug_assert!(Self::ENTRIES.contains(&entry), "undocumented entry {entry}");
        durable::create_dirs(&self.dir, Path::new(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accessor_is_a_documented_entry() {
        let meta = MetaDir::of("/x");
        let paths = [
            meta.ledger(),
            meta.store_lock(),
            meta.spool(),
            meta.state(),
            meta.run_lock(),
            meta.step_report(),
            meta.mirror(),
            meta.drill(),
        ];
        let names: Vec<String> = paths
            .iter()
            .map(|p| {
                assert_eq!(p.parent(), Some(Path::new("/x/.materia")));
                p.file_name().expect("name").to_string_lossy().into_owned()
            })
            .collect();
        assert_eq!(names, MetaDir::ENTRIES);
        let doc = include_str!("meta.rs");
        for entry in MetaDir::ENTRIES {
            assert!(
                doc.contains(&format!("//! | `{entry}")),
                "{entry} is not in the module's table"
            );
        }
    }
}
