//! Supervise: the daily job, each step a bounded child process.
//!
//! A cycle runs the configured steps in order (by default `materia extract` then
//! `materia transform`), each as a child process of the `materia` binary itself —
//! never through a shell — with the environment passed explicitly and a timeout:
//! past it, the step's whole process group gets SIGTERM and, after a grace
//! period, SIGKILL. A failed step does not stop the supervisor; a step whose
//! prerequisite failed in this cycle (transform after a failed extract) is
//! skipped. One cycle runs at a time: it holds `{LANDING_DIR}/.materia/run.lock`.
//!
//! After every step the state file `{LANDING_DIR}/.materia/state.json` is
//! replaced atomically: the last run of each step (start, duration, outcome, exit
//! code, error line) and the last cycle, which `materia status` reads.
//!
//! SIGTERM or SIGINT stops the supervisor cleanly: the running step gets its
//! grace period, the state is written, and [`Supervisor::run_forever`] returns.

#[cfg(feature = "http")]
mod alert;
mod child;
#[cfg(feature = "http")]
mod ping;
mod schedule;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[cfg(feature = "http")]
pub use alert::{Alert, AlertFormat, AlertKind, Alerter};
pub use schedule::{Schedule, parse_duration};

use crate::error::{Error, Result};
use crate::landing::MetaDir;
use crate::landing::durable::{self, HeldLock, LockFile};

/// One step of a cycle: `exe args…` with a timeout.
///
/// ```
/// use std::time::Duration;
/// use materia_core::supervise::Step;
/// let transform = Step::new("transform", ["transform"], Duration::from_secs(3600))
///     .needs("extract");
/// assert_eq!(transform.needs, ["extract"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The step's name in logs and state (`extract`, `transform`, `mirror`).
    pub name: String,
    /// The arguments after the executable, passed as they are (no shell).
    pub args: Vec<String>,
    /// Past this, the step is terminated.
    pub timeout: Duration,
    /// Steps that must have succeeded earlier in the same cycle.
    pub needs: Vec<String>,
    /// Whether the step gets the bucket credentials (`AWS_*` variables): only
    /// the steps that talk to the bucket do.
    pub secrets: bool,
}

impl Step {
    /// A step running `exe args`.
    pub fn new<I, S>(name: impl Into<String>, args: I, timeout: Duration) -> Step
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Step {
            name: name.into(),
            args: args.into_iter().map(Into::into).collect(),
            timeout,
            needs: Vec::new(),
            secrets: false,
        }
    }

    /// Passes the bucket credentials (`AWS_*`) to this step; other steps never
    /// see them (a compromised parser cannot read them from its environment).
    ///
    /// ```
    /// use std::time::Duration;
    /// use materia_core::supervise::Step;
    /// let mirror = Step::new("mirror", ["mirror"], Duration::from_secs(3600)).with_secrets();
    /// assert!(mirror.secrets);
    /// ```
    pub fn with_secrets(mut self) -> Step {
        self.secrets = true;
        self
    }

    /// Skips this step when `step` failed or was skipped earlier in the cycle.
    pub fn needs(mut self, step: impl Into<String>) -> Step {
        self.needs.push(step.into());
        self
    }
}

/// What the supervisor runs and where it keeps its state.
#[derive(Clone, Debug)]
pub struct SupervisorOptions {
    /// The program each step runs (the `materia` binary itself).
    pub exe: PathBuf,
    /// The landing zone: the lock and the state file live under its `.materia/`.
    pub landing_dir: PathBuf,
    /// The steps of a cycle, in order.
    pub steps: Vec<Step>,
    /// The children's whole environment (nothing else is inherited).
    pub env: Vec<(String, String)>,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// When another cycle holds the lock: wait for it (`true`) or fail at once.
    pub wait_for_lock: bool,
    /// Also write the last cycle's figures here, in Prometheus' text format
    /// (for node_exporter's textfile collector).
    pub textfile: Option<PathBuf>,
    /// A healthchecks.io-style URL pinged at `/start` when a cycle starts, at
    /// itself when it succeeds and at `/{exit code}` when it fails (feature
    /// `http`): the dead-man's switch that notices a job that never ran.
    pub healthcheck_url: Option<String>,
    /// A webhook told when cycles start failing and when they recover, once
    /// per failure streak (feature `http`).
    pub alert_url: Option<String>,
    /// The webhook's format (`None`: detected from the URL).
    #[cfg(feature = "http")]
    pub alert_format: Option<AlertFormat>,
}

impl SupervisorOptions {
    /// Options for `exe` over `landing_dir`, with no steps yet, a 30 s grace
    /// period and no waiting for the lock.
    ///
    /// ```
    /// let o = materia_core::supervise::SupervisorOptions::new("/usr/local/bin/materia", "/data/materia/landing");
    /// assert_eq!(o.grace.as_secs(), 30);
    /// ```
    pub fn new(exe: impl Into<PathBuf>, landing_dir: impl Into<PathBuf>) -> Self {
        SupervisorOptions {
            exe: exe.into(),
            landing_dir: landing_dir.into(),
            steps: Vec::new(),
            env: Vec::new(),
            grace: Duration::from_secs(30),
            wait_for_lock: false,
            textfile: None,
            healthcheck_url: None,
            alert_url: None,
            #[cfg(feature = "http")]
            alert_format: None,
        }
    }
}

