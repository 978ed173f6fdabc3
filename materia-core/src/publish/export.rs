//! The published lakehouse as local Parquet files, written by DuckDB's own
//! Parquet writer (compiled in: nothing is downloaded), each named by the
//! SHA-256 of its bytes.

use std::path::{Path, PathBuf};

use duckdb::Connection;

use super::manifest::Column;
use crate::error::{Error, Result, duckdb_message, duckdb_source};
use crate::landing::Sha256Digest;
use crate::transform::{Lakehouse, Rows, rows::text};

/// A table to publish: its name, columns, and the column its files are
/// split by.
pub(crate) struct Listed {
    pub name: String,
    pub columns: Vec<Column>,
    pub partition_by: Option<String>,
}

/// One table written out.
pub(crate) struct Exported {
    /// Partition values skipped (their published files stand).
    pub kept: Vec<i64>,
    pub name: String,
    pub columns: Vec<Column>,
    pub partition_by: Option<String>,
    pub files: Vec<Written>,
}

/// One Parquet file written out.
pub(crate) struct Written {
    pub local: PathBuf,
    pub sha256: Sha256Digest,
    pub bytes: u64,
    pub rows: u64,
    pub partition: Option<i64>,
}

/// What the lakehouse is: build id, models fingerprint, releases, views.
pub(crate) struct Build {
    pub build: String,
    /// The history's full id (`materia.build`).
    pub history: String,
    pub models: String,
    pub releases: serde_json::Value,
    pub views: std::collections::BTreeMap<String, String>,
}

/// The lakehouse at `path`, open for export (read-only; DuckDB may write the
/// Parquet files, which the hardened reader may not).
pub(crate) struct Source {
    path: PathBuf,
    lake: Lakehouse,
}

fn duck(path: &Path, what: &str) -> impl FnOnce(duckdb::Error) -> Error {
    let path = path.to_path_buf();
    let what = what.to_owned();
    move |e| Error::Lakehouse {
        path,
        reason: format!("{what}: {}", duckdb_message(&e)),
        source: duckdb_source(e),
    }
}

impl Source {
    pub fn open(path: &Path, memory_limit: &str) -> Result<Source> {
        let lake = Lakehouse::open_trusted(path)?;
        lake.connection()
            .execute_batch(&format!(
                "SET memory_limit = '{}'; SET preserve_insertion_order = true;",
                memory_limit.replace('\'', "")
            ))
            .map_err(duck(path, "settings"))?;
        Ok(Source {
            path: path.to_path_buf(),
            lake,
        })
    }

    fn conn(&self) -> &Connection {
        self.lake.connection()
    }

    /// The build id, models fingerprint and releases.
    pub fn build(&self) -> Result<Build> {
        let build = crate::transform::build_id(self.conn());
        let history = self
            .conn()
            .query_row("SELECT history_id FROM materia.build", [], |r| {
                r.get::<_, String>(0)
            })
            .unwrap_or_default();
        let models = self
            .conn()
            .query_row("SELECT models FROM materia.published", [], |r| {
                r.get::<_, String>(0)
            })
            .unwrap_or_default();
        let releases = Rows::fetch(
            self.conn(),
            "SELECT * FROM serving.releases ORDER BY dataset, ord",
            &[],
        )
        .map_err(duck(&self.path, "serving.releases"))?;
        let views = Rows::fetch(
            self.conn(),
            "SELECT schema_name || '.' || view_name, sql FROM duckdb_views() \
             WHERE NOT internal AND schema_name = 'serving' ORDER BY 1",
            &[],
        )
        .map_err(duck(&self.path, "listing views"))?
        .rows
        .into_iter()
        .map(|r| (text(&r[0]), text(&r[1])))
        .collect();
        Ok(Build {
            build,
            history,
            models,
            views,
            releases: serde_json::Value::Array(
                releases
                    .json()
                    .into_iter()
                    .map(serde_json::Value::Object)
                    .collect(),
            ),
        })
    }

