//! A dataset's table: the columns its CSV has, with types, and the key that
//! identifies a row — what `transform` needs to keep its change history.
//!
//! ```toml
//! [datasets.cot.table]
//! columns = ["Report_Date_as_YYYY-MM-DD DATE", "CFTC_Contract_Market_Code VARCHAR",
//!            "Open_Interest_All BIGINT"]
//! key = ["Report_Date_as_YYYY-MM-DD", "CFTC_Contract_Market_Code"]
//! disposition = "merge"   # or "replace" (the default)
//! nulls = ["", "."]       # fields read as NULL (default: only empty ones)
//! ```
//!
//! Columns are named by their CSV header names; in the lakehouse each becomes
//! the lower-case name with every other character than `a-z 0-9 _` an
//! underscore (`Report_Date_as_YYYY-MM-DD` → `report_date_as_yyyy_mm_dd`).

use serde::Deserialize;

use crate::error::{Error, Result};

/// A column type DuckDB reads the CSV field as.
///
/// ```
/// use materia_core::dataset::ColumnType;
/// assert_eq!("bigint".parse::<ColumnType>()?, ColumnType::Bigint);
/// assert!("VARCHAR); DROP TABLE x; --".parse::<ColumnType>().is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// Text, kept as written (codes keep their zeros).
    Varchar,
    /// `true`/`false`.
    Boolean,
    /// 32-bit integer.
    Integer,
    /// 64-bit integer.
    Bigint,
    /// 64-bit float.
    Double,
    /// `YYYY-MM-DD`.
    Date,
    /// `YYYY-MM-DD hh:mm:ss`.
    Timestamp,
}

impl ColumnType {
    /// The DuckDB type name.
    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::Varchar => "VARCHAR",
            ColumnType::Boolean => "BOOLEAN",
            ColumnType::Integer => "INTEGER",
            ColumnType::Bigint => "BIGINT",
            ColumnType::Double => "DOUBLE",
            ColumnType::Date => "DATE",
            ColumnType::Timestamp => "TIMESTAMP",
        }
    }
}

impl std::str::FromStr for ColumnType {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<ColumnType, String> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "VARCHAR" | "TEXT" => ColumnType::Varchar,
            "BOOLEAN" => ColumnType::Boolean,
            "INTEGER" => ColumnType::Integer,
            "BIGINT" => ColumnType::Bigint,
            "DOUBLE" => ColumnType::Double,
            "DATE" => ColumnType::Date,
            "TIMESTAMP" => ColumnType::Timestamp,
            _ => {
                return Err(format!(
                    "unknown column type {s:?}: use VARCHAR, BOOLEAN, INTEGER, BIGINT, DOUBLE, DATE or TIMESTAMP"
                ));
            }
        })
    }
}

/// One CSV column and its type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Column {
    /// Its name in the CSV header.
    pub name: String,
    /// The type DuckDB reads it as.
    pub ty: ColumnType,
}

impl Column {
    /// The column's name in the lakehouse.
    ///
    /// ```
    /// use materia_core::dataset::{Column, ColumnType};
    /// let c = Column { name: "Report_Date_as_YYYY-MM-DD".into(), ty: ColumnType::Date };
    /// assert_eq!(c.sql_name(), "report_date_as_yyyy_mm_dd");
    /// ```
    pub fn sql_name(&self) -> String {
        sql_name(&self.name)
    }
}

/// The lakehouse name of a CSV column name.
pub(crate) fn sql_name(csv_name: &str) -> String {
    csv_name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What a release's missing keys mean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Each release is the whole dataset: a key it no longer has was deleted
    /// (USDA PSD).
    #[default]
    Replace,
    /// Each release adds and corrects rows: a key it lacks keeps its last value
    /// (CFTC's yearly files: the 2027 file does not delete 2026).
    Merge,
}

/// A dataset's table: columns, key and disposition (see the module doc).
///
/// ```
/// use materia_core::dataset::{DatasetSpec, Disposition};
/// let psd = DatasetSpec::psd().table.expect("psd has a table");
/// assert_eq!(psd.key_columns().count(), 4);
/// assert_eq!(psd.disposition, Disposition::Replace);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TableSpec {
    /// Every column of the CSV, in header order.
    pub columns: Vec<Column>,
    /// The CSV names of the key columns.
    pub key: Vec<String>,
    /// What a key missing from a release means.
    pub disposition: Disposition,
    /// Field texts read as NULL (default: only the empty field).
    pub nulls: Vec<String>,
}

