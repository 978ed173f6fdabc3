//! `materia query`: SQL against the published lakehouse, read-only.
//!
//! The SQL runs once, on a connection that cannot touch the filesystem or change
//! its settings ([`Lakehouse::open_read_only`]); the rows come back as Arrow
//! record batches and every DuckDB type is rendered from them ([`Rows`]).

use std::io::{self, Write};
use std::process::ExitCode;

use materia_core::transform::{Lakehouse, Rows, rows::text};
use serde_json::Value as Json;

use crate::BoxError;
use crate::args::{Globals, Lakehouse as LakehouseArg, Output};
use crate::output::print_json;

/// Run SQL read-only against the published lakehouse.
///
/// Prints aligned columns, CSV, or with --json (as --format json) one JSON
/// array of objects, a row each.
///
/// Example: materia query "SELECT * FROM serving.coffee_balance WHERE country_code = 'WORLD'"
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The SQL.
    sql: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, conflicts_with = "json")]
    format: Format,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    lakehouse: LakehouseArg,
}

/// How `materia query` prints rows.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    /// Aligned columns.
    Table,
    /// RFC 4180 CSV with a header line.
    Csv,
    /// One JSON array of objects.
    Json,
}

impl Args {
    /// Runs the SQL and prints the rows.
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let format = if self.output.json {
            Format::Json
        } else {
            self.format
        };
        let lake = Lakehouse::open_read_only(self.lakehouse.path(globals))?;
        // DuckDB's message, without duckdb-rs's "Error code 1: …" after it.
        let rows = Rows::fetch(lake.connection(), &self.sql, &[])
            .map_err(materia_core::DuckDbError::from)?;
        match format {
            Format::Json => print_json(&rows.json())?,
            Format::Csv => rows.write_csv(&mut io::stdout().lock())?,
            Format::Table => print_table(&mut io::stdout().lock(), &rows.columns, &rows.rows)?,
        }
        Ok(ExitCode::SUCCESS)
    }
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
