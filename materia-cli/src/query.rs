//! `materia query`: SQL against the published lakehouse, read-only.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use materia_core::transform::Lakehouse;
use serde_json::Value as Json;

use crate::{BoxError, Format};

/// Runs `sql` and prints the rows in `format`.
pub(crate) fn run(path: &Path, sql: &str, format: Format) -> Result<ExitCode, BoxError> {
    let lake = Lakehouse::open_read_only(path)?;
    let (columns, rows) = fetch(&lake, sql)?;
    let mut out = io::stdout().lock();
    match format {
        Format::Json => {
            let objects: Vec<serde_json::Map<String, Json>> = rows
                .into_iter()
                .map(|row| columns.iter().cloned().zip(row).collect())
                .collect();
            let mut bytes = serde_json::to_vec_pretty(&objects)?;
            bytes.push(b'\n');
            out.write_all(&bytes)?;
        }
        Format::Csv => {
            writeln!(
                out,
                "{}",
                columns
                    .iter()
                    .map(|c| csv_field(c))
                    .collect::<Vec<_>>()
                    .join(",")
            )?;
            for row in &rows {
                let fields: Vec<String> = row.iter().map(|v| csv_field(&text(v))).collect();
                writeln!(out, "{}", fields.join(","))?;
            }
        }
        Format::Table => {
            let cells: Vec<Vec<String>> =
                rows.iter().map(|r| r.iter().map(text).collect()).collect();
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
            writeln!(out, "{}", line(&columns))?;
            writeln!(
                out,
                "{}",
                line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>())
            )?;
            for row in &cells {
                writeln!(out, "{}", line(row))?;
            }
            writeln!(
                out,
                "({} row{})",
                cells.len(),
                if cells.len() == 1 { "" } else { "s" }
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Column names and rows as JSON values: numbers, booleans and text keep their
/// type; any other DuckDB type (dates, decimals, lists…) comes as DuckDB's own
/// text for it, from the same query with every column cast to VARCHAR.
fn fetch(lake: &Lakehouse, sql: &str) -> Result<(Vec<String>, Vec<Vec<Json>>), BoxError> {
    use materia_core::transform::duckdb::types::Value;
    let conn = lake.connection();
    let mut stmt = conn.prepare(sql)?;
    let mut typed: Vec<Vec<Option<Json>>> = Vec::new();
    let mut rows = stmt.query([])?;
    let columns: Vec<String> = rows.as_ref().map(|s| s.column_names()).unwrap_or_default();
    while let Some(row) = rows.next()? {
        let mut out = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            out.push(match row.get::<_, Value>(i)? {
                Value::Null => Some(Json::Null),
                Value::Boolean(b) => Some(Json::Bool(b)),
                Value::TinyInt(n) => Some(n.into()),
                Value::SmallInt(n) => Some(n.into()),
                Value::Int(n) => Some(n.into()),
                Value::BigInt(n) => Some(n.into()),
                Value::UTinyInt(n) => Some(n.into()),
                Value::USmallInt(n) => Some(n.into()),
                Value::UInt(n) => Some(n.into()),
                Value::UBigInt(n) => Some(n.into()),
                Value::Float(f) => {
                    Some(serde_json::Number::from_f64(f.into()).map_or(Json::Null, Json::Number))
                }
                Value::Double(f) => {
                    Some(serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number))
                }
                Value::Text(s) => Some(Json::String(s)),
                _ => None,
            });
        }
        typed.push(out);
    }
    drop(rows);
    if typed.iter().flatten().all(Option::is_some) {
        let rows = typed
            .into_iter()
            .map(|r| r.into_iter().flatten().collect())
            .collect();
        return Ok((columns, rows));
    }
    // Some cells need DuckDB's text form.
    let wrapped = format!("SELECT COLUMNS(*)::VARCHAR FROM ({sql})");
    let mut stmt = conn.prepare(&wrapped)?;
    let texts: Vec<Vec<Option<String>>> = stmt
        .query_map([], |r| (0..columns.len()).map(|i| r.get(i)).collect())?
        .collect::<Result<_, _>>()?;
    let rows = typed
        .into_iter()
        .zip(texts)
        .map(|(typed, text)| {
            typed
                .into_iter()
                .zip(text)
                .map(|(t, s)| t.unwrap_or_else(|| s.map_or(Json::Null, Json::String)))
                .collect()
        })
        .collect();
    Ok((columns, rows))
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
