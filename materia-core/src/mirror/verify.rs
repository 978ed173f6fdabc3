//! Verify: the bucket compared with the landing zone — every landed file must
//! be there, byte for byte — all of it at once, or a sample per run that
//! goes round every object in turn.

use std::collections::HashSet;

use futures::StreamExt;
use object_store::path::Path;
use serde::Serialize;

use super::record::SampleCursor;
use super::{Mirror, Upload};
use crate::error::Result;
use crate::landing::{LandingKey, LandingStore};

/// What `verify` found remotely.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RemoteVerifyReport {
    /// Objects compared with their local file.
    pub checked: u64,
    /// Landed files missing from the bucket.
    pub missing: Vec<String>,
    /// Objects whose content differs from the local file.
    pub different: Vec<String>,
    /// With a sample: when a run last completed a round over every object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round_completed_at: Option<jiff::Timestamp>,
}

impl RemoteVerifyReport {
    /// Whether the bucket holds every local file, byte for byte.
    ///
    /// ```
    /// let report = materia_core::mirror::RemoteVerifyReport::default();
    /// assert!(report.is_ok());
    /// ```
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty() && self.different.is_empty()
    }
}

impl Mirror {
    /// Lists the bucket and compares every object with its local file.
    ///
    /// ```no_run
    /// # fn main() -> materia_core::Result<()> {
    /// use materia_core::{landing::LandingStore, mirror::{Mirror, MirrorOptions}};
    /// let store = LandingStore::open("/data/materia/landing")?;
    /// let mirror = Mirror::new(MirrorOptions::new("s3://materia-raw/landing"))?;
    /// let report = mirror.verify(&store)?;
    /// println!("{} compared; missing {:?}; different {:?}", report.checked, report.missing, report.different);
    /// # Ok(()) }
    /// ```
    pub fn verify(&self, landing: &LandingStore) -> Result<RemoteVerifyReport> {
        crate::blocking::off_runtime(|| self.verify_blocking(landing, None))
    }

    /// Lists the bucket (every landed file must be there) but compares the
    /// content of only `sample` objects: those after where the last sampled
    /// run stopped, in key order, wrapping around. Over `ceil(files / sample)`
    /// runs every object is compared; where it stands is kept in
    /// `.materia/mirror/{id}.verify`.
    ///
    /// ```no_run
    /// # fn main() -> materia_core::Result<()> {
    /// use materia_core::{landing::LandingStore, mirror::{Mirror, MirrorOptions}};
    /// let store = LandingStore::open("/data/materia/landing")?;
    /// let mirror = Mirror::new(MirrorOptions::new("s3://materia-raw/landing"))?;
    /// let report = mirror.verify_sample(&store, 20)?;
    /// assert!(report.checked <= 20);
    /// # Ok(()) }
    /// ```
    pub fn verify_sample(
        &self,
        landing: &LandingStore,
        sample: usize,
    ) -> Result<RemoteVerifyReport> {
        crate::blocking::off_runtime(|| self.verify_blocking(landing, Some(sample)))
    }

    fn verify_blocking(
        &self,
        landing: &LandingStore,
        sample: Option<usize>,
    ) -> Result<RemoteVerifyReport> {
        let objects: HashSet<Path> = self
            .bucket
            .block_on(self.bucket.list_all())?
            .into_iter()
            .filter_map(|o| o.location)
            .collect();
        let mut report = RemoteVerifyReport::default();
        let mut present = Vec::new();
        for entry in landing.list() {
            let location = self.object_path(&entry.key);
            if objects.contains(&location) {
                present.push((entry.key, location));
            } else {
                report.missing.push(entry.key.to_string());
            }
        }
        let mut cursor = None;
        if let Some(n) = sample {
            let mut c = SampleCursor::load(landing.root(), &self.bucket.identity)?;
            present = pick(&mut c, present, n);
            report.round_completed_at = c.round_completed_at;
            cursor = Some(c);
        }
        let results: Vec<(LandingKey, Result<Upload>)> = self.bucket.block_on(
            futures::stream::iter(present.into_iter().map(|(key, location)| {
                let path = landing.path_of(&key);
                async move {
                    let outcome = self.compare(&path, &location).await;
                    (key, outcome)
                }
            }))
            .buffer_unordered(self.options.concurrency.max(1))
            .collect(),
        );
        for (key, outcome) in results {
            report.checked += 1;
            if outcome? == Upload::Conflict {
                report.different.push(key.to_string());
            }
        }
        report.different.sort();
        if let Some(c) = cursor {
            c.save(landing.root(), &self.bucket.identity)?;
        }
        Ok(report)
    }
}

/// The `n` objects after `cursor.after` in key order, wrapping around; the
/// cursor moved past them (and its round marked complete when they reach
/// the last key).
fn pick(
    cursor: &mut SampleCursor,
    mut present: Vec<(LandingKey, Path)>,
    n: usize,
) -> Vec<(LandingKey, Path)> {
    present.sort_by_key(|(key, _)| key.to_string());
    let start = cursor.after.as_ref().map_or(0, |after| {
        present.partition_point(|(key, _)| key.to_string() <= *after)
    });
    // Past the last key: a new round starts at the first.
    let start = if start >= present.len() { 0 } else { start };
    let n = n.min(present.len());
    let picked: Vec<(LandingKey, Path)> = present
        .iter()
        .cycle()
        .skip(start)
        .take(n)
        .cloned()
        .collect();
    if start + n >= present.len() && n > 0 {
        cursor.round_completed_at = Some(jiff::Timestamp::now());
    }
    cursor.after = picked.last().map(|(key, _)| key.to_string());
    picked
}
