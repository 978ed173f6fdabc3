//! `materia transform`: new landing files into the lakehouse, published
//! atomically; `--plan` tells what it would do, without doing it.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use materia_core::transform::{
    BuildPlan, Removal, RunReason, STORAGE_VERSION, Sources, TransformOptions, TransformReport,
    plan, transform,
};

use crate::BoxError;
use crate::args::{DuckdbMemory, Globals, Models, Output, Places};
use crate::output::{exit_code, print_json_line};

/// Load new landing files into the lakehouse and publish it atomically.
///
/// A changed model, declaration or storage version is rebuilt and published
/// even with nothing new. A build that would leave out a dataset or a model
/// of the published lakehouse (its config or models directory not passed, a
/// file removed) is refused, exit 2, unless confirmed with --drop.
///
/// Exit 1 when a file was quarantined (the rest is published). With --json:
/// one object (releases_loaded, rows_loaded, changes, releases_total,
/// published, rejected, warnings, steps). With --plan --json: the plan
/// (publishes, refused, new_releases, history, models, drops, sources,
/// published_sources).
///
/// Example: materia transform --plan
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    memory: DuckdbMemory,
    #[command(flatten)]
    models: Models,
    /// The DuckDB storage version of the published file: the oldest DuckDB
    /// that must read it (v1.4.0: DuckDB 1.4 and later).
    #[arg(long, env = "MATERIA_DUCKDB_STORAGE_VERSION", default_value = STORAGE_VERSION)]
    storage_version: String,
    /// Print what the build would do and why (releases to load, history
    /// rebuilt, models to run, tables dropped), writing nothing.
    #[arg(long)]
    plan: bool,
    /// Confirm that a dataset or model of the published lakehouse goes:
    /// dataset:NAME (its tables) or model:NAME (its table). Repeatable.
    #[arg(long = "drop", value_name = "dataset:NAME|model:NAME")]
    drops: Vec<Removal>,
    /// Rebuild these models and every model that depends on them, even with
    /// nothing new (comma-separated or repeated).
    #[arg(long, value_name = "MODEL", value_delimiter = ',')]
    select: Vec<String>,
    /// Discard the history and rebuild it and every model from the landing
    /// zone, into a fresh file.
    #[arg(long)]
    full_refresh: bool,
    #[command(flatten)]
    places: Places,
}

impl Args {
    /// Builds and publishes (or plans); exit 1 when files were quarantined.
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let config = self.places.config.path(globals);
        let mut options = TransformOptions::new(self.places.lakehouse.path(globals));
        options.memory_limit = self.memory.memory_limit;
        options.storage_version = self.storage_version;
        options.progress = io::stderr().is_terminal();
        options.tables = self.places.config.load(globals)?.tables();
        options.sources = Sources {
            config: config.map(std::path::absolute).transpose()?,
            models_dir: self.models.dir().map(std::path::absolute).transpose()?,
        };
        if let Some(models) = self.models.load()? {
            options.models = models;
        }
        options.drops = self.drops;
        options.select = self.select.iter().map(|s| s.trim().to_owned()).collect();
        options.full_refresh = self.full_refresh;
        if self.plan {
            // Never creates the landing zone either.
            let store = self.places.landing.open_existing(globals)?;
            let plan = plan(&store, &options)?;
            print_plan(&plan, self.output.json)?;
            return Ok(ExitCode::SUCCESS);
        }
        let store = self.places.landing.open(globals)?;
        let report = transform(&store, &options)?;
        print(&report, self.output.json)?;
        // Published, but files were quarantined: a check found problems.
        Ok(exit_code(report.rejected.is_empty()))
    }
}

fn print(report: &TransformReport, json: bool) -> Result<(), BoxError> {
    if json {
        return print_json_line(report);
    }
    let mut out = io::stdout().lock();
    match &report.published {
        Some(path) => writeln!(
            out,
            "loaded {} release(s), {} rows; published {} ({} releases) in {} ms",
            report.releases_loaded,
            report.rows_loaded,
            path.display(),
            report.releases_total,
            report.millis
        )?,
        None => writeln!(
            out,
            "nothing new to load ({} releases already loaded)",
            report.releases_total
        )?,
    }
    // The models that ran for a reason of their own: not only the new data,
    // nor to bring the slot level with the published build.
    let data = [
        RunReason::NewData,
        RunReason::HistoryRebuilt,
        RunReason::FullRefresh,
        RunReason::CatchUp,
    ];
    for step in &report.steps {
        let why: Vec<String> = step
            .reasons
            .iter()
            .filter(|r| !data.contains(r))
            .map(ToString::to_string)
            .collect();
        if !why.is_empty() {
            writeln!(out, "  ran {}: {}", step.model, why.join("; "))?;
        }
    }
    for r in &report.rejected {
        writeln!(out, "QUARANTINED {}: {}", r.landing_key, r.reason)?;
    }
    for w in &report.warnings {
        writeln!(out, "warning: audit {}", w.summary())?;
    }
    Ok(())
}

/// The plan, as text or one JSON object.
fn print_plan(plan: &BuildPlan, json: bool) -> Result<(), BoxError> {
    if json {
        return print_json_line(plan);
    }
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "plan for {} (nothing written):",
        plan.lakehouse.display()
    )?;
    writeln!(
        out,
        "declarations: {}; models: {}",
        plan.sources.config_text(),
        plan.sources.models_text()
    )?;
    if plan.new_releases.is_empty() {
        writeln!(out, "new releases: none")?;
    }
    for n in &plan.new_releases {
        writeln!(
            out,
            "new releases: {} {} ({} … {})",
            n.dataset, n.count, n.first, n.last
        )?;
    }
    match plan.history.rebuilt {
        true => {
            let why: Vec<String> = plan
                .history
                .reasons
                .iter()
                .map(ToString::to_string)
                .collect();
            writeln!(
                out,
                "history: rebuilt from the landing zone: {}",
                why.join("; ")
            )?;
        }
        false => writeln!(out, "history: kept")?,
    }
    for m in &plan.models {
        let why: Vec<String> = m.reasons.iter().map(ToString::to_string).collect();
        writeln!(out, "run {} ({}): {}", m.model, m.kind, why.join("; "))?;
    }
    print_drops(&mut out, plan)?;
    let verdict = match (plan.refused, plan.publishes) {
        (true, _) => "refused: confirm each drop with --drop, or pass the config and models again",
        (false, true) => "publishes a new build",
        (false, false) => "nothing to do: nothing new, nothing changed",
    };
    writeln!(out, "build: {verdict}")?;
    Ok(())
}

/// The tables the build would drop, and whether each is confirmed.
fn print_drops(out: &mut impl Write, plan: &BuildPlan) -> Result<(), BoxError> {
    for d in &plan.drops {
        let how = if d.confirmed {
            "confirmed by --drop".to_owned()
        } else {
            format!("refused without --drop {}", d.removal)
        };
        writeln!(out, "drop {}: {} ({how})", d.removal, d.tables.join(", "))?;
    }
    if let Some(s) = plan
        .published_sources
        .as_ref()
        .filter(|_| !plan.drops.is_empty())
    {
        writeln!(
            out,
            "the published build's declarations came from {}, its models from {}",
            s.config_text(),
            s.models_text()
        )?;
    }
    Ok(())
}
