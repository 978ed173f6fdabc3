//! `materia transform`: new landing files into the lakehouse, published atomically.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use materia_core::transform::{STORAGE_VERSION, TransformOptions, TransformReport, transform};

use crate::BoxError;
use crate::args::{DuckdbMemory, Globals, Models, Output, Places};
use crate::output::{exit_code, print_json_line};

/// Load new landing files into the lakehouse and publish it atomically.
///
/// Exit 1 when a file was quarantined (the rest is published). With --json:
/// one object (releases_loaded, rows_loaded, changes, releases_total,
/// published, rejected, warnings, steps).
///
/// Example: materia transform --json
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    memory: DuckdbMemory,
    #[command(flatten)]
    models: Models,
    /// The DuckDB storage version of the published file: the oldest DuckDB
    /// that must read it (v1.4.0: DuckDB 1.4 and later).
    #[arg(long, env = "MATERIA_DUCKDB_STORAGE_VERSION", default_value = STORAGE_VERSION)]
    storage_version: String,
    #[command(flatten)]
    places: Places,
}

impl Args {
    /// Builds and publishes; exit 1 when files were quarantined.
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let store = self.places.landing.open(globals)?;
        let mut options = TransformOptions::new(self.places.lakehouse.path(globals));
        options.memory_limit = self.memory.memory_limit;
        options.storage_version = self.storage_version;
        options.progress = io::stderr().is_terminal();
        options.tables = self.places.config.load(globals)?.tables();
        if let Some(models) = self.models.load()? {
            options.models = models;
        }
        let report = transform(&store, &options)?;
        print(&report, self.output.json)?;
        // Published, but files were quarantined: a check found problems.
        Ok(exit_code(report.rejected.is_empty()))
    }
}

fn print(report: &TransformReport, json: bool) -> Result<(), BoxError> {
    if json {
        return print_json_line(report);
    }
    let mut out = io::stdout().lock();
    match &report.published {
        Some(path) => writeln!(
            out,
            "loaded {} release(s), {} rows; published {} ({} releases) in {} ms",
            report.releases_loaded,
            report.rows_loaded,
            path.display(),
            report.releases_total,
            report.millis
        )?,
        None => writeln!(
            out,
            "nothing new to load ({} releases already loaded)",
            report.releases_total
        )?,
    }
    for r in &report.rejected {
        writeln!(out, "QUARANTINED {}: {}", r.landing_key, r.reason)?;
    }
    for w in &report.warnings {
        writeln!(out, "warning: audit {}", w.summary())?;
    }
    Ok(())
}
