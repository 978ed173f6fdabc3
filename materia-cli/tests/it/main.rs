//! The `materia` binary, run as a user (or systemd) would run it: one test
//! binary, one module per area (each test binary links DuckDB's C++, ~140 MB).
//! `tests/memory.rs` stays a binary of its own: it reads the peak RSS of its
//! children, which only its own processes may be.

use std::path::Path;
use std::process::{Command, Output};

mod build_plan;
mod cli;
mod crash;
mod faults;
mod infra;
mod lakehouse;
#[cfg(feature = "s3")]
mod mirror;
mod models;
mod ops;
#[cfg(feature = "s3")]
mod publish;
mod supervise;
mod tour;

/// The `materia` binary over the landing zone at `landing`, with nothing from
/// this process's environment that would change what it does (log level,
/// schedule, steps, paths) and a small DuckDB memory limit.
pub fn materia(landing: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_materia"));
    cmd.env("LANDING_DIR", landing)
        .env("MATERIA_DUCKDB_MEMORY", "512MB");
    for name in [
        "MATERIA_LOG",
        "MATERIA_SCHEDULE",
        "MATERIA_STEPS",
        "MATERIA_CONFIG",
        "MATERIA_MIRROR_URL",
        "MATERIA_PUBLISH_URL",
        "MATERIA_PUBLISH_KEEP",
        "DUCKDB_PATH",
        "MATERIA_DRILL_DIR",
        "MATERIA_MODELS",
        "MATERIA_ALERT_URL",
        "MATERIA_HEALTHCHECK_URL",
        "MATERIA_DATASETS",
    ] {
        cmd.env_remove(name);
    }
    cmd
}

/// The S3 settings for a test server at `endpoint`, bucket prefix `url`.
pub fn with_s3<'a>(
    cmd: &'a mut Command,
    url: &str,
    endpoint: &str,
    secret: &str,
) -> &'a mut Command {
    cmd.env("MATERIA_MIRROR_URL", url)
        .env("AWS_ENDPOINT", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
}

/// The test kit's temporary landing zone and lakehouse, with the `materia`
/// commands every module runs on it (modules add methods of their own).
pub struct Env(materia_testkit::env::Env);

impl std::ops::Deref for Env {
    type Target = materia_testkit::env::Env;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// A fresh [`Env`].
pub fn env() -> Env {
    Env(materia_testkit::env::Env::new())
}

impl Env {
    /// `materia` over this landing zone and lakehouse.
    pub fn materia(&self) -> Command {
        let mut cmd = materia(&self.landing);
        cmd.env("DUCKDB_PATH", &self.duckdb);
        cmd
    }

    /// Runs `materia args…` to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.materia().args(args).output().expect("materia runs")
    }

    /// Runs `materia args…`, which must succeed, and parses its JSON output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).expect("JSON")
    }
}

/// `MATERIA_TEST_PYTHON` — the venv `.ci/run` makes with duckdb 1.5.6, Polars
/// and boto3 — checked to have `module` at `version`. Unset or without it,
/// the test fails saying how to get it.
pub fn python_with(module: &str, version: &str) -> String {
    let how = "python3 -m venv V && V/bin/pip install duckdb==1.5.6 polars==1.35.2 boto3==1.40.61, \
               then MATERIA_TEST_PYTHON=V/bin/python (.ci/run does this)";
    let python = std::env::var("MATERIA_TEST_PYTHON")
        .unwrap_or_else(|_| panic!("MATERIA_TEST_PYTHON is not set: {how}"));
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            &format!("import {module}; print({module}.__version__)"),
        ])
        .output()
        .expect("MATERIA_TEST_PYTHON runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        version,
        "MATERIA_TEST_PYTHON must have {module}=={version}: {out:?}; {how}"
    );
    python
}
