//! [`PublishOptions`]: what to publish, where, and what to keep.

use std::path::PathBuf;

use crate::bucket::BucketConfig;

/// What to publish, and where: the lakehouse, the bucket
/// ([`BucketConfig`]: where and how to reach it), and publish's own options.
///
/// ```
/// use materia_core::bucket::BucketConfig;
/// use materia_core::publish::PublishOptions;
/// let o = PublishOptions::new("/data/materia/lakehouse.duckdb", "s3://materia-lake/v1");
/// assert_eq!(o.keep, None);
/// let o = PublishOptions::new("/data/materia/lakehouse.duckdb", BucketConfig::new("s3://materia-lake/v1").with_region("auto"))
///     .with_keep(Some(7))
///     .with_concurrency(16)
///     .with_row_group_rows(1 << 18)
///     .with_memory_limit("1GB");
/// assert_eq!((o.keep, o.memory_limit.as_str()), (Some(7), "1GB"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishOptions {
    /// The published lakehouse (`DUCKDB_PATH`).
    pub duckdb_path: PathBuf,
    /// The bucket and prefix (`s3://bucket/prefix`), and how to reach them.
    pub bucket: BucketConfig,
    /// Requests in flight at once (asking what the bucket holds).
    pub concurrency: usize,
    /// Keep the files of the N newest builds; remove what only older ones
    /// use. `None`: remove nothing.
    pub keep: Option<usize>,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// DuckDB's memory limit while writing Parquet.
    pub memory_limit: String,
}

impl PublishOptions {
    /// Defaults for publishing `duckdb_path` to `bucket` (a [`BucketConfig`],
    /// or just its URL): 8 requests at once, keep everything, row groups of
    /// a million rows, 2 GB for DuckDB.
    ///
    /// ```
    /// let o = materia_core::publish::PublishOptions::new("/data/materia/lakehouse.duckdb", "s3://materia-lake/v1");
    /// assert_eq!((o.concurrency, o.row_group_rows), (8, 1 << 20));
    /// ```
    pub fn new(duckdb_path: impl Into<PathBuf>, bucket: impl Into<BucketConfig>) -> PublishOptions {
        PublishOptions {
            duckdb_path: duckdb_path.into(),
            bucket: bucket.into(),
            concurrency: 8,
            keep: None,
            row_group_rows: 1 << 20,
            memory_limit: "2GB".into(),
        }
    }

    /// Sets the bucket (see the example on [`PublishOptions`]).
    pub fn with_bucket(mut self, bucket: BucketConfig) -> Self {
        self.bucket = bucket;
        self
    }

    /// Sets the requests in flight at once.
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Keeps the files of the N newest builds (`None`: remove nothing).
    pub fn with_keep(mut self, keep: Option<usize>) -> Self {
        self.keep = keep;
        self
    }

    /// Sets the rows per Parquet row group.
    pub fn with_row_group_rows(mut self, rows: usize) -> Self {
        self.row_group_rows = rows;
        self
    }

    /// Sets DuckDB's memory limit while writing Parquet (`2GB`, `512MB`).
    pub fn with_memory_limit(mut self, limit: impl Into<String>) -> Self {
        self.memory_limit = limit.into();
        self
    }
}
