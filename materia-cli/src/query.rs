//! `materia query`: SQL against the published lakehouse, read-only.
//!
//! The SQL runs once, on a connection that cannot touch the filesystem or change
//! its settings ([`Lakehouse::open_read_only`]); the rows come back as Arrow
//! record batches and every DuckDB type is rendered from them: numbers, booleans
//! and text keep their JSON type, anything else (dates, decimals, timestamps,
//! lists, structs…) is shown as text.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use materia_core::transform::Lakehouse;
use materia_core::transform::duckdb::arrow::array::{Array, AsArray};
use materia_core::transform::duckdb::arrow::datatypes::{self as dt, DataType};
use materia_core::transform::duckdb::arrow::record_batch::RecordBatch;
use materia_core::transform::duckdb::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::Value as Json;

use crate::{BoxError, Format};

/// Runs `sql` and prints the rows in `format`.
pub(crate) fn run(path: &Path, sql: &str, format: Format) -> Result<ExitCode, BoxError> {
    let lake = Lakehouse::open_read_only(path)?;
    let (columns, rows) = fetch(&lake, sql)?;
    let mut out = io::stdout().lock();
    match format {
        Format::Json => {
            let keys = unique_names(&columns);
            let objects: Vec<serde_json::Map<String, Json>> = rows
                .into_iter()
                .map(|row| keys.iter().cloned().zip(row).collect())
                .collect();
            let mut bytes = serde_json::to_vec_pretty(&objects)?;
            bytes.push(b'\n');
            out.write_all(&bytes)?;
        }
        Format::Csv => {
            let header: Vec<String> = columns.iter().map(|c| csv_field(c)).collect();
            writeln!(out, "{}", header.join(","))?;
            for row in &rows {
                let fields: Vec<String> = row.iter().map(|v| csv_field(&text(v))).collect();
                writeln!(out, "{}", fields.join(","))?;
            }
        }
        Format::Table => print_table(&mut out, &columns, &rows)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(out: &mut impl Write, columns: &[String], rows: &[Vec<Json>]) -> io::Result<()> {
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(text).collect()).collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([columns[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: &[String]| {
        values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(columns))?;
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    writeln!(out, "{}", line(&rule))?;
    for row in &cells {
        writeln!(out, "{}", line(row))?;
    }
    let n = cells.len();
    writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" })
}

/// Runs `sql` once and returns the column names and the rows as JSON values.
fn fetch(lake: &Lakehouse, sql: &str) -> Result<(Vec<String>, Vec<Vec<Json>>), BoxError> {
    let mut stmt = lake.connection().prepare(sql)?;
    let stream = stmt.stream_arrow([])?;
    let schema = stream.get_schema();
    let batches: Vec<RecordBatch> = stream.collect::<Result<_, _>>()?;
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let options = FormatOptions::default()
        .with_null("")
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f%:z"));
    let mut rows = Vec::new();
    for batch in &batches {
        let mut batch_rows = vec![Vec::with_capacity(columns.len()); batch.num_rows()];
        for array in batch.columns() {
            let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
            for (i, row) in batch_rows.iter_mut().enumerate() {
                row.push(cell(array.as_ref(), i, &formatter));
            }
        }
        rows.extend(batch_rows);
    }
    Ok((columns, rows))
}

/// One cell as JSON: numbers, booleans and text keep their type; any other type
/// is DuckDB's value as text.
fn cell(array: &dyn Array, i: usize, formatter: &ArrayFormatter<'_>) -> Json {
    if array.is_null(i) {
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
/// `_2`… (as DuckDB names the columns of `CREATE TABLE AS`), never colliding
/// with another column's name.
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

fn text(v: &Json) -> String {
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

#[cfg(test)]
mod tests {
    use super::unique_names;

    #[test]
    fn repeated_column_names_get_distinct_json_keys() {
        let cols = ["a", "a", "a_1", "b", "a"].map(String::from);
        assert_eq!(unique_names(&cols), ["a", "a_2", "a_1", "b", "a_3"]);
    }
}
