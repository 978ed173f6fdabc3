//! `materia verify`: every landed file read end to end and checked.

use std::io::{self, Write};
use std::process::ExitCode;

use materia_core::landing::VerifyReport;

use crate::BoxError;
use crate::args::{Globals, Landing, Output};
use crate::output::{exit_code, print_json};

/// Read every landed file end to end and check it; exit 1 naming each bad one.
///
/// Checks each file's gzip CRC and length, its sizes, and the SHA-256 of
/// file and content against the ledger.
///
/// Example: materia verify
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    landing: Landing,
}

impl Args {
    /// Verifies; exit 1 when a file is bad.
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let report = self.landing.open_existing(globals)?.verify()?;
        if self.output.json {
            print_json(&report)?;
        } else {
            print(&report)?;
        }
        Ok(exit_code(report.is_ok()))
    }
}

fn print(report: &VerifyReport) -> Result<(), BoxError> {
    let mut out = io::stdout().lock();
    for bad in &report.bad {
        writeln!(out, "BAD {}: {}", bad.path.display(), bad.problem)?;
    }
    for key in &report.unrecorded {
        writeln!(out, "unrecorded (gzip ok, no ledger record) {key}")?;
    }
    for stray in &report.strays {
        writeln!(
            out,
            "stray (not a landing key, left alone) {}",
            stray.display()
        )?;
    }
    writeln!(
        out,
        "{} file(s) checked, {} bytes read, {} bad",
        report.checked,
        report.bytes,
        report.bad.len()
    )?;
    Ok(())
}
