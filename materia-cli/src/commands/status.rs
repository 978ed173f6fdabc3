//! `materia status`: where the pipeline stands, gathered by materia-core
//! ([`Status::gather`]) and printed here.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use materia_core::supervise::{State, Status, StepRun};

use crate::BoxError;
use crate::args::{Globals, Lakehouse, Landing, Output};
use crate::credentials;
use crate::output::print_json;

/// Show the last cycle's steps, the landing zone and the lakehouse's age.
///
/// A failed step shows its error line (a partial extract: each failed
/// dataset with its error); a step the last cycle did not run is shown apart,
/// under the earlier cycles.
///
/// Also the alert streak, the newest release of each dataset, the quarantined
/// files, the last backup and the last restore drill.
///
/// Example: materia status --json
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    landing: Landing,
    #[command(flatten)]
    lakehouse: Lakehouse,
}

impl Args {
    /// Prints the status.
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let store = self.landing.open_existing(globals)?;
        let duckdb_path = self.lakehouse.path(globals);
        let status = Status::gather(&store, duckdb_path)?;
        if self.output.json {
            print_json(&status)?;
        } else {
            let mut out = io::stdout().lock();
            print_supervisor(&mut out, &status.state)?;
            print_landing(&mut out, &status)?;
            print_lakehouse(&mut out, &status, duckdb_path)?;
            print_backup(&mut out, &status)?;
            #[cfg(feature = "s3")]
            print_drill(&mut out, &status)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The supervisor's version, the last cycle and its steps, the steps of
/// earlier cycles apart, the alerts.
fn print_supervisor(out: &mut impl Write, state: &State) -> Result<(), BoxError> {
    let mine = env!("CARGO_PKG_VERSION");
    match state.version.as_deref() {
        Some(v) if v != mine => writeln!(
            out,
            "supervisor: materia {v} is running; this binary is {mine} (restart pending: infra/bootstrap.sh restarts it between cycles)"
        )?,
        Some(v) => writeln!(out, "supervisor: materia {v}")?,
        None => writeln!(
            out,
            "supervisor: not started yet (this binary: materia {mine})"
        )?,
    }
    match &state.last_cycle {
        Some(c) => {
            writeln!(
                out,
                "last cycle: started {} ({} ms), exit code {}",
                c.started_at,
                c.millis,
                c.exit_code()
            )?;
            for run in &c.steps {
                print_step(out, run)?;
            }
        }
        None => writeln!(out, "last cycle: none yet")?,
    }
    // A step the last cycle did not run (`--steps` changed) last ran in an
    // earlier one: shown apart, never as the last cycle's.
    let in_last = |name: &str| {
        state
            .last_cycle
            .as_ref()
            .is_some_and(|c| c.steps.iter().any(|s| s.step == name))
    };
    let earlier: Vec<&StepRun> = state
        .steps
        .values()
        .filter(|run| !in_last(&run.step))
        .collect();
    if !earlier.is_empty() {
        writeln!(out, "earlier cycles (steps the last cycle did not run):")?;
        for run in earlier {
            print_step(out, run)?;
        }
    }
    let alert = &state.alert;
    if alert.streak > 0 || alert.last_sent.is_some() {
        let sent = alert
            .last_sent
            .map(|t| format!(", last alert sent {t}"))
            .unwrap_or_default();
        writeln!(
            out,
            "alerts: {} failed cycle(s) in a row{sent}",
            alert.streak
        )?;
    }
    Ok(())
}

/// One step's run: its outcome, when, how long, and its error line.
fn print_step(out: &mut impl Write, run: &StepRun) -> Result<(), BoxError> {
    let outcome = serde_json::to_value(run.outcome)?;
    writeln!(
        out,
        "  {:<10} {:<11} started {} took {} ms{}",
        run.step,
        outcome.as_str().unwrap_or("?"),
        run.started_at,
        run.millis,
        run.error
            .as_deref()
            .map(|e| format!(" — {e}"))
            .unwrap_or_default()
    )?;
    Ok(())
}

/// Files and bytes landed, the newest of each dataset.
fn print_landing(out: &mut impl Write, status: &Status) -> Result<(), BoxError> {
    writeln!(
        out,
        "landing: {} file(s), {} bytes",
        status.landing.files, status.landing.bytes
    )?;
    for (dataset, n) in &status.newest {
        let when = n
            .landed_at
            .map(|t| format!(", landed {t}"))
            .unwrap_or_default();
        writeln!(out, "  newest {dataset}: {}{when}", n.key)?;
    }
    Ok(())
}

/// The lakehouse's age and the files it quarantined.
fn print_lakehouse(
    out: &mut impl Write,
    status: &Status,
    duckdb_path: &Path,
) -> Result<(), BoxError> {
    match &status.lakehouse {
        Some(p) => writeln!(
            out,
            "lakehouse: {} published {} s ago",
            p.path.display(),
            p.age_seconds.unwrap_or(0)
        )?,
        None => writeln!(
            out,
            "lakehouse: {} not published yet",
            duckdb_path.display()
        )?,
    }
    if let Some(s) = status.lakehouse.as_ref().and_then(|p| p.sources.as_ref()) {
        writeln!(out, "  declarations: {}", s.config_text())?;
        writeln!(out, "  models: {}", s.models_text())?;
    }
    for r in status.lakehouse.iter().flat_map(|p| &p.rejected) {
        writeln!(out, "  QUARANTINED {}: {}", r.landing_key, r.reason)?;
    }
    Ok(())
}

/// When a push last uploaded, or what to set up for one.
fn print_backup(out: &mut impl Write, status: &Status) -> Result<(), BoxError> {
    match status.last_backup {
        Some(t) => writeln!(out, "backup: last upload recorded {t}")?,
        None if credentials::env_is_set("MATERIA_MIRROR_URL") => writeln!(
            out,
            "backup: none yet (materia-backup.timer pushes every 6 hours; or run materia mirror)"
        )?,
        None => writeln!(
            out,
            "backup: none yet — set MATERIA_MIRROR_URL and AWS_ENDPOINT in /etc/materia/materia.env \
             (the keys in /etc/materia/r2.env); infra/bootstrap.sh then enables materia-backup.timer"
        )?,
    }
    Ok(())
}

/// The last restore drill's verdict and its first differences.
#[cfg(feature = "s3")]
fn print_drill(out: &mut impl Write, status: &Status) -> Result<(), BoxError> {
    match &status.last_drill {
        Some(d) => {
            let verdict = if d.ok {
                "passed".to_owned()
            } else {
                format!("FAILED with {} difference(s)", d.differences)
            };
            writeln!(
                out,
                "last drill: {} {verdict} ({} file(s) restored, {} ms)",
                d.at, d.restored, d.millis
            )?;
            for diff in &d.first {
                writeln!(out, "  DIFFERENT {diff}")?;
            }
        }
        None => writeln!(out, "last drill: none yet (materia drill)")?,
    }
    Ok(())
}
