//! `materia run`, `materia supervise` and `materia status`: cycles of steps, each
//! a child process of this binary (no shell), and what the last ones did.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use jiff::Timestamp;
use materia_core::landing::{LandingKey, LandingStore, Stats};
use materia_core::supervise::{
    Schedule, State, Step, Supervisor, SupervisorOptions, is_passed_to_steps, parse_duration,
};
use materia_core::transform::{Lakehouse, Rejected};
use serde::Serialize;

use crate::{BoxError, print_json};

/// A step of a cycle.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StepName {
    /// `materia extract` (with `--url` when given).
    Extract,
    /// `materia transform`; skipped when extract failed in the same cycle.
    Transform,
    /// `materia mirror` (needs MATERIA_MIRROR_URL).
    Mirror,
    /// `materia check`: freshness; runs even when extract failed.
    Check,
    /// `materia publish` (needs MATERIA_PUBLISH_URL); skipped when transform
    /// failed in the same cycle.
    Publish,
}

impl StepName {
    fn as_str(self) -> &'static str {
        match self {
            StepName::Extract => "extract",
            StepName::Transform => "transform",
            StepName::Mirror => "mirror",
            StepName::Check => "check",
            StepName::Publish => "publish",
        }
    }
}

/// What a cycle runs and how long each step may take.
#[derive(Args)]
pub(crate) struct CycleArgs {
    /// The steps of a cycle, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        env = "MATERIA_STEPS",
        default_value = "extract,transform,check"
    )]
    steps: Vec<StepName>,
    /// A step's timeout as STEP=DURATION (s, m, h, d), e.g. extract=30m; repeatable.
    /// Default: 1h for each step.
    #[arg(long = "timeout", value_name = "STEP=DURATION")]
    timeouts: Vec<String>,
    /// How long a step past its timeout gets between SIGTERM and SIGKILL.
    #[arg(long, default_value = "30s")]
    grace: String,
    /// Fetch from this URL instead of the dataset's (the extract step).
    #[arg(long)]
    url: Option<String>,
    /// Also write the last cycle's figures here, in Prometheus' text format.
    #[arg(long, env = "MATERIA_TEXTFILE")]
    textfile: Option<PathBuf>,
    /// A dead-man's switch (healthchecks.io style): pinged at /start when a
    /// cycle starts, at the URL on success, at /{exit code} on failure.
    #[arg(long, env = "MATERIA_HEALTHCHECK_URL")]
    healthcheck_url: Option<String>,
    /// A webhook told when cycles start failing and when they recover (once
    /// per failure streak).
    #[arg(long, env = "MATERIA_ALERT_URL")]
    alert_url: Option<String>,
    /// The webhook's format: json, ntfy or slack (default: from the URL).
    #[arg(long, env = "MATERIA_ALERT_FORMAT")]
    alert_format: Option<String>,
}

/// Settings shared by every command.
pub(crate) struct Paths<'a> {
    pub landing_dir: &'a Path,
    pub duckdb_path: &'a Path,
    pub config: Option<&'a Path>,
}

fn absolute(path: &Path) -> Result<PathBuf, BoxError> {
    Ok(std::path::absolute(path)?)
}