/// Whether an environment variable carries the bucket's credentials or
/// settings (`AWS_*`): passed only to steps marked [`Step::with_secrets`].
///
/// ```
/// assert!(materia_core::supervise::is_secret("AWS_SECRET_ACCESS_KEY"));
/// assert!(!materia_core::supervise::is_secret("MATERIA_MIRROR_URL"));
/// ```
pub fn is_secret(name: &str) -> bool {
    name.starts_with("AWS_")
}

/// The environment variables a step inherits from the supervisor's own
/// environment: Materia's (`MATERIA_*`, `LANDING_DIR`, `DUCKDB_PATH`), the
/// S3 client's (`AWS_*`), TLS roots (`SSL_CERT_*`) and proxies. Nothing else:
/// not the supervisor's own secrets, the alert webhook and the dead-man's
/// ping URL (only the supervisor sends those).
///
/// ```
/// use materia_core::supervise::is_passed_to_steps;
/// assert!(is_passed_to_steps("AWS_SECRET_ACCESS_KEY"));
/// assert!(is_passed_to_steps("MATERIA_MIRROR_URL"));
/// assert!(!is_passed_to_steps("LD_PRELOAD"));
/// assert!(!is_passed_to_steps("MATERIA_ALERT_URL"));
/// assert!(!is_passed_to_steps("MATERIA_HEALTHCHECK_URL"));
/// ```
pub fn is_passed_to_steps(name: &str) -> bool {
    const SUPERVISOR_ONLY: &[&str] = &[
        "MATERIA_ALERT_URL",
        "MATERIA_ALERT_FORMAT",
        "MATERIA_HEALTHCHECK_URL",
    ];
    if SUPERVISOR_ONLY.contains(&name) {
        return false;
    }
    const EXACT: &[&str] = &[
        "LANDING_DIR",
        "DUCKDB_PATH",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
    ];
    const PREFIXES: &[&str] = &["MATERIA_", "AWS_", "SSL_CERT_"];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Exit status 0.
    Ok,
    /// A non-zero exit status.
    Failed,
    /// Ran past its timeout and was terminated.
    TimedOut,
    /// The supervisor was stopped (SIGTERM/SIGINT) while it ran.
    Interrupted,
    /// Not run: a step it needs failed, or the supervisor was stopping.
    Skipped,
}

/// One run of one step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRun {
    /// The step's name.
    pub step: String,
    /// When it started (or was skipped).
    pub started_at: Timestamp,
    /// Wall time, in milliseconds.
    pub millis: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// The exit code it stands for (124 for a timeout, 130 interrupted).
    pub exit_code: Option<i32>,
    /// The last line it wrote to stderr when it did not succeed, or why it was skipped.
    pub error: Option<String>,
}

/// One cycle: its steps in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleReport {
    /// When the cycle started.
    pub started_at: Timestamp,
    /// Wall time, in milliseconds.
    pub millis: u64,
    /// Each step's run.
    pub steps: Vec<StepRun>,
}

impl CycleReport {
    /// The first failed step's exit code; 0 when every step succeeded.
    ///
    /// ```
    /// use materia_core::supervise::{CycleReport, Outcome, StepRun};
    /// let run = |step: &str, outcome, exit_code| StepRun {
    ///     step: step.into(), started_at: jiff::Timestamp::UNIX_EPOCH, millis: 0,
    ///     outcome, exit_code, error: None,
    /// };
    /// let cycle = CycleReport {
    ///     started_at: jiff::Timestamp::UNIX_EPOCH,
    ///     millis: 0,
    ///     steps: vec![run("extract", Outcome::TimedOut, Some(124)), run("transform", Outcome::Skipped, None)],
    /// };
    /// assert_eq!(cycle.exit_code(), 124);
    /// ```
    pub fn exit_code(&self) -> i32 {
        self.steps
            .iter()
            .find(|s| s.outcome != Outcome::Ok && s.outcome != Outcome::Skipped)
            .and_then(|s| s.exit_code)
            .unwrap_or(0)
    }
}

/// What the supervisor remembers between runs (`.materia/state.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The last cycle (possibly still running: see its steps).
    pub last_cycle: Option<CycleReport>,
    /// The last run of each step, by name.
    pub steps: BTreeMap<String, StepRun>,
    /// The failure streak and what was sent about it.
    #[serde(default)]
    pub alert: AlertState,
    /// The version of Materia that last wrote this state: the supervisor's
    /// when it starts and at each cycle (so `status` shows what is running,
    /// and whether an upgrade still waits for its restart).
    #[serde(default)]
    pub version: Option<String>,
}

/// Where the alerts stand: one alert per failure streak, one on recovery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    /// Cycles failed in a row (0: the last cycle succeeded).
    pub streak: u32,
    /// Whether the failure alert of the current streak was sent.
    pub failure_sent: bool,
    /// When an alert was last sent.
    pub last_sent: Option<Timestamp>,
}

