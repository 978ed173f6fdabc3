//! Query results as rows of JSON values, rendered from DuckDB's Arrow batches:
//! the SQL runs once and every DuckDB type is rendered from that one run —
//! numbers, booleans and text keep their JSON type, anything else (dates,
//! decimals, timestamps, lists, structs…) is DuckDB-like text.

use std::io::{self, Write};

use duckdb::arrow::array::{Array, AsArray};
use duckdb::arrow::datatypes::{self as dt, DataType};
use duckdb::arrow::datatypes::{Schema, SchemaRef};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::arrow::util::display::{ArrayFormatter, FormatOptions};
use duckdb::{Connection, ToSql};
use serde_json::Value as Json;

/// Column names and rows of a query.
///
/// ```
/// use materia_core::transform::Rows;
/// let conn = materia_core::transform::duckdb::Connection::open_in_memory()?;
/// let rows = Rows::fetch(&conn, "SELECT 1 AS n, 'a,b' AS s, DATE '2026-11-27' AS d", &[])?;
/// assert_eq!(rows.columns, ["n", "s", "d"]);
/// assert_eq!(rows.json()[0]["d"], "2026-11-27");
/// let mut csv = Vec::new();
/// rows.write_csv(&mut csv)?;
/// assert_eq!(String::from_utf8(csv)?, "n,s,d\n1,\"a,b\",2026-11-27\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rows {
    /// The column names, in order (repeats kept).
    pub columns: Vec<String>,
    /// The rows, each a value per column.
    pub rows: Vec<Vec<Json>>,
}

impl Rows {
    /// Runs `sql` once with `params` on `conn`.
    pub fn fetch(
        conn: &Connection,
        sql: &str,
        params: &[&dyn ToSql],
    ) -> Result<Rows, duckdb::Error> {
        let (schema, batches) = batches(conn, sql, params)?;
        Rows::from_batches(&schema, &batches)
    }

    /// Renders Arrow batches (see [`batches`]).
    pub fn from_batches(schema: &Schema, batches: &[RecordBatch]) -> Result<Rows, duckdb::Error> {
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let options = FormatOptions::default()
            .with_null("")
            .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
            .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f%:z"));
        let mut rows = Vec::new();
        for batch in batches {
            let mut batch_rows = vec![Vec::with_capacity(columns.len()); batch.num_rows()];
            for array in batch.columns() {
                let formatter = ArrayFormatter::try_new(array.as_ref(), &options)
                    .map_err(|e| duckdb::Error::ToSqlConversionFailure(Box::new(e)))?;
                for (i, row) in batch_rows.iter_mut().enumerate() {
                    row.push(cell(array.as_ref(), i, &formatter));
                }
            }
            rows.extend(batch_rows);
        }
        Ok(Rows { columns, rows })
    }

    /// The rows as JSON objects; a repeated column name gets `_1`, `_2`… as
    /// its key (as DuckDB names the columns of `CREATE TABLE AS`).
    pub fn json(&self) -> Vec<serde_json::Map<String, Json>> {
        let keys = unique_names(&self.columns);
        self.rows
            .iter()
            .map(|row| keys.iter().cloned().zip(row.iter().cloned()).collect())
            .collect()
    }

    /// The rows as JSON objects whose keys keep the columns' order (as
    /// [`Rows::json`] names them), for `serde_json::to_writer` and friends.
    ///
    /// ```
    /// use materia_core::transform::Rows;
    /// let conn = materia_core::transform::duckdb::Connection::open_in_memory()?;
    /// let rows = Rows::fetch(&conn, "SELECT 2 AS z, 1 AS a", &[])?;
    /// assert_eq!(serde_json::to_string(&rows.ordered())?, r#"[{"z":2,"a":1}]"#);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ordered(&self) -> OrderedRows<'_> {
        OrderedRows {
            keys: unique_names(&self.columns),
            rows: &self.rows,
        }
    }

    /// The rows as CSV with a header line (RFC 4180 quoting, `\n` line ends;
    /// NULL is the empty field).
    pub fn write_csv(&self, out: &mut impl Write) -> io::Result<()> {
        let header: Vec<String> = self.columns.iter().map(|c| csv_field(c)).collect();
        writeln!(out, "{}", header.join(","))?;
        for row in &self.rows {
            let fields: Vec<String> = row.iter().map(|v| csv_field(&text(v))).collect();
            writeln!(out, "{}", fields.join(","))?;
        }
        Ok(())
    }
}

/// [`Rows`] serialized as an array of objects in column order
/// ([`Rows::ordered`]).
pub struct OrderedRows<'a> {
    keys: Vec<String>,
    rows: &'a [Vec<Json>],
}

