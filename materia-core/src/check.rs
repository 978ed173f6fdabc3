//! Freshness: whether each dataset's newest release, and the lakehouse, are as
//! recent as promised (`materia check`).
//!
//! - A dataset is **stale** when its newest landed file landed longer ago than
//!   its `max_age` (from its `cadence`: monthly 45 days, weekly 10, daily 2), or
//!   when nothing of it has landed. A repeat download of unchanged content lands
//!   nothing, so "USDA has not published for two months" shows here.
//! - The lakehouse is **stale** when a file of a dataset the transform loads
//!   landed more than `lakehouse_grace` ago and the lakehouse neither holds it
//!   nor has quarantined it (including: there is no lakehouse).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::dataset::Config;
use crate::error::Result;
use crate::landing::{Entry, LandingStore};
use crate::transform::Lakehouse;

/// What `check` found.
///
/// ```
/// use materia_core::check::{FreshnessReport, LakehouseFreshness};
/// let report = FreshnessReport {
///     checked_at: "2026-11-27T06:00:00Z".parse().unwrap(),
///     datasets: vec![],
///     lakehouse: LakehouseFreshness { path: "lake.duckdb".into(), exists: true, behind: vec![], grace_seconds: 7200, stale: false },
/// };
/// assert!(report.is_fresh());
/// assert!(report.problems().is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FreshnessReport {
    /// When the check ran.
    pub checked_at: Timestamp,
    /// Every declared dataset, and every dataset found in the landing zone.
    pub datasets: Vec<DatasetFreshness>,
    /// The published lakehouse.
    pub lakehouse: LakehouseFreshness,
}

/// One dataset's newest release against its allowed age.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DatasetFreshness {
    /// The dataset's name.
    pub dataset: String,
    /// The landing key of its newest file, if any landed.
    pub newest: Option<String>,
    /// When that file landed.
    pub landed_at: Option<Timestamp>,
    /// How long ago, in seconds.
    pub age_seconds: Option<u64>,
    /// The allowed age; `None`: no cadence declared, never stale.
    pub max_age_seconds: Option<u64>,
    /// Older than allowed, or nothing landed.
    pub stale: bool,
}

/// The lakehouse against the landing zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LakehouseFreshness {
    /// `DUCKDB_PATH`.
    pub path: PathBuf,
    /// Whether it exists.
    pub exists: bool,
    /// Landing keys it lacks that landed longer than the grace ago.
    pub behind: Vec<String>,
    /// The grace, in seconds.
    pub grace_seconds: u64,
    /// Whether anything is behind.
    pub stale: bool,
}

impl FreshnessReport {
    /// Whether nothing is stale.
    pub fn is_fresh(&self) -> bool {
        !self.lakehouse.stale && self.datasets.iter().all(|d| !d.stale)
    }

    /// One line per stale thing, naming it (what an alert says).
    pub fn problems(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for d in self.datasets.iter().filter(|d| d.stale) {
            let allowed = d.max_age_seconds.map_or(String::new(), human);
            lines.push(match (&d.newest, d.age_seconds) {
                (Some(key), Some(age)) => format!(
                    "dataset {}: newest release {key} landed {} ago (allowed {allowed})",
                    d.dataset,
                    human(age)
                ),
                _ => format!("dataset {}: nothing has landed", d.dataset),
            });
        }
        let l = &self.lakehouse;
        if l.stale {
            let first = l.behind.first().map(String::as_str).unwrap_or_default();
            lines.push(format!(
                "lakehouse {}{}: {} landed file(s) not built for over {} (first: {first}); run `materia transform`",
                l.path.display(),
                if l.exists { "" } else { " (missing)" },
                l.behind.len(),
                human(l.grace_seconds),
            ));
        }
        lines
    }
}