impl State {
    /// The state file of the landing zone at `landing_dir`.
    ///
    /// ```
    /// let p = materia_core::supervise::State::path("/data/materia/landing");
    /// assert!(p.ends_with(".materia/state.json"));
    /// ```
    pub fn path(landing_dir: impl AsRef<Path>) -> PathBuf {
        MetaDir::of(landing_dir).state()
    }

    /// Reads the state; a missing file is the empty state.
    pub fn load(landing_dir: impl AsRef<Path>) -> Result<State> {
        Ok(durable::read_json(&State::path(landing_dir), "a state file")?.unwrap_or_default())
    }

    fn save(&self, landing_dir: &Path) -> Result<()> {
        state_dir(landing_dir)?;
        durable::replace_json(&State::path(landing_dir), self)
    }
}

/// `{landing_dir}/.materia`, created (with the landing dir) when missing.
fn state_dir(landing_dir: &Path) -> Result<MetaDir> {
    MetaDir::create(landing_dir)
}

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
            write_textfile(path, &prometheus_text(&cycle))?;
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
        let failing_step = cycle
            .steps
            .iter()
            .find(|s| s.outcome != Outcome::Ok && s.outcome != Outcome::Skipped);
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
        let skipped = |why: String| StepRun {
            step: step.name.clone(),
            started_at,
            millis: 0,
            outcome: Outcome::Skipped,
            exit_code: None,
            error: Some(why),
        };
        if self.stopping() {
            return skipped("the supervisor is stopping".into());
        }
        if let Some(failed) = step.needs.iter().find(|need| {
            !cycle
                .steps
                .iter()
                .any(|s| &s.step == *need && s.outcome == Outcome::Ok)
        }) {
            return skipped(format!("{failed} did not succeed in this cycle"));
        }
        tracing::info!(step = %step.name, timeout_secs = step.timeout.as_secs(), "step starting");
        let started = Instant::now();
        let env: Vec<(String, String)> = self
            .options
            .env
            .iter()
            .filter(|(name, _)| step.secrets || !is_secret(name))
            .cloned()
            .collect();
        let finished = child::run(
            &self.options.exe,
            &step.args,
            &env,
            step.timeout,
            self.options.grace,
            &self.stop,
        );
        let millis = started.elapsed().as_millis() as u64;
        let (outcome, exit_code, error) = match finished {
            Err(e) => (Outcome::Failed, Some(127), Some(e.to_string())),
            Ok(f) => {
                let code = child::exit_code(&f.ended);
                match f.ended {
                    child::Ended::Exited(status) if status.success() => {
                        (Outcome::Ok, Some(0), None)
                    }
                    child::Ended::Exited(_) => (Outcome::Failed, Some(code), f.last_line),
                    child::Ended::TimedOut => (
                        Outcome::TimedOut,
                        Some(code),
                        Some(format!(
                            "ran past its {} s timeout; terminated",
                            step.timeout.as_secs()
                        )),
                    ),
                    child::Ended::Interrupted => (
                        Outcome::Interrupted,
                        Some(code),
                        Some("interrupted: the supervisor was stopped".into()),
                    ),
                }
            }
        };
        StepRun {
            step: step.name.clone(),
            started_at,
            millis,
            outcome,
            exit_code,
            error,
        }
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

/// This machine's name, for alerts.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown host".into())
}

/// Writes the Prometheus textfile durably, `0644`: node_exporter, another
/// user, must read it. The directory is shared with other exporters: only
/// Materia's own stale temp files are swept from it.
fn write_textfile(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    durable::remove_stale_temps_in(dir, durable::STATE_TEMP_PREFIX)?;
    durable::replace_file_with_mode(path, text.as_bytes(), 0o644)
}

/// The cycle's figures in Prometheus' text exposition format.
fn prometheus_text(cycle: &CycleReport) -> String {
    let mut out = String::from(
        "# HELP materia_step_success Whether the step succeeded in the last cycle.\n\
         # TYPE materia_step_success gauge\n",
    );
    for s in &cycle.steps {
        out.push_str(&format!(
            "materia_step_success{{step=\"{}\"}} {}\n",
            s.step,
            u8::from(s.outcome == Outcome::Ok)
        ));
    }
    out.push_str(
        "# HELP materia_step_duration_seconds Wall time of the step in the last cycle.\n\
         # TYPE materia_step_duration_seconds gauge\n",
    );
    for s in &cycle.steps {
        out.push_str(&format!(
            "materia_step_duration_seconds{{step=\"{}\"}} {:.3}\n",
            s.step,
            s.millis as f64 / 1000.0
        ));
    }
    out.push_str(&format!(
        "# HELP materia_last_cycle_timestamp_seconds When the last cycle started.\n\
         # TYPE materia_last_cycle_timestamp_seconds gauge\n\
         materia_last_cycle_timestamp_seconds {}\n",
        cycle.started_at.as_second()
    ));
    out
}
