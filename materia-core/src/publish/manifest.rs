//! The build manifest: which Parquet files make up a published build.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest format written by this version.
pub const FORMAT: u32 = 1;

/// One published build: its tables, each a list of Parquet files under the
/// prefix, and the releases it holds. `{prefix}/latest.json` is a copy of the
/// newest one; each is also kept as `{prefix}/manifests/{build}.{sha}.json`.
///
/// ```
/// let json = r#"{"format":1,"build":"3-abcdef01","published_at":"2026-11-27T06:00:00Z",
///   "models":"m","prefix":"s3://lake/v1","tables":{},"releases":[],"views":{}}"#;
/// let m: materia_core::publish::Manifest = serde_json::from_str(json).unwrap();
/// assert_eq!(m.build, "3-abcdef01");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The lakehouse build (`materia.build`: generation and history id).
    pub build: String,
    /// When `transform` published that build.
    pub published_at: String,
    /// The history the build was made from (its full id): builds of one
    /// history share their change files — a release's changes never change.
    #[serde(default)]
    pub history: String,
    /// The models the build was made with (their fingerprint).
    pub models: String,
    /// Where the files are: `s3://bucket/prefix` (a file's URL is this, `/`,
    /// its `path`).
    pub prefix: String,
    /// Each table by `schema.name`.
    pub tables: BTreeMap<String, Table>,
    /// The releases the build holds (`serving.releases`).
    pub releases: serde_json::Value,
    /// The views of `serving` (DuckDB SQL over the tables above, by their
    /// `schema.name`): not written as files; a DuckDB reader that creates a
    /// view per table over its files can create these too.
    #[serde(default)]
    pub views: BTreeMap<String, String>,
}

/// A published table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Rows in all its files.
    pub rows: u64,
    /// Columns: name and DuckDB type, in order.
    pub columns: Vec<Column>,
    /// The column its files are split by (a change-history table: one file
    /// per release that added to it), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_by: Option<String>,
    /// Its files; read them all (`read_parquet([...])`).
    pub files: Vec<File>,
}

/// A column of a published table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its DuckDB type (`VARCHAR`, `DOUBLE`, …).
    #[serde(rename = "type")]
    pub ty: String,
}

/// One Parquet file, named by its content: written once, never changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct File {
    /// Its key under the prefix: `data/{table}/{sha256}.parquet`.
    pub path: String,
    /// Its full URL (`s3://bucket/prefix/data/…`).
    pub url: String,
    /// SHA-256 of its bytes (hex).
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// Its rows.
    pub rows: u64,
    /// The partition column's value for this file, if split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i64>,
}

impl Manifest {
    /// The manifest as the bytes written (pretty JSON, keys in a fixed order).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Every file's path, of every table.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.tables
            .values()
            .flat_map(|t| t.files.iter().map(|f| f.path.as_str()))
    }
}
