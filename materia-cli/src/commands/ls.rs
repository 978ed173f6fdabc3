//! `materia ls`: the landed files.

use std::io::{self, Write};
use std::process::ExitCode;

use materia_core::landing::Dataset;

use crate::BoxError;
use crate::args::{Globals, Landing, Output};
use crate::output::print_json;

/// List landed files, ordered by dataset, year and month.
///
/// Prints key, bytes and when it landed, a line each; with --json an array
/// of entries.
///
/// Example: materia ls --dataset psd
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Only this dataset.
    #[arg(long)]
    dataset: Option<Dataset>,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    landing: Landing,
}

impl Args {
    /// Lists.
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let store = self.landing.open_existing(globals)?;
        let entries: Vec<_> = store
            .list()
            .into_iter()
            .filter(|e| self.dataset.as_ref().is_none_or(|d| &e.key.dataset == d))
            .collect();
        if self.output.json {
            print_json(&entries)?;
        } else {
            let mut out = io::stdout().lock();
            for e in &entries {
                let landed = e
                    .release
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |r| r.landed_at.to_string());
                writeln!(out, "{}\t{}\t{landed}", e.key, e.file_bytes)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
