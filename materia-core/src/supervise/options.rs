//! What a supervisor runs: its steps, their time limits, and the environment
//! each one inherits (the bucket's credentials only for the steps that need them).

use std::path::PathBuf;
use std::time::Duration;

#[cfg(feature = "http")]
use super::alert::AlertFormat;

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
    /// Whether the step reports each dataset's outcome (see
    /// [`Step::with_report`]).
    pub reports: bool,
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
            reports: false,
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

    /// Asks this step for a report of each dataset's outcome (the file named
    /// by [`STEP_REPORT_ENV`](super::STEP_REPORT_ENV), written by `materia
    /// extract`): failed for some datasets only, it is
    /// [`Outcome::Partial`](super::Outcome::Partial) and the steps that need
    /// it still run.
    ///
    /// ```
    /// use std::time::Duration;
    /// use materia_core::supervise::Step;
    /// let extract = Step::new("extract", ["extract"], Duration::from_secs(3600)).with_report();
    /// assert!(extract.reports);
    /// ```
    pub fn with_report(mut self) -> Step {
        self.reports = true;
        self
    }

    /// Skips this step when `step` failed or was skipped earlier in the cycle
    /// (a step that failed for some datasets only does not skip it).
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
/// ping URL (only the supervisor sends those), and the step report's path
/// (the supervisor sets it for each step that reports).
///
/// ```
/// use materia_core::supervise::is_passed_to_steps;
/// assert!(is_passed_to_steps("AWS_SECRET_ACCESS_KEY"));
/// assert!(is_passed_to_steps("MATERIA_MIRROR_URL"));
/// assert!(!is_passed_to_steps("LD_PRELOAD"));
/// assert!(!is_passed_to_steps("MATERIA_ALERT_URL"));
/// assert!(!is_passed_to_steps("MATERIA_HEALTHCHECK_URL"));
/// assert!(!is_passed_to_steps("MATERIA_STEP_REPORT"));
/// ```
pub fn is_passed_to_steps(name: &str) -> bool {
    const SUPERVISOR_ONLY: &[&str] = &[
        "MATERIA_ALERT_URL",
        "MATERIA_ALERT_FORMAT",
        "MATERIA_HEALTHCHECK_URL",
        super::STEP_REPORT_ENV,
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
