//! The cycle `materia run` and `materia supervise` share: which steps, how long
//! each may take, and the environment each child process gets — turned into
//! the supervisor's options once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ValueEnum;
use materia_core::supervise::{Step, SupervisorOptions, is_passed_to_steps, parse_duration};

use crate::BoxError;
use crate::args::{Globals, Places};
use crate::credentials;

/// A step of a cycle.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StepName {
    /// `materia extract` (with `--url` when given).
    Extract,
    /// `materia transform`; skipped when extract failed in the same cycle
    /// (run when it failed for some datasets only: it loads what landed).
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
#[derive(clap::Args)]
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
    #[command(flatten)]
    places: Places,
}

impl CycleArgs {
    /// The supervisor's options: the steps (passing `--json` to each when
    /// `json`), their environment, and whether to wait for a running cycle.
    pub(crate) fn options(
        &self,
        globals: &Globals,
        json: bool,
        wait: bool,
    ) -> Result<SupervisorOptions, BoxError> {
        let timeouts = self.timeouts()?;
        let grace = parse_duration(&self.grace).map_err(|e| format!("--grace: {e}"))?;
        let steps = self.steps(&timeouts, json);
        let landing_dir = std::path::absolute(self.places.landing.dir(globals))?;
        let env = self.env(globals, &landing_dir)?;
        Ok(SupervisorOptions {
            steps,
            env,
            grace,
            wait_for_lock: wait,
            textfile: self.textfile.clone(),
            healthcheck_url: self.healthcheck_url.clone(),
            alert_url: self.alert_url.clone(),
            alert_format: self.alert_format.as_deref().map(str::parse).transpose()?,
            ..SupervisorOptions::new(std::env::current_exe()?, landing_dir)
        })
    }

    /// Each `--timeout STEP=DURATION`, by step.
    fn timeouts(&self) -> Result<BTreeMap<&'static str, Duration>, BoxError> {
        let mut timeouts = BTreeMap::new();
        for spec in &self.timeouts {
            let (step, duration) = spec.split_once('=').ok_or_else(|| {
                format!("--timeout {spec:?}: expected STEP=DURATION, e.g. extract=30m")
            })?;
            let name = StepName::from_str(step, true)
                .map_err(|_| format!("--timeout {spec:?}: unknown step {step:?}"))?;
            let d = parse_duration(duration).map_err(|e| format!("--timeout {spec:?}: {e}"))?;
            timeouts.insert(name.as_str(), d);
        }
        Ok(timeouts)
    }

    /// The steps: each a `materia` command; only the bucket's get its
    /// credentials; extract reports each dataset's outcome (so a failure of
    /// one dataset does not stop transform); transform needs extract, publish
    /// needs transform.
    fn steps(&self, timeouts: &BTreeMap<&str, Duration>, json: bool) -> Vec<Step> {
        let mut steps = Vec::new();
        for name in &self.steps {
            let timeout = timeouts
                .get(name.as_str())
                .copied()
                .unwrap_or(Duration::from_secs(3600));
            let mut argv = vec![name.as_str().to_owned()];
            if let (StepName::Extract, Some(url)) = (name, &self.url) {
                argv.extend(["--url".to_owned(), url.clone()]);
            }
            if json {
                argv.push("--json".into());
            }
            let mut step = Step::new(name.as_str(), argv, timeout);
            if *name == StepName::Extract {
                step = step.with_report();
            }
            if matches!(name, StepName::Mirror | StepName::Publish) {
                step = step.with_secrets();
            }
            if *name == StepName::Publish && self.steps.contains(&StepName::Transform) {
                step = step.needs("transform");
            }
            if *name == StepName::Transform && self.steps.contains(&StepName::Extract) {
                step = step.needs("extract");
            }
            steps.push(step);
        }
        steps
    }

    /// The steps' whole environment: what they may inherit from ours, the
    /// `r2` credential's settings, and the places as absolute paths.
    fn env(
        &self,
        globals: &Globals,
        landing_dir: &Path,
    ) -> Result<Vec<(String, String)>, BoxError> {
        credentials::warn_empty_aws_settings();
        // `vars_os`: `vars` panics on a variable that is not UTF-8.
        let mut env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| is_passed_to_steps(k))
            // An empty `AWS_*` is unset: it must not hide the r2 credential.
            .filter(|(k, v)| !(k.starts_with("AWS_") && v.trim().is_empty()))
            .filter(|(k, _)| {
                !matches!(k.as_str(), "LANDING_DIR" | "DUCKDB_PATH" | "MATERIA_CONFIG")
            })
            .collect();
        // The R2 secret from systemd's credential: for the bucket steps only
        // (the supervisor passes `AWS_*` to no other step).
        for (key, value) in credentials::r2()? {
            if !env.iter().any(|(k, _)| *k == key) {
                env.push((key, value));
            }
        }
        let absolute = |path: &Path| -> Result<String, BoxError> {
            Ok(std::path::absolute(path)?.to_string_lossy().into_owned())
        };
        env.push(("LANDING_DIR".into(), absolute(landing_dir)?));
        env.push((
            "DUCKDB_PATH".into(),
            absolute(self.places.lakehouse.path(globals))?,
        ));
        if let Some(config) = self.places.config.path(globals) {
            env.push(("MATERIA_CONFIG".into(), absolute(config)?));
        }
        Ok(env)
    }
}
