//! Supervise: the daily job, each step a bounded child process.
//!
//! A cycle runs the configured steps in order (by default `materia extract` then
//! `materia transform`), each as a child process of the `materia` binary itself —
//! never through a shell — with the environment passed explicitly and a timeout:
//! past it, the step's whole process group gets SIGTERM and, after a grace
//! period, SIGKILL. A failed step does not stop the supervisor; a step whose
//! prerequisite failed in this cycle (transform after a failed extract) is
//! skipped — unless the prerequisite failed for some datasets only (its report
//! says which): then it is partial, and transform loads what did land while
//! the cycle still fails, naming the datasets. One cycle runs at a time: it
//! holds `{LANDING_DIR}/.materia/run.lock`.
//!
//! A failed step's error line is picked from its stderr: the `materia: error:`
//! line ([`ERROR_PREFIX`]), else the last line that is neither a log line nor
//! the argument parser's boilerplate — never simply the last line.
//!
//! After every step the state file `{LANDING_DIR}/.materia/state.json` is
//! replaced atomically: the last run of each step (start, duration, outcome, exit
//! code, error line) and the last cycle, which `materia status` reads.
//!
//! SIGTERM or SIGINT stops the supervisor cleanly: the running step gets its
//! grace period, the state is written, and [`Supervisor::run_forever`] returns.
//!
//! Layout: the [`Supervisor`] here; what it runs ([`SupervisorOptions`],
//! [`Step`], which environment variables a step inherits) in `options.rs`;
//! the child processes in `child.rs` and their error line in `error_line.rs`;
//! the step's report of each dataset in `report.rs`; the [`State`] file in
//! `state.rs`; the [`Schedule`] in `schedule.rs`; the Prometheus textfile in
//! `metrics.rs`; alerts and the dead-man's ping (feature `http`) in
//! `alert.rs` and `ping.rs`; the `Status` report `materia status` prints
//! (feature `duckdb`) in `status.rs`.

#[cfg(feature = "http")]
mod alert;
mod child;
mod error_line;
mod metrics;
mod options;
#[cfg(feature = "http")]
mod ping;
mod report;
mod schedule;
mod state;
#[cfg(feature = "duckdb")]
mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;

#[cfg(feature = "http")]
pub use alert::{Alert, AlertFormat, AlertKind, Alerter};
pub use schedule::{Schedule, parse_duration};

use crate::error::{Error, Result};
use crate::landing::MetaDir;
use crate::landing::durable::{HeldLock, LockFile};
use state::state_dir;

pub use error_line::ERROR_PREFIX;
pub use report::{STEP_REPORT_ENV, write_step_report};

pub use options::{Step, SupervisorOptions, is_passed_to_steps, is_secret};
pub use state::{AlertState, CycleReport, Outcome, State, StepRun};
#[cfg(feature = "duckdb")]
pub use status::{Newest, Published, Status};

/// Runs cycles of steps.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use materia_core::supervise::{Schedule, Step, Supervisor, SupervisorOptions};
/// let mut options = SupervisorOptions::new(std::env::current_exe()?, "/data/materia/landing");
/// options.steps = vec![
///     Step::new("extract", ["extract"], Duration::from_secs(1800)),
///     Step::new("transform", ["transform"], Duration::from_secs(1800)).needs("extract"),
/// ];
/// let supervisor = Supervisor::new(options);
/// supervisor.stop_on_signals()?;
/// supervisor.run_forever(&"06:00".parse::<Schedule>()?)?;
/// # Ok(()) }
/// ```
pub struct Supervisor {
    options: SupervisorOptions,
    stop: Arc<AtomicBool>,
}

