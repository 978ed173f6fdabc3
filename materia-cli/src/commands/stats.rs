//! `materia stats`: files and bytes landed.

use std::io::{self, Write};
use std::process::ExitCode;

use materia_core::landing::Stats;

use crate::BoxError;
use crate::args::{Globals, Landing, Output};
use crate::output::print_json;

/// Count landed files and bytes, in all and per dataset.
///
/// Example: materia stats --json
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    landing: Landing,
}

impl Args {
    /// Counts.
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let stats = self.landing.open_existing(globals)?.stats();
        if self.output.json {
            print_json(&stats)?;
        } else {
            print(&stats)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn print(stats: &Stats) -> Result<(), BoxError> {
    let mut out = io::stdout().lock();
    for (name, ds) in &stats.datasets {
        writeln!(out, "{name}\t{} file(s)\t{} bytes", ds.files, ds.bytes)?;
    }
    writeln!(
        out,
        "total\t{} file(s)\t{} bytes ({} bytes uncompressed)",
        stats.files, stats.bytes, stats.content_bytes
    )?;
    Ok(())
}