impl serde::Serialize for OrderedRows<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.rows.len()))?;
        for row in self.rows {
            seq.serialize_element(&OrderedRow {
                keys: &self.keys,
                row,
            })?;
        }
        seq.end()
    }
}

/// One row as an object in column order.
struct OrderedRow<'a> {
    keys: &'a [String],
    row: &'a [Json],
}

impl serde::Serialize for OrderedRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.keys.len()))?;
        for (k, v) in self.keys.iter().zip(self.row) {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Runs `sql` once with `params` on `conn`: its schema and Arrow batches.
pub fn batches(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
) -> Result<(SchemaRef, Vec<RecordBatch>), duckdb::Error> {
    // Cached per connection: a server runs the same few shapes of query.
    let mut stmt = conn.prepare_cached(sql)?;
    let stream = stmt.stream_arrow(params)?;
    let schema = stream.get_schema();
    let batches: Vec<RecordBatch> = stream.collect::<Result<_, _>>()?;
    Ok((schema, batches))
}

/// `schema.name` (or `name`) as a quoted identifier: split at the first
/// `.` only (a table named `a.b` in `serving` is `"serving"."a.b"`).
pub(crate) fn quoted_name(name: &str) -> String {
    match name.split_once('.') {
        Some((schema, table)) => format!("{}.{}", quoted_ident(schema), quoted_ident(table)),
        None => quoted_ident(name),
    }
}

/// One identifier (a column), quoted whole: a `.` in it is part of the name.
pub(crate) fn quoted_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A value as text: NULL is empty, strings as they are.
pub fn text(v: &Json) -> String {
    match v {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One cell as JSON: numbers, booleans and text keep their type; any other type
/// is DuckDB's value as text.
fn cell(array: &dyn Array, i: usize, formatter: &ArrayFormatter<'_>) -> Json {
    // A column of type NULL (`SELECT NULL AS x`) has no validity buffer: its
    // values are null without `is_null` saying so.
    if array.is_null(i) || array.data_type() == &DataType::Null {
        return Json::Null;
    }
    let float = |f: f64| {
        serde_json::Number::from_f64(f).map_or_else(|| Json::String(f.to_string()), Json::Number)
    };
    match array.data_type() {
        DataType::Boolean => Json::Bool(array.as_boolean().value(i)),
        DataType::Int8 => array.as_primitive::<dt::Int8Type>().value(i).into(),
        DataType::Int16 => array.as_primitive::<dt::Int16Type>().value(i).into(),
        DataType::Int32 => array.as_primitive::<dt::Int32Type>().value(i).into(),
        DataType::Int64 => array.as_primitive::<dt::Int64Type>().value(i).into(),
        DataType::UInt8 => array.as_primitive::<dt::UInt8Type>().value(i).into(),
        DataType::UInt16 => array.as_primitive::<dt::UInt16Type>().value(i).into(),
        DataType::UInt32 => array.as_primitive::<dt::UInt32Type>().value(i).into(),
        DataType::UInt64 => array.as_primitive::<dt::UInt64Type>().value(i).into(),
        DataType::Float32 => float(array.as_primitive::<dt::Float32Type>().value(i).into()),
        DataType::Float64 => float(array.as_primitive::<dt::Float64Type>().value(i)),
        DataType::Utf8 => Json::String(array.as_string::<i32>().value(i).to_owned()),
        DataType::LargeUtf8 => Json::String(array.as_string::<i64>().value(i).to_owned()),
        DataType::Utf8View => Json::String(array.as_string_view().value(i).to_owned()),
        _ => Json::String(formatter.value(i).to_string()),
    }
}

/// Column names made unique for JSON object keys: a repeated name gets `_1`,
/// `_2`…, never colliding with another column's name.
fn unique_names(columns: &[String]) -> Vec<String> {
    let mut taken: std::collections::HashSet<String> = columns.iter().cloned().collect();
    let mut seen = std::collections::HashSet::new();
    columns
        .iter()
        .map(|name| {
            if seen.insert(name.clone()) {
                return name.clone();
            }
            let unique = (1..)
                .map(|n| format!("{name}_{n}"))
                .find(|c| !taken.contains(c))
                .unwrap_or_else(|| name.clone());
            taken.insert(unique.clone());
            seen.insert(unique.clone());
            unique
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::unique_names;

    #[test]
    fn repeated_column_names_get_distinct_json_keys() {
        let cols = ["a", "a", "a_1", "b", "a"].map(String::from);
        assert_eq!(unique_names(&cols), ["a", "a_2", "a_1", "b", "a_3"]);
    }
}