impl Supervisor {
    /// A supervisor with `options`.
    pub fn new(options: SupervisorOptions) -> Supervisor {
        Supervisor {
            options,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The flag that stops the supervisor when set (what the signal handlers set).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Sets the stop flag on SIGTERM and SIGINT.
    pub fn stop_on_signals(&self) -> Result<()> {
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(signal, Arc::clone(&self.stop)).map_err(|source| {
                Error::System {
                    what: "installing the SIGTERM/SIGINT handler".into(),
                    source,
                }
            })?;
        }
        Ok(())
    }

    /// The state, or an empty one when the file cannot be read: a damaged state
    /// file must not stop the daily job (the next save replaces it).
    fn load_state(&self) -> State {
        State::load(&self.options.landing_dir).unwrap_or_else(|e| {
            tracing::warn!("starting from an empty state: {e}");
            State::default()
        })
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Takes the run lock, waiting for it when `wait_for_lock` is set (until
    /// stopped: then `None`).
    fn lock(&self) -> Result<Option<HeldLock>> {
        let path = state_dir(&self.options.landing_dir)?.run_lock();
        let lock = LockFile::open(&path, "another materia run or supervise")?;
        if self.options.wait_for_lock {
            lock.hold_until(&self.stop)
        } else {
            lock.try_hold("try again when it is done, or pass --wait")
                .map(Some)
        }
    }

    /// Runs one cycle now: every step in order, the state written after each.
    pub fn run_cycle(&self) -> Result<CycleReport> {
        let Some(_lock) = self.lock()? else {
            return Err(Error::Step {
                step: "supervise".into(),
                reason: "stopped while waiting for the run lock".into(),
            });
        };
        #[cfg(feature = "http")]
        let ping = self.options.healthcheck_url.as_deref().map(ping::Ping::new);
        #[cfg(feature = "http")]
        if let Some(p) = &ping {
            p.send("/start");
        }
        let landing = &self.options.landing_dir;
        let mut state = self.load_state();
        state.version = Some(env!("CARGO_PKG_VERSION").to_owned());
        let started = Instant::now();
        let mut cycle = CycleReport {
            started_at: Timestamp::now(),
            millis: 0,
            steps: Vec::new(),
        };
        for step in &self.options.steps {
            let run = self.run_step(step, &cycle);
            match run.outcome {
                Outcome::Ok => tracing::info!(step = %run.step, millis = run.millis, "step done"),
                Outcome::Skipped => tracing::warn!(
                    step = %run.step,
                    "step skipped: {}",
                    run.error.as_deref().unwrap_or("")
                ),
                _ => tracing::error!(
                    step = %run.step,
                    outcome = ?run.outcome,
                    exit_code = run.exit_code,
                    "step failed: {}",
                    run.error.as_deref().unwrap_or("")
                ),
            }
            state.steps.insert(run.step.clone(), run.clone());
            cycle.steps.push(run);
            cycle.millis = started.elapsed().as_millis() as u64;
            state.last_cycle = Some(cycle.clone());
            state.save(landing)?;
        }
        if let Some(path) = &self.options.textfile {
            metrics::write_textfile(path, &metrics::prometheus_text(&cycle))?;
        }
        #[cfg(feature = "http")]
        self.alert(&mut state, &cycle);
        state.save(landing)?;
        #[cfg(feature = "http")]
        if let Some(p) = &ping {
            match cycle.exit_code() {
                0 => p.send(""),
                code => p.send(&format!("/{code}")),
            }
        }
        Ok(cycle)
    }

    /// Counts the failure streak and sends the one alert it deserves: the
    /// failure at its start, the recovery at its end. A send that fails is
    /// logged; the next cycle tries again.
    #[cfg(feature = "http")]
    fn alert(&self, state: &mut State, cycle: &CycleReport) {
        let failed = cycle.exit_code() != 0;
        let streak = state.alert.streak;
        state.alert.streak = if failed { streak + 1 } else { 0 };
        let Some(url) = &self.options.alert_url else {
            state.alert.failure_sent = failed && state.alert.failure_sent;
            return;
        };
        let failing_step = cycle.failed_step();
        let kind = match (failed, state.alert.failure_sent) {
            (true, false) => AlertKind::Failure,
            (false, true) => AlertKind::Recovery,
            _ => return,
        };
        let alert = Alert {
            kind,
            step: failing_step.map(|s| s.step.clone()),
            exit_code: failing_step.and_then(|s| s.exit_code),
            error: failing_step.and_then(|s| s.error.clone()),
            streak: if failed { state.alert.streak } else { streak },
            host: host_name(),
            at: cycle.started_at,
        };
        match Alerter::new(url, self.options.alert_format).and_then(|a| a.send(&alert)) {
            Ok(()) => {
                state.alert.failure_sent = failed;
                state.alert.last_sent = Some(Timestamp::now());
            }
            Err(e) => tracing::warn!("the alert could not be sent: {e}"),
        }
    }

    fn run_step(&self, step: &Step, cycle: &CycleReport) -> StepRun {
        let started_at = Timestamp::now();
        let mut run = StepRun {
            step: step.name.clone(),
            started_at,
            millis: 0,
            outcome: Outcome::Skipped,
            exit_code: None,
            error: None,
            failed_datasets: Vec::new(),
        };
        if self.stopping() {
            run.error = Some("the supervisor is stopping".into());
            return run;
        }
        if let Some(failed) = step.needs.iter().find(|need| {
            !cycle
                .steps
                .iter()
                .any(|s| &s.step == *need && matches!(s.outcome, Outcome::Ok | Outcome::Partial))
        }) {
            run.error = Some(format!("{failed} did not succeed in this cycle"));
            return run;
        }
        tracing::info!(step = %step.name, timeout_secs = step.timeout.as_secs(), "step starting");
        let started = Instant::now();
        let report = step.reports.then(|| self.report_path()).flatten();
        let mut env: Vec<(String, String)> = self
            .options
            .env
            .iter()
            .filter(|(name, _)| step.secrets || !is_secret(name))
            .cloned()
            .collect();
        if let Some(path) = &report {
            env.push((STEP_REPORT_ENV.into(), path.to_string_lossy().into_owned()));
        }
        let finished = child::run(
            &self.options.exe,
            &step.args,
            &env,
            step.timeout,
            self.options.grace,
            &self.stop,
        );
        run.millis = started.elapsed().as_millis() as u64;
        let lines = report.as_deref().and_then(report::read);
        if let Some(path) = &report {
            report::remove(path);
        }
        judge(&mut run, step, finished, lines);
        run
    }

    /// Where a reporting step writes its report, the last one removed; `None`
    /// (no report asked for) when that cannot be done.
    fn report_path(&self) -> Option<PathBuf> {
        let path = MetaDir::of(&self.options.landing_dir).step_report();
        report::remove(&path).then_some(path)
    }

    /// Records this binary's version in the state, unless a cycle runs (it
    /// records it when done): `status` then shows the version running.
    fn record_version(&self) -> Result<()> {
        let path = state_dir(&self.options.landing_dir)?.run_lock();
        let Ok(_held) = LockFile::open(&path, "another materia run or supervise")?.try_hold("")
        else {
            return Ok(());
        };
        let mut state = self.load_state();
        state.version = Some(env!("CARGO_PKG_VERSION").to_owned());
        state.save(&self.options.landing_dir)
    }

    /// Runs cycles on `schedule` until stopped. A cycle that was due while the
    /// supervisor was not running (the machine was down) runs at once.
    pub fn run_forever(&self, schedule: &Schedule) -> Result<()> {
        tracing::info!(%schedule, version = env!("CARGO_PKG_VERSION"), "supervisor started");
        self.record_version()?;
        while !self.stopping() {
            let now = Timestamp::now();
            let last = self.load_state().last_cycle.map(|c| c.started_at);
            let last = last.map(|l| {
                if l > now {
                    // The clock went back (or the state came from another
                    // machine): trusting it would put the next cycle years away.
                    tracing::warn!(last_cycle = %l, %now, "the last cycle started in the future; scheduling from now");
                    now
                } else {
                    l
                }
            });
            let due = last.map_or(now, |l| schedule.next_after(l));
            if due > Timestamp::now() {
                tracing::info!(next = %due, "next cycle");
            }
            while Timestamp::now() < due {
                if self.stopping() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            if self.stopping() {
                break;
            }
            match self.run_cycle() {
                Ok(cycle) => {
                    tracing::info!(
                        millis = cycle.millis,
                        exit_code = cycle.exit_code(),
                        "cycle done"
                    )
                }
                Err(e) if self.stopping() => tracing::info!("{e}"),
                Err(e) => {
                    // Keep supervising: the next attempt is a minute away.
                    tracing::error!("cycle failed: {e}");
                    for _ in 0..300 {
                        if self.stopping() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        }
        tracing::info!("supervisor stopped");
        Ok(())
    }
}

/// How a step that ran ended: its outcome, exit code and error line; a
/// failure its report explains names each failed dataset, and is partial
/// when the others were fetched.
fn judge(
    run: &mut StepRun,
    step: &Step,
    finished: Result<child::Finished>,
    report: Option<Vec<report::DatasetLine>>,
) {
    let f = match finished {
        Err(e) => {
            (run.outcome, run.exit_code, run.error) =
                (Outcome::Failed, Some(127), Some(e.to_string()));
            return;
        }
        Ok(f) => f,
    };
    run.exit_code = Some(child::exit_code(&f.ended));
    (run.outcome, run.error) = match f.ended {
        child::Ended::Exited(status) if status.success() => (Outcome::Ok, None),
        child::Ended::Exited(_) => (Outcome::Failed, f.error_line),
        child::Ended::TimedOut => (
            Outcome::TimedOut,
            Some(format!(
                "ran past its {} s timeout; terminated",
                step.timeout.as_secs()
            )),
        ),
        child::Ended::Interrupted => (
            Outcome::Interrupted,
            Some("interrupted: the supervisor was stopped".into()),
        ),
    };
    let lines = report.unwrap_or_default();
    let failed: Vec<&report::DatasetLine> = lines.iter().filter(|l| l.failed()).collect();
    if run.outcome != Outcome::Failed || failed.is_empty() {
        return;
    }
    if failed.len() < lines.len() {
        run.outcome = Outcome::Partial;
    }
    run.failed_datasets = failed.iter().map(|l| l.dataset.clone()).collect();
    let errors: Vec<String> = failed
        .iter()
        .map(|l| {
            format!(
                "dataset {}: {}",
                l.dataset,
                l.error.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    run.error = Some(errors.join("; "));
}

/// This machine's name, for alerts.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown host".into())
}