impl TableSpec {
    /// Builds a table from `"Name TYPE"` column strings; checks it.
    ///
    /// ```
    /// use materia_core::dataset::TableSpec;
    /// let t = TableSpec::new(&["Code VARCHAR", "Value DOUBLE"], &["Code"])?;
    /// assert_eq!(t.columns.len(), 2);
    /// assert!(TableSpec::new(&["Code VARCHAR"], &["Nope"]).is_err());
    /// # Ok::<(), String>(())
    /// ```
    pub fn new(columns: &[&str], key: &[&str]) -> std::result::Result<TableSpec, String> {
        let columns = columns
            .iter()
            .map(|c| parse_column(c))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let table = TableSpec {
            columns,
            key: key.iter().map(|k| (*k).to_owned()).collect(),
            disposition: Disposition::Replace,
            nulls: vec![String::new()],
        };
        table.validate()?;
        Ok(table)
    }

    /// The CSV header the table expects.
    pub fn header(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// The key columns, in declaration order of `key`.
    pub fn key_columns(&self) -> impl Iterator<Item = &Column> {
        self.key
            .iter()
            .filter_map(|k| self.columns.iter().find(|c| &c.name == k))
    }

    /// The columns that are not part of the key.
    pub fn value_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| !self.key.contains(&c.name))
    }

    /// Checks names: at least one column and one key column, keys declared,
    /// no two columns with one lakehouse name, none named like the history's
    /// own columns.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.columns.is_empty() {
            return Err("no columns".into());
        }
        if self.key.is_empty() {
            return Err("no key columns".into());
        }
        let mut seen = std::collections::BTreeMap::new();
        for c in &self.columns {
            if c.name.is_empty() {
                return Err("a column has an empty name".into());
            }
            let name = c.sql_name();
            if let Some(other) = seen.insert(name.clone(), c.name.clone()) {
                return Err(format!(
                    "columns {other:?} and {:?} are both {name} in the lakehouse",
                    c.name
                ));
            }
            if RESERVED.contains(&name.as_str()) {
                return Err(format!(
                    "column {:?} is named like the history's own {name}",
                    c.name
                ));
            }
            if name.starts_with(INTERNAL_PREFIX) {
                return Err(format!(
                    "column {:?} is {name} in the lakehouse: names starting with \
                     {INTERNAL_PREFIX} are Materia's own",
                    c.name
                ));
            }
        }
        for k in &self.key {
            if !self.columns.iter().any(|c| &c.name == k) {
                return Err(format!("key column {k:?} is not a declared column"));
            }
        }
        if self.nulls.is_empty() {
            return Err("nulls is empty (use [\"\"] for empty fields only)".into());
        }
        Ok(())
    }
}

/// Columns the change history and its views add to every table.
const RESERVED: [&str; 9] = [
    "deleted",
    "from_ord",
    "to_ord",
    "release_ord",
    "until_ord",
    "release_etag",
    "release_id",
    "release_year",
    "release_month",
];

/// The prefix of the generated SQL's own columns (`__materia_ord`,
/// `__materia_file`, …): no declared column takes it, so every other CSV
/// header — `filename`, `ord`, `h` included — can be loaded.
const INTERNAL_PREFIX: &str = "__materia_";

fn parse_column(text: &str) -> std::result::Result<Column, String> {
    let (name, ty) = text
        .trim()
        .rsplit_once(char::is_whitespace)
        .ok_or_else(|| format!("column {text:?}: expected \"Name TYPE\""))?;
    Ok(Column {
        name: name.trim().to_owned(),
        ty: ty.parse().map_err(|e| format!("column {name:?}: {e}"))?,
    })
}

/// `[datasets.NAME.table]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTable {
    columns: Vec<String>,
    key: Vec<String>,
    disposition: Option<String>,
    nulls: Option<Vec<String>>,
}

impl RawTable {
    /// The checked table; errors name `datasets.{dataset}.table`.
    pub(crate) fn parse(self, dataset: &str, origin: &str) -> Result<TableSpec> {
        let err = |reason: String| Error::Config {
            origin: origin.to_owned(),
            reason: format!("datasets.{dataset}.table: {reason}"),
            source: None,
        };
        let columns = self
            .columns
            .iter()
            .map(|c| parse_column(c))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(err)?;
        let disposition = match self.disposition.as_deref() {
            None | Some("replace") => Disposition::Replace,
            Some("merge") => Disposition::Merge,
            Some(other) => {
                return Err(err(format!(
                    "disposition {other:?}: use \"replace\" or \"merge\""
                )));
            }
        };
        let table = TableSpec {
            columns,
            key: self.key,
            disposition,
            nulls: self.nulls.unwrap_or_else(|| vec![String::new()]),
        };
        table.validate().map_err(err)?;
        Ok(table)
    }
}
