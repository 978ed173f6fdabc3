//! `materia supervise`: cycles on a schedule (the systemd service).

use std::process::ExitCode;

use materia_core::supervise::{Schedule, Supervisor};

use crate::BoxError;
use crate::args::Globals;
use crate::cycle::CycleArgs;

/// Run cycles on a schedule until SIGTERM/SIGINT (the systemd service).
///
/// A cycle missed while the machine was down runs at start.
///
/// Example: materia supervise --schedule 06:00 --timeout extract=30m
#[derive(clap::Args)]
pub(crate) struct Args {
    /// `HH:MM` (daily, UTC) or `every DURATION` (e.g. `every 6h`).
    #[arg(long, env = "MATERIA_SCHEDULE", default_value = "06:00")]
    schedule: String,
    #[command(flatten)]
    cycle: CycleArgs,
}

impl Args {
    /// Supervises until stopped.
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let schedule: Schedule = self.schedule.parse()?;
        let supervisor = Supervisor::new(self.cycle.options(globals, false, true)?);
        supervisor.stop_on_signals()?;
        supervisor.run_forever(&schedule)?;
        Ok(ExitCode::SUCCESS)
    }
}
