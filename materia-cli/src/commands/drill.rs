//! `materia drill`: a restore drill — restore, rebuild, compare.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use materia_core::drill::{DrillOptions, DrillReport, drill};
use materia_core::mirror::Mirror;

use crate::BoxError;
use crate::args::{Concurrency, DuckdbMemory, Globals, Models, Output, Places, bucket_url};
use crate::output::{exit_code, print_json};

/// Restore the bucket, rebuild the lakehouse from it, compare with the published one.
///
/// The restore goes into a temporary directory, every file checked; exit 1
/// naming each difference. The outcome shows in `materia status`. With --json: one object (started_at, restored, bytes, releases, tables,
/// differences, millis).
///
/// Example: materia drill --from s3://materia-raw/landing
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The bucket prefix, s3://bucket/prefix (required: the flag or $MATERIA_MIRROR_URL).
    #[arg(long, env = "MATERIA_MIRROR_URL", value_name = "URL")]
    from: Option<String>,
    /// Where the temporary copy goes (room for the landing zone and a
    /// lakehouse); default: the system's temp directory.
    #[arg(long, env = "MATERIA_DRILL_DIR")]
    work_dir: Option<PathBuf>,
    #[command(flatten)]
    concurrency: Concurrency,
    #[command(flatten)]
    memory: DuckdbMemory,
    #[command(flatten)]
    models: Models,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    places: Places,
}

impl Args {
    /// Drills; exit 1 naming each difference.
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let url = bucket_url(self.from.as_deref(), "--from", "MATERIA_MIRROR_URL")?;
        let store = self.places.landing.open(globals)?;
        let mirror = self.concurrency.bucket(url)?;
        let mut options = DrillOptions::new(self.places.lakehouse.path(globals));
        options.memory_limit = self.memory.memory_limit;
        options.tables = self.places.config.load(globals)?.tables();
        if let Some(models) = self.models.load()? {
            options.models = models;
        }
        if let Some(dir) = self.work_dir {
            options.work_dir = dir;
        }
        let report = drill(&Mirror::new(mirror)?, &store, &options)?;
        if self.output.json {
            print_json(&report)?;
        } else {
            print(&report)?;
        }
        let mut err = io::stderr().lock();
        for d in &report.differences {
            writeln!(err, "materia: drill: {d}")?;
        }
        Ok(exit_code(report.is_ok()))
    }
}

fn print(report: &DrillReport) -> Result<(), BoxError> {
    let mut out = io::stdout().lock();
    for t in &report.tables {
        let verdict = if t.same { "same" } else { "DIFFERENT" };
        writeln!(out, "{verdict:<9} {} ({} rows)", t.table, t.rows)?;
    }
    for d in &report.differences {
        writeln!(out, "DIFFERENT {d}")?;
    }
    writeln!(
        out,
        "restored {} file(s), {} bytes; rebuilt {} release(s); {} difference(s) in {} ms",
        report.restored,
        report.bytes,
        report.releases,
        report.differences.len(),
        report.millis
    )?;
    Ok(())
}
