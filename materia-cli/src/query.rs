//! `materia query`: SQL against the published lakehouse, read-only.
//!
//! The SQL runs once, on a connection that cannot touch the filesystem or change
//! its settings ([`Lakehouse::open_read_only`]); the rows come back as Arrow
//! record batches and every DuckDB type is rendered from them ([`Rows`]).

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use materia_core::transform::{Lakehouse, Rows, rows::text};
use serde_json::Value as Json;

use crate::{BoxError, Format};

/// Runs `sql` and prints the rows in `format`.
pub(crate) fn run(path: &Path, sql: &str, format: Format) -> Result<ExitCode, BoxError> {
    let lake = Lakehouse::open_read_only(path)?;
    let rows = Rows::fetch(lake.connection(), sql, &[])?;
    let mut out = io::stdout().lock();
    match format {
        Format::Json => {
            let mut bytes = serde_json::to_vec_pretty(&rows.json())?;
            bytes.push(b'\n');
            out.write_all(&bytes)?;
        }
        Format::Csv => rows.write_csv(&mut out)?,
        Format::Table => print_table(&mut out, &rows.columns, &rows.rows)?,
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
