//! One table of the lakehouse into the bucket: its standing change files
//! kept, the rest exported to Parquet and uploaded unless the bucket has
//! them whole.

use std::collections::{BTreeMap, BTreeSet};

use super::PublishReport;
use super::export;
use super::keys;
use super::manifest::{File, Table};
use super::standing::Standing;
use super::target::Target;
use crate::error::Result;
use crate::landing::Sha256Digest;

/// What writing one table needs: the lakehouse, the bucket, a scratch
/// directory, the bucket's data files, the manifest's prefix.
pub(super) struct TableWriter<'a> {
    pub source: &'a export::Source,
    pub target: &'a Target,
    pub dir: &'a std::path::Path,
    /// The bucket's keys under `data/`, with their sizes.
    pub existing: &'a BTreeMap<String, u64>,
    pub prefix: &'a str,
    pub row_group_rows: usize,
}

impl TableWriter<'_> {
    /// One table: its standing files (still in the bucket, whole, with the
    /// lakehouse's rows) kept, the rest written, uploaded unless the bucket
    /// has them whole, and removed locally.
    pub(super) fn write(
        &self,
        listed: export::Listed,
        stand: Option<&BTreeMap<i64, Standing>>,
        report: &mut PublishReport,
    ) -> Result<(String, Table)> {
        let stand: Vec<(i64, &Standing)> =
            stand.into_iter().flatten().map(|(v, f)| (*v, f)).collect();
        let whole = self.whole(
            stand
                .iter()
                .map(|(_, f)| (f.path.as_str(), f.sha256, f.bytes)),
        )?;
        let skip: BTreeMap<i64, u64> = stand
            .iter()
            .filter(|(_, f)| whole.contains(&f.path))
            .map(|(v, f)| (*v, f.rows))
            .collect();
        let exported = self
            .source
            .export(self.dir, listed, self.row_group_rows, &skip)?;
        let name = exported.name;
        let mut files: Vec<File> = stand
            .iter()
            .filter(|(v, _)| exported.kept.contains(v))
            .map(|(v, f)| self.file(f.path.clone(), f.sha256, f.bytes, f.rows, Some(*v)))
            .collect();
        report.files += files.len();
        report.skipped += files.len();
        report.bytes_total += files.iter().map(|f| f.bytes).sum::<u64>();
        let paths: Vec<String> = exported
            .files
            .iter()
            .map(|w| keys::data_path(&name, &w.sha256))
            .collect();
        let there = self.whole(
            exported
                .files
                .iter()
                .zip(&paths)
                .map(|(w, path)| (path.as_str(), w.sha256, w.bytes)),
        )?;
        for (w, path) in exported.files.into_iter().zip(paths) {
            report.files += 1;
            report.bytes_total += w.bytes;
            let uploaded = if there.contains(&path) {
                false
            } else if self.existing.contains_key(&path) {
                tracing::warn!(object = %path, "the bucket's copy is not whole: replacing it");
                report.replaced += 1;
                self.target.upload(&path, &w.local, w.bytes, true)?
            } else {
                self.target.upload(&path, &w.local, w.bytes, false)?
            };
            if uploaded {
                report.uploaded += 1;
                report.bytes_uploaded += w.bytes;
            } else {
                report.skipped += 1;
            }
            // Free the disk as we go.
            let _ = std::fs::remove_file(&w.local);
            files.push(self.file(path, w.sha256, w.bytes, w.rows, w.partition));
        }
        files.sort_by_key(|f| f.partition);
        let table = Table {
            rows: files.iter().map(|f| f.rows).sum(),
            columns: exported.columns,
            partition_by: exported.partition_by,
            files,
        };
        Ok((name, table))
    }

    /// The paths of `files` (path, SHA-256, size) the bucket has whole: listed
    /// with that size, and with that SHA-256 when the server keeps one.
    fn whole<'p>(
        &self,
        files: impl Iterator<Item = (&'p str, Sha256Digest, u64)>,
    ) -> Result<BTreeSet<String>> {
        let sized: Vec<(&str, Sha256Digest)> = files
            .filter(|(path, _, bytes)| self.existing.get(*path) == Some(bytes))
            .map(|(path, sha, _)| (path, sha))
            .collect();
        self.target.with_sha256(sized)
    }

    /// A manifest entry; its URL is the prefix's, whatever the bucket says.
    fn file(
        &self,
        path: String,
        sha256: Sha256Digest,
        bytes: u64,
        rows: u64,
        partition: Option<i64>,
    ) -> File {
        File {
            url: format!("{}/{path}", self.prefix),
            path,
            sha256: sha256.to_string(),
            bytes,
            rows,
            partition,
        }
    }
}
