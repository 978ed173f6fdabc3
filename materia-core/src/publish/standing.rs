//! The change files of the last build that still stand: a release's changes
//! never change within one history, so a publish of the same history reuses
//! them (once the bucket shows them whole: `writer.rs`).

use std::collections::BTreeMap;

use super::keys;
use super::manifest::Manifest;
use crate::landing::Sha256Digest;

/// A change file `latest.json` names: its content address, size and rows
/// (what it claims; checked before it is reused).
#[derive(Clone, Debug)]
pub(super) struct Standing {
    pub path: String,
    pub sha256: Sha256Digest,
    pub bytes: u64,
    pub rows: u64,
}

/// The change files `latest.json` names by partition, per table, when it is
/// of the same history: a release's changes (and closings) never change
/// within one history, so those files stand. Only files under their own
/// table's content address (`data/{table}/{sha256}.parquet`, the digest
/// the one the entry gives) count.
pub(super) fn standing_files(
    latest: Option<Manifest>,
    history: &str,
) -> BTreeMap<String, BTreeMap<i64, Standing>> {
    let Some(latest) = latest.filter(|p| !p.history.is_empty() && p.history == history) else {
        return BTreeMap::new();
    };
    latest
        .tables
        .into_iter()
        .map(|(name, t)| {
            // A file named for two partitions is wrong for one of them (each
            // partition's changes differ, so do their content addresses):
            // it stands for neither.
            let mut named = BTreeMap::<String, usize>::new();
            for f in &t.files {
                *named.entry(f.path.clone()).or_default() += 1;
            }
            let by_part = t
                .files
                .into_iter()
                .filter(|f| named.get(&f.path) == Some(&1))
                .filter_map(|f| {
                    let (table, sha256) = keys::parse_data_path(&f.path)?;
                    let own = table == name && f.sha256 == sha256.to_string();
                    let standing = Standing {
                        sha256,
                        path: f.path.clone(),
                        bytes: f.bytes,
                        rows: f.rows,
                    };
                    own.then_some((f.partition?, standing))
                })
                .collect();
            (name, by_part)
        })
        .collect()
}
