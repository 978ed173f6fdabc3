//! `materia run`: one cycle now.

use std::process::ExitCode;

use materia_core::supervise::Supervisor;

use crate::BoxError;
use crate::args::{Globals, Output};
use crate::cycle::CycleArgs;

/// Run one cycle now, each step a child process with a timeout.
///
/// The steps (by default extract, transform, check) run in order; transform is
/// skipped when extract fails (not when it failed for some datasets only: it
/// loads what landed). Exits with the first failed step's code (124: timed
/// out). Refuses while another cycle runs. With --json: the steps' JSON lines
/// (the extract results, the transform report, the freshness check).
///
/// Example: materia run --url file:///srv/psd_coffee_csv.zip --timeout extract=30m
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Wait for a running cycle to finish instead of refusing.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    cycle: CycleArgs,
}

impl Args {
    /// Runs the cycle; exits with the first failed step's code.
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let options = self.cycle.options(globals, self.output.json, self.wait)?;
        let supervisor = Supervisor::new(options);
        supervisor.stop_on_signals()?;
        let cycle = supervisor.run_cycle()?;
        Ok(ExitCode::from(cycle.exit_code().clamp(0, 255) as u8))
    }
}
