//! `materia check` (freshness) and `materia drill` (a restore drill).

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use materia_core::check::{check, human};
use materia_core::dataset::Config;
use materia_core::landing::LandingStore;

use crate::{BoxError, print_json, print_json_line};

/// `materia check`: exit 1 naming each stale dataset and a stale lakehouse.
pub(crate) fn freshness(
    store: &LandingStore,
    config: Option<&Path>,
    datasets: Vec<String>,
    duckdb_path: &Path,
    json: bool,
) -> Result<ExitCode, BoxError> {
    let mut config = Config::load_or_default(config)?;
    if !datasets.is_empty() {
        for name in &datasets {
            config.dataset(name)?;
        }
        config.fetch = datasets;
    }
    let report = check(store, &config, duckdb_path, jiff::Timestamp::now())?;
    if json {
        // One line: `materia run --json` prints each step's JSON as a line.
        print_json_line(&report)?;
    } else {
        let mut out = io::stdout().lock();
        for d in &report.datasets {
            let verdict = if d.stale { "STALE" } else { "ok" };
            let newest = match (&d.newest, d.age_seconds) {
                (Some(key), Some(age)) => format!("newest {key}, {} old", human(age)),
                _ => "nothing landed".into(),
            };
            let allowed = d.max_age_seconds.map_or_else(
                || "no cadence set".into(),
                |s| format!("allowed {}", human(s)),
            );
            writeln!(
                out,
                "{verdict:<5} dataset {}: {newest} ({allowed})",
                d.dataset
            )?;
        }
        let l = &report.lakehouse;
        let verdict = if l.stale { "STALE" } else { "ok" };
        writeln!(
            out,
            "{verdict:<5} lakehouse {}: {} landed file(s) not built after {}",
            l.path.display(),
            l.behind.len(),
            human(l.grace_seconds)
        )?;
    }
    // On stderr too: the supervisor's alert quotes a failed step's last line.
    let mut err = io::stderr().lock();
    for problem in report.problems() {
        writeln!(err, "materia: stale: {problem}")?;
    }
    Ok(if report.is_fresh() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `materia drill`: restore into a temporary directory, rebuild, compare.
#[cfg(feature = "s3")]
pub(crate) fn drill(
    store: &LandingStore,
    mirror: materia_core::mirror::MirrorOptions,
    options: &materia_core::drill::DrillOptions,
    json: bool,
) -> Result<ExitCode, BoxError> {
    let mirror = materia_core::mirror::Mirror::new(mirror)?;
    let report = materia_core::drill::drill(&mirror, store, options)?;
    if json {
        print_json(&report)?;
    } else {
        let mut out = io::stdout().lock();
        for t in &report.tables {
            let verdict = if t.same { "same" } else { "DIFFERENT" };
            writeln!(out, "{verdict:<9} {} ({} rows)", t.table, t.rows)?;
        }
        for d in &report.differences {
            writeln!(out, "DIFFERENT {d}")?;
        }
        writeln!(
            out,
            "restored {} file(s), {} bytes; rebuilt {} release(s); {} difference(s) in {} ms",
            report.restored,
            report.bytes,
            report.releases,
            report.differences.len(),
            report.millis
        )?;
    }
    let mut err = io::stderr().lock();
    for d in &report.differences {
        writeln!(err, "materia: drill: {d}")?;
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
