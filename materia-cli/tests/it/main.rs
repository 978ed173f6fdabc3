//! The `materia` binary, run as a user (or systemd) would run it: one test
//! binary, one module per area (each test binary links DuckDB's C++, ~140 MB).
//! `tests/memory.rs` stays a binary of its own: it reads the peak RSS of its
//! children, which only its own processes may be.

use std::path::Path;
use std::process::Command;

mod cli;
mod crash;
mod faults;
mod lakehouse;
#[cfg(feature = "s3")]
mod mirror;
mod supervise;

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
        "DUCKDB_PATH",
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