/// Seconds as `3d 4h`, `2h 5m`, `40s`.
///
/// ```
/// assert_eq!(materia_core::check::human(7500), "2h 5m");
/// ```
pub fn human(seconds: u64) -> String {
    let (d, h, m) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// Checks the landing zone's datasets against `config` and the lakehouse at
/// `duckdb_path` against the landing zone, as of `now`.
///
/// ```
/// # fn main() -> materia_core::Result<()> {
/// use materia_core::{check, dataset::Config, landing::{LandingStore, NewRelease}};
/// let dir = tempfile::tempdir().unwrap();
/// let store = LandingStore::open(dir.path().join("landing"))?;
/// let lake = dir.path().join("lake.duckdb");
/// let now = jiff::Timestamp::now();
/// // Nothing landed: psd (monthly) is stale; the lakehouse lacks nothing.
/// let report = check::check(&store, &Config::default(), &lake, now)?;
/// assert!(report.datasets[0].stale && !report.lakehouse.stale);
///
/// let long_ago = now - jiff::SignedDuration::from_hours(24 * 60);
/// let old = NewRelease::new("psd".parse()?, 2026, 9)?.with_landed_at(long_ago);
/// store.put(old, "Commodity_Code\n0711100\n".as_bytes())?;
/// let report = check::check(&store, &Config::default(), &lake, now)?;
/// assert_eq!(report.datasets[0].age_seconds, Some(60 * 86_400));
/// assert!(report.lakehouse.stale, "landed 60 days ago, never built");
/// assert_eq!(report.problems().len(), 2);
/// # Ok(()) }
/// ```
pub fn check(
    store: &LandingStore,
    config: &Config,
    duckdb_path: &Path,
    now: Timestamp,
) -> Result<FreshnessReport> {
    let entries = store.list();
    let mut newest: BTreeMap<String, (Timestamp, String)> = BTreeMap::new();
    let mut landed: Vec<(&Entry, Timestamp)> = Vec::new();
    for entry in &entries {
        let at = landed_at(store, entry);
        landed.push((entry, at));
        let slot = newest
            .entry(entry.key.dataset.to_string())
            .or_insert((at, entry.key.to_string()));
        if at > slot.0 {
            *slot = (at, entry.key.to_string());
        }
    }
    // Expected datasets, then any other that has landed files.
    let mut names: Vec<String> = config.fetch.clone();
    names.extend(
        newest
            .keys()
            .filter(|n| !names.contains(n))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let datasets = names
        .into_iter()
        .map(|name| {
            let max_age = config.datasets.get(&name).and_then(|d| d.max_age);
            let found = newest.get(&name);
            let age = found.map(|(at, _)| age_of(*at, now));
            let stale = match (max_age, age) {
                (None, _) => false,
                (Some(max), Some(age)) => Duration::from_secs(age) > max,
                (Some(_), None) => true,
            };
            DatasetFreshness {
                dataset: name,
                newest: found.map(|(_, key)| key.clone()),
                landed_at: found.map(|(at, _)| *at),
                age_seconds: age,
                max_age_seconds: max_age.map(|d| d.as_secs()),
                stale,
            }
        })
        .collect();

    let exists = duckdb_path.exists();
    let known: HashSet<String> = if exists {
        let lake = Lakehouse::open_read_only(duckdb_path)?;
        let mut known = lake.loaded_keys()?;
        known.extend(lake.rejected()?.into_iter().map(|r| r.landing_key));
        known
    } else {
        HashSet::new()
    };
    let grace = config.lakehouse_grace.as_secs();
    let mut behind: Vec<String> = landed
        .iter()
        .filter(|(e, _)| config.loads(&e.key.dataset))
        .filter(|(e, at)| age_of(*at, now) > grace && !known.contains(&e.key.to_string()))
        .map(|(e, _)| e.key.to_string())
        .collect();
    behind.sort();
    Ok(FreshnessReport {
        checked_at: now,
        datasets,
        lakehouse: LakehouseFreshness {
            path: duckdb_path.to_path_buf(),
            exists,
            stale: !behind.is_empty(),
            behind,
            grace_seconds: grace,
        },
    })
}

/// When a file landed: its ledger record, or (a file put in place by hand) its
/// modification time.
fn landed_at(store: &LandingStore, entry: &Entry) -> Timestamp {
    if let Some(release) = &entry.release {
        return release.landed_at;
    }
    std::fs::symlink_metadata(store.path_of(&entry.key))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| Timestamp::try_from(t).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Whole seconds from `at` to `now`; 0 when `at` is in the future.
fn age_of(at: Timestamp, now: Timestamp) -> u64 {
    now.duration_since(at).as_secs().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_days_hours_minutes() {
        assert_eq!(human(40), "40s");
        assert_eq!(human(125), "2m");
        assert_eq!(human(7500), "2h 5m");
        assert_eq!(human(45 * 86_400 + 3600), "45d 1h");
    }
}