fn options(
    paths: &Paths<'_>,
    args: &CycleArgs,
    json: bool,
    wait: bool,
) -> Result<SupervisorOptions, BoxError> {
    let mut timeouts: BTreeMap<&str, Duration> = BTreeMap::new();
    for spec in &args.timeouts {
        let (step, duration) = spec.split_once('=').ok_or_else(|| {
            format!("--timeout {spec:?}: expected STEP=DURATION, e.g. extract=30m")
        })?;
        let name = StepName::from_str(step, true)
            .map_err(|_| format!("--timeout {spec:?}: unknown step {step:?}"))?;
        let d = parse_duration(duration).map_err(|e| format!("--timeout {spec:?}: {e}"))?;
        timeouts.insert(name.as_str(), d);
    }
    let grace = parse_duration(&args.grace).map_err(|e| format!("--grace: {e}"))?;
    let mut steps = Vec::new();
    for name in &args.steps {
        let timeout = timeouts
            .get(name.as_str())
            .copied()
            .unwrap_or(Duration::from_secs(3600));
        let mut argv = vec![name.as_str().to_owned()];
        if let (StepName::Extract, Some(url)) = (name, &args.url) {
            argv.extend(["--url".to_owned(), url.clone()]);
        }
        if json {
            argv.push("--json".into());
        }
        let mut step = Step::new(name.as_str(), argv, timeout);
        if matches!(name, StepName::Mirror | StepName::Publish) {
            step = step.with_secrets();
        }
        if *name == StepName::Publish && args.steps.contains(&StepName::Transform) {
            step = step.needs("transform");
        }
        if *name == StepName::Transform && args.steps.contains(&StepName::Extract) {
            step = step.needs("extract");
        }
        steps.push(step);
    }
    let landing_dir = absolute(paths.landing_dir)?;
    crate::credentials::warn_empty_aws_settings();
    // `vars_os`: `vars` panics on a variable that is not UTF-8.
    let mut env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| is_passed_to_steps(k))
        // An empty `AWS_*` is unset: it must not hide the r2 credential.
        .filter(|(k, v)| !(k.starts_with("AWS_") && v.trim().is_empty()))
        .filter(|(k, _)| !matches!(k.as_str(), "LANDING_DIR" | "DUCKDB_PATH" | "MATERIA_CONFIG"))
        .collect();
    // The R2 secret from systemd's credential: for the bucket steps only
    // (the supervisor passes `AWS_*` to no other step).
    for (key, value) in crate::credentials::r2()? {
        if !env.iter().any(|(k, _)| *k == key) {
            env.push((key, value));
        }
    }
    env.push((
        "LANDING_DIR".into(),
        landing_dir.to_string_lossy().into_owned(),
    ));
    env.push((
        "DUCKDB_PATH".into(),
        absolute(paths.duckdb_path)?.to_string_lossy().into_owned(),
    ));
    if let Some(config) = paths.config {
        env.push((
            "MATERIA_CONFIG".into(),
            absolute(config)?.to_string_lossy().into_owned(),
        ));
    }
    Ok(SupervisorOptions {
        steps,
        env,
        grace,
        wait_for_lock: wait,
        textfile: args.textfile.clone(),
        healthcheck_url: args.healthcheck_url.clone(),
        alert_url: args.alert_url.clone(),
        alert_format: args.alert_format.as_deref().map(str::parse).transpose()?,
        ..SupervisorOptions::new(std::env::current_exe()?, landing_dir)
    })
}

/// `materia run`: one cycle now; exits with the first failed step's code.
pub(crate) fn run_once(
    paths: &Paths<'_>,
    args: &CycleArgs,
    json: bool,
    wait: bool,
) -> Result<ExitCode, BoxError> {
    let supervisor = Supervisor::new(options(paths, args, json, wait)?);
    supervisor.stop_on_signals()?;
    let cycle = supervisor.run_cycle()?;
    Ok(ExitCode::from(cycle.exit_code().clamp(0, 255) as u8))
}

/// `materia supervise`: cycles on a schedule until SIGTERM/SIGINT.
pub(crate) fn supervise(
    paths: &Paths<'_>,
    args: &CycleArgs,
    schedule: &str,
) -> Result<ExitCode, BoxError> {
    let schedule: Schedule = schedule.parse()?;
    let supervisor = Supervisor::new(options(paths, args, false, true)?);
    supervisor.stop_on_signals()?;
    supervisor.run_forever(&schedule)?;
    Ok(ExitCode::SUCCESS)
}

/// The newest landed file of a dataset.
#[derive(Serialize)]
struct Newest {
    key: LandingKey,
    landed_at: Option<Timestamp>,
}

/// The published lakehouse.
#[derive(Serialize)]
struct Published {
    path: PathBuf,
    modified_at: Option<Timestamp>,
    age_seconds: Option<u64>,
    /// Landing files quarantined by transform (`raw.rejected`).
    rejected: Vec<Rejected>,
}

#[derive(Serialize)]
struct Status {
    #[serde(flatten)]
    state: State,
    landing: Stats,
    newest: BTreeMap<String, Newest>,
    lakehouse: Option<Published>,
    /// The last restore drill.
    #[cfg(feature = "s3")]
    last_drill: Option<materia_core::drill::LastDrill>,
    /// When a push last recorded an upload (`None`: no `materia mirror` has
    /// uploaded from this landing zone).
    last_backup: Option<Timestamp>,
}

/// The newest change to the mirror's records under `.materia/mirror/` (its
/// locks aside): when a push last recorded an upload.
fn last_backup(store: &LandingStore) -> Option<Timestamp> {
    std::fs::read_dir(store.meta().mirror())
        .ok()?
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".lock"))
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()
        .and_then(|t| Timestamp::try_from(t).ok())
}

