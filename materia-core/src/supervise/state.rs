//! What the supervisor remembers between runs: how each step and the last
//! cycle ended, and where the alerts stand (`.materia/state.json`, replaced
//! atomically after every step).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::landing::MetaDir;
use crate::landing::durable;

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Exit status 0.
    Ok,
    /// A non-zero exit status.
    Failed,
    /// Failed for some datasets, done for the others (its report says which:
    /// see [`StepRun::failed_datasets`]): the steps that need it still run;
    /// the cycle still fails.
    Partial,
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
    /// Its error line when it did not succeed — each failed dataset with its
    /// error when the step reported them, else the `materia: error:` line of
    /// its stderr, else the last line that is not a log line — or why it was
    /// skipped.
    pub error: Option<String>,
    /// The datasets it failed for, when it reported them (`extract`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_datasets: Vec<String>,
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
    /// The first failed step's exit code (a partial step is a failed one); 0
    /// when every step succeeded.
    ///
    /// ```
    /// use materia_core::supervise::{CycleReport, Outcome, StepRun};
    /// let run = |step: &str, outcome, exit_code| StepRun {
    ///     step: step.into(), started_at: jiff::Timestamp::UNIX_EPOCH, millis: 0,
    ///     outcome, exit_code, error: None, failed_datasets: Vec::new(),
    /// };
    /// let cycle = CycleReport {
    ///     started_at: jiff::Timestamp::UNIX_EPOCH,
    ///     millis: 0,
    ///     steps: vec![run("extract", Outcome::TimedOut, Some(124)), run("transform", Outcome::Skipped, None)],
    /// };
    /// assert_eq!(cycle.exit_code(), 124);
    /// ```
    pub fn exit_code(&self) -> i32 {
        self.failed_step().and_then(|s| s.exit_code).unwrap_or(0)
    }

    /// The first step that failed (partly or wholly): what the alert is about.
    pub fn failed_step(&self) -> Option<&StepRun> {
        self.steps
            .iter()
            .find(|s| s.outcome != Outcome::Ok && s.outcome != Outcome::Skipped)
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

    pub(super) fn save(&self, landing_dir: &Path) -> Result<()> {
        state_dir(landing_dir)?;
        durable::replace_json(&State::path(landing_dir), self)
    }
}

/// `{landing_dir}/.materia`, created (with the landing dir) when missing.
pub(super) fn state_dir(landing_dir: &Path) -> Result<MetaDir> {
    MetaDir::create(landing_dir)
}