    /// The tables to publish: every table of `serving`, and the change
    /// history of each dataset (`raw.*_changes`, `raw.*_closed`: split by
    /// the release that added each row, so a day adds one file to each).
    pub fn tables(&self) -> Result<Vec<Listed>> {
        let rows = Rows::fetch(
            self.conn(),
            "SELECT c.table_schema || '.' || c.table_name, c.column_name, c.data_type \
             FROM information_schema.columns AS c \
             JOIN information_schema.tables AS t USING (table_schema, table_name) \
             WHERE t.table_type = 'BASE TABLE' AND (c.table_schema = 'serving' \
                OR (c.table_schema = 'raw' AND (suffix(c.table_name, '_changes') \
                    OR suffix(c.table_name, '_closed')))) \
             ORDER BY 1, c.ordinal_position",
            &[],
        )
        .map_err(duck(&self.path, "listing tables"))?;
        let mut out: Vec<Listed> = Vec::new();
        for r in rows.rows {
            let (table, name, ty) = (text(&r[0]), text(&r[1]), text(&r[2]));
            if out.last().is_none_or(|t| t.name != table) {
                out.push(Listed {
                    name: table.clone(),
                    columns: Vec::new(),
                    partition_by: None,
                });
            }
            let last = out.last_mut().expect("pushed above");
            let split = if table.ends_with("_changes") {
                "from_ord"
            } else {
                "to_ord"
            };
            if table.starts_with("raw.") && name == split {
                last.partition_by = Some(name.clone());
            }
            last.columns.push(Column { name, ty });
        }
        Ok(out)
    }

    /// Writes `table` into `dir`: one file, or one per value of its partition
    /// column but those in `skip` (already published: a partition is skipped
    /// when the lakehouse has the rows its published file claims); zstd,
    /// `row_group_rows` rows per row group, statistics on (DuckDB's default).
    pub fn export(
        &self,
        dir: &Path,
        listed: Listed,
        row_group_rows: usize,
        skip: &std::collections::BTreeMap<i64, u64>,
    ) -> Result<Exported> {
        let Listed {
            name,
            columns,
            partition_by,
        } = listed;
        let table = name.as_str();
        let quoted = crate::transform::quoted_name(table);
        // Each partition value and its rows.
        let parts: Vec<(Option<i64>, u64)> = match &partition_by {
            None => vec![(None, 0)],
            Some(col) => {
                let sql = format!(
                    "SELECT \"{col}\", count(*) FROM {quoted} WHERE \"{col}\" IS NOT NULL \
                     GROUP BY 1 ORDER BY 1"
                );
                let mut stmt = self.conn().prepare(&sql).map_err(duck(&self.path, table))?;
                let values = stmt
                    .query_map([], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64))
                    })
                    .and_then(Iterator::collect::<std::result::Result<Vec<_>, _>>)
                    .map_err(duck(&self.path, table))?;
                // An empty table still gets one (empty) file: its schema.
                if values.is_empty() {
                    vec![(None, 0)]
                } else {
                    values.into_iter().map(|(v, n)| (Some(v), n)).collect()
                }
            }
        };
        let mut files = Vec::with_capacity(parts.len());
        let mut kept = Vec::new();
        for (i, (part, rows)) in parts.into_iter().enumerate() {
            if let Some(v) = part
                && skip.get(&v) == Some(&rows)
            {
                kept.push(v);
                continue;
            }
            let local = dir.join(format!("{table}.{i}.parquet"));
            let filter = match (&partition_by, part) {
                (Some(col), Some(v)) => format!(" WHERE \"{col}\" = {v}"),
                _ => String::new(),
            };
            let sql = format!(
                "COPY (SELECT * FROM {quoted}{filter}) TO '{}' \
                 (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {row_group_rows})",
                local.display().to_string().replace('\'', "''")
            );
            let rows = self
                .conn()
                .execute(&sql, [])
                .map_err(duck(&self.path, table))? as u64;
            let (sha256, bytes) = hash_file(&local)?;
            files.push(Written {
                local,
                sha256,
                bytes,
                rows,
                partition: part,
            });
        }
        Ok(Exported {
            kept,
            name,
            columns,
            partition_by,
            files,
        })
    }
}

fn hash_file(path: &Path) -> Result<(Sha256Digest, u64)> {
    std::fs::File::open(path)
        .and_then(Sha256Digest::of_reader)
        .map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })
}
