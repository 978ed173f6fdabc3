//! `materia check`: freshness of each dataset and of the lakehouse.

use std::io::{self, Write};
use std::process::ExitCode;

use materia_core::check::{FreshnessReport, check, human};

use crate::BoxError;
use crate::args::{Globals, Output, Places};
use crate::output::{exit_code, print_json_line};

/// Check that each dataset and the lakehouse are fresh; exit 1 naming each stale one.
///
/// Each dataset's newest release against its cadence, the lakehouse against
/// what landed. With --json: one object (datasets, lakehouse), on one line.
///
/// Example: materia check --json
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The datasets expected to have fresh releases, comma-separated
    /// (default: `psd` and the config's datasets; any dataset with landed
    /// files is checked too).
    #[arg(long, value_delimiter = ',', env = "MATERIA_DATASETS")]
    dataset: Vec<String>,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    places: Places,
}

impl Args {
    /// Checks; exit 1 naming each stale dataset and a stale lakehouse.
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let store = self.places.landing.open_existing(globals)?;
        let mut config = self.places.config.load(globals)?;
        if !self.dataset.is_empty() {
            for name in &self.dataset {
                config.dataset(name)?;
            }
            config.fetch = self.dataset;
        }
        let duckdb_path = self.places.lakehouse.path(globals);
        let report = check(&store, &config, duckdb_path, jiff::Timestamp::now())?;
        if self.output.json {
            // One line: `materia run --json` prints each step's JSON as a line.
            print_json_line(&report)?;
        } else {
            print(&report)?;
        }
        // On stderr too: the supervisor's alert quotes a failed step's last line.
        let mut err = io::stderr().lock();
        for problem in report.problems() {
            writeln!(err, "materia: stale: {problem}")?;
        }
        Ok(exit_code(report.is_fresh()))
    }
}

fn print(report: &FreshnessReport) -> Result<(), BoxError> {
    let mut out = io::stdout().lock();
    for d in &report.datasets {
        let verdict = if d.stale { "STALE" } else { "ok" };
        let newest = match (&d.newest, d.age_seconds) {
            (Some(key), Some(age)) => format!("newest {key}, {} old", human(age)),
            _ => "nothing landed".into(),
        };
        let allowed = d.max_age_seconds.map_or_else(
            || "no cadence set".into(),
            |s| format!("allowed {}", human(s)),
        );
        writeln!(
            out,
            "{verdict:<5} dataset {}: {newest} ({allowed})",
            d.dataset
        )?;
    }
    let l = &report.lakehouse;
    let verdict = if l.stale { "STALE" } else { "ok" };
    writeln!(
        out,
        "{verdict:<5} lakehouse {}: {} landed file(s) not built after {}",
        l.path.display(),
        l.behind.len(),
        human(l.grace_seconds)
    )?;
    Ok(())
}