/// `materia status`: the last run of each step, the landing zone, the lakehouse.
pub(crate) fn status(
    paths: &Paths<'_>,
    store: &LandingStore,
    json: bool,
) -> Result<ExitCode, BoxError> {
    let state = State::load(paths.landing_dir)?;
    let landing = store.stats();
    let mut newest = BTreeMap::new();
    for dataset in landing.datasets.keys() {
        if let Ok(d) = dataset.parse()
            && let Some(entry) = store.latest(&d)
        {
            let landed_at = entry.release.as_ref().map(|r| r.landed_at);
            newest.insert(
                dataset.clone(),
                Newest {
                    key: entry.key,
                    landed_at,
                },
            );
        }
    }
    let lakehouse = match std::fs::metadata(paths.duckdb_path) {
        Ok(m) => {
            let modified = m.modified().ok();
            Some(Published {
                path: paths.duckdb_path.to_path_buf(),
                modified_at: modified.and_then(|t| Timestamp::try_from(t).ok()),
                age_seconds: modified.and_then(|t| t.elapsed().ok()).map(|d| d.as_secs()),
                rejected: Lakehouse::open_read_only(paths.duckdb_path)
                    .and_then(|lake| lake.rejected())
                    .unwrap_or_else(|e| {
                        tracing::warn!("cannot read the quarantine list: {e}");
                        Vec::new()
                    }),
            })
        }
        Err(_) => None,
    };
    let status = Status {
        state,
        landing,
        newest,
        lakehouse,
        #[cfg(feature = "s3")]
        last_drill: materia_core::drill::LastDrill::load(paths.landing_dir)?,
        last_backup: last_backup(store),
    };
    if json {
        print_json(&status)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = io::stdout().lock();
    let mine = env!("CARGO_PKG_VERSION");
    match status.state.version.as_deref() {
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
    match &status.state.last_cycle {
        Some(c) => writeln!(
            out,
            "last cycle: started {} ({} ms), exit code {}",
            c.started_at,
            c.millis,
            c.exit_code()
        )?,
        None => writeln!(out, "last cycle: none yet")?,
    }
    for (name, run) in &status.state.steps {
        let outcome = serde_json::to_value(run.outcome)?;
        writeln!(
            out,
            "  {name:<10} {:<11} started {} took {} ms{}",
            outcome.as_str().unwrap_or("?"),
            run.started_at,
            run.millis,
            run.error
                .as_deref()
                .map(|e| format!(" — {e}"))
                .unwrap_or_default()
        )?;
    }
    let alert = &status.state.alert;
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
            paths.duckdb_path.display()
        )?,
    }
    for r in status.lakehouse.iter().flat_map(|p| &p.rejected) {
        writeln!(out, "  QUARANTINED {}: {}", r.landing_key, r.reason)?;
    }
    match status.last_backup {
        Some(t) => writeln!(out, "backup: last upload recorded {t}")?,
        None if crate::credentials::env_is_set("MATERIA_MIRROR_URL") => writeln!(
            out,
            "backup: none yet (materia-backup.timer pushes every 6 hours; or run materia mirror)"
        )?,
        None => writeln!(
            out,
            "backup: none yet — set MATERIA_MIRROR_URL and AWS_ENDPOINT in /etc/materia/materia.env \
             (the keys in /etc/materia/r2.env); infra/bootstrap.sh then enables materia-backup.timer"
        )?,
    }
    #[cfg(feature = "s3")]
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
    Ok(ExitCode::SUCCESS)
}

/// `materia notify`: a test alert, or that a systemd unit failed, now.
pub(crate) fn notify(
    url: &str,
    format: Option<&str>,
    failed_unit: Option<&str>,
) -> Result<ExitCode, BoxError> {
    use materia_core::supervise::{Alert, AlertKind, Alerter, host_name};
    let format = format.map(str::parse).transpose()?;
    let alert = Alert {
        kind: if failed_unit.is_some() {
            AlertKind::Failure
        } else {
            AlertKind::Test
        },
        step: failed_unit.map(str::to_owned),
        exit_code: None,
        error: failed_unit.map(|u| format!("the systemd unit {u} failed: journalctl -u {u}")),
        streak: 0,
        host: host_name(),
        at: Timestamp::now(),
    };
    Alerter::new(url, format)?.send(&alert)?;
    let what = if failed_unit.is_some() {
        "a failure"
    } else {
        "a test"
    };
    writeln!(io::stdout(), "sent {what} alert")?;
    Ok(ExitCode::SUCCESS)
}
