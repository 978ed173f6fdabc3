//! `materia publish`: the lakehouse as Parquet files and a manifest on a bucket.

use std::io::{self, Write};
use std::process::ExitCode;

use materia_core::publish::{PublishOptions, PublishReport, publish};

use crate::BoxError;
use crate::args::{DuckdbMemory, Globals, Lakehouse, Output, bucket_url};
use crate::credentials;
use crate::output::print_json;

/// Publish the lakehouse as Parquet files and a manifest per build on a bucket.
///
/// For readers beyond this server (see docs/serving-and-publishing.md); S3
/// settings as for the mirror. Exit 2 naming the failure; a publish that lost
/// the race to another is a conflict, nothing lost. With --json: one object (build, manifest, unchanged, tables, files,
/// uploaded, replaced, skipped, bytes_uploaded, bytes_total, removed).
///
/// Example: materia publish --to s3://materia-lake/v1 --keep 7
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The bucket prefix, s3://bucket/prefix (required: the flag or $MATERIA_PUBLISH_URL).
    #[arg(long, env = "MATERIA_PUBLISH_URL", value_name = "URL")]
    to: Option<String>,
    /// Keep the files of the N newest builds; remove what only older
    /// builds use (default: remove nothing).
    #[arg(long, env = "MATERIA_PUBLISH_KEEP", value_name = "N")]
    keep: Option<usize>,
    #[command(flatten)]
    memory: DuckdbMemory,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    lakehouse: Lakehouse,
}

impl Args {
    /// Publishes the current build (nothing when it is already the latest).
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let url = bucket_url(self.to.as_deref(), "--to", "MATERIA_PUBLISH_URL")?;
        let mut options = PublishOptions::new(
            self.lakehouse.path(globals),
            credentials::bucket_config(url)?,
        );
        options.keep = self.keep;
        options.memory_limit = self.memory.memory_limit;
        let report = publish(&options)?;
        if self.output.json {
            print_json(&report)?;
        } else {
            print(&report, url)?;
        }
        if report.replaced > 0 {
            writeln!(
                io::stderr(),
                "replaced {} file(s) the bucket held broken (another size or SHA-256 than their name's)",
                report.replaced
            )?;
        }
        if report.removed > 0 {
            writeln!(
                io::stderr(),
                "removed {} object(s) of older builds",
                report.removed
            )?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn print(report: &PublishReport, to: &str) -> Result<(), BoxError> {
    if report.unchanged {
        writeln!(
            io::stdout(),
            "build {} is already the latest at {to}: nothing written",
            report.build
        )?;
    } else {
        writeln!(
            io::stdout(),
            "published build {}: {} table(s), {} file(s) ({} uploaded, {} already there), {} bytes uploaded; latest.json -> {}",
            report.build,
            report.tables,
            report.files,
            report.uploaded,
            report.skipped,
            report.bytes_uploaded,
            report.manifest
        )?;
    }
    Ok(())
}
