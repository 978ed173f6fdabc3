//! `keep`: the files of the N newest builds kept, what only older builds use
//! removed, then their manifests.

use std::collections::BTreeSet;

use super::keys;
use super::manifest::Manifest;
use super::target::Target;
use crate::error::Result;

/// A manifest in the bucket: its `published_at`, parsed, its key, itself.
type Dated = (jiff::Timestamp, String, Manifest);

impl Target {
    /// Keeps the `keep` newest manifests (and `current`): removes the files
    /// only older ones use, then those manifests. Returns objects removed.
    ///
    /// Manifests are ranked by their parsed `published_at`; one whose time
    /// does not parse, or that does not parse at all, is left alone (and so
    /// are the files it names). Only keys of the shapes this module writes
    /// are removed, whatever a manifest names.
    pub(super) fn keep(&self, keep: usize, current: &str, latest: &Manifest) -> Result<usize> {
        let (mut builds, undated) = self.manifests()?;
        builds.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
        let (kept, old): (Vec<_>, Vec<_>) = builds
            .into_iter()
            .enumerate()
            .partition(|(i, (_, path, _))| *i < keep.max(1) || path == current);
        let used: BTreeSet<&str> = kept
            .iter()
            .map(|(_, (_, _, m))| m)
            .chain(&undated)
            .chain([latest])
            .flat_map(Manifest::paths)
            .collect();
        let mut doomed: BTreeSet<String> = BTreeSet::new();
        for (_, (_, _, m)) in &old {
            doomed.extend(
                m.paths()
                    .filter(|p| !used.contains(p) && keys::parse_data_path(p).is_some())
                    .map(str::to_owned),
            );
        }
        let mut removed = 0;
        // Files first, then the manifests naming them: a crash in between
        // leaves a manifest of an old build, never a kept one, missing files.
        for path in doomed.iter().chain(old.iter().map(|(_, (_, p, _))| p)) {
            self.delete(path)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// The manifests under `manifests/` with a manifest's key: those with a
    /// `published_at` that parses (the time, the key, the manifest), and the
    /// others. Objects that are not manifests are left out.
    fn manifests(&self) -> Result<(Vec<Dated>, Vec<Manifest>)> {
        let (mut dated, mut undated) = (Vec::new(), Vec::new());
        for path in self.list("manifests")?.into_keys() {
            if !keys::is_manifest_path(&path) {
                continue;
            }
            let bytes = self.get(&path)?;
            // An unreadable manifest is not ours to judge: leave it.
            let Some(m) = bytes.and_then(|b| serde_json::from_slice::<Manifest>(&b).ok()) else {
                continue;
            };
            match m.published_at.parse::<jiff::Timestamp>() {
                Ok(at) => dated.push((at, path, m)),
                Err(e) => {
                    tracing::warn!(manifest = %path, "published_at does not parse ({e}): left alone");
                    undated.push(m);
                }
            }
        }
        Ok((dated, undated))
    }
}
