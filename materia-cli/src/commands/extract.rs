//! `materia extract`: fetch datasets' releases and land them.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use materia_core::extract::{Extracted, Extractor, Status};
use materia_core::landing::{Month, Year};

use crate::BoxError;
use crate::args::{ConfigFile, Globals, Landing, Output};
use crate::output::print_json_line;

/// Fetch datasets' releases over HTTP (or file://) and land them.
///
/// Prints `landed`, `unchanged` (304) or `duplicate` per dataset; with
/// --archive also `not_published` (404). With --json: one object per fetch,
/// one line each.
///
/// Example: materia extract --dataset psd,cot
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The datasets to fetch, comma-separated, in turn (declared in the config;
    /// `psd` and `cot` are built in). One failing does not stop the others.
    /// Default: `psd` and the config's datasets.
    #[arg(long, value_delimiter = ',', env = "MATERIA_DATASETS")]
    dataset: Vec<String>,
    /// Fetch from this URL instead of the dataset's (http://, https://, file://).
    /// MATERIA_{DATASET}_URL (e.g. MATERIA_PSD_URL) does the same.
    #[arg(long)]
    url: Option<String>,
    /// Backfill from the monthly archives: YYYY-MM or YYYY-MM..YYYY-MM, each month
    /// into its own year/month.
    #[arg(long, value_name = "YYYY-MM[..YYYY-MM]", conflicts_with = "url")]
    archive: Option<String>,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    landing: Landing,
    #[command(flatten)]
    config: ConfigFile,
}

impl Args {
    /// Fetches each dataset in turn; exit 2 when any failed (the others are
    /// still fetched).
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let store = self.landing.open(globals)?;
        let config = self.config.load(globals)?;
        let names = if self.dataset.is_empty() {
            config.fetch.clone()
        } else {
            self.dataset.clone()
        };
        if names.len() > 1 && self.url.is_some() {
            return Err("--url fetches one dataset: name one with --dataset".into());
        }
        let specs = names
            .iter()
            .map(|name| config.dataset(name).cloned())
            .collect::<Result<Vec<_>, _>>()?;
        let months = self.archive.as_deref().map(parse_month_range).transpose()?;
        let extractor =
            Extractor::new(config.limits.clone())?.with_progress(io::stderr().is_terminal());
        let mut failed = 0;
        for mut spec in specs {
            let name = spec.name.to_string();
            let env_name = format!("MATERIA_{}_URL", name.to_uppercase().replace('-', "_"));
            if let Some(url) = self.url.clone().or_else(|| std::env::var(&env_name).ok()) {
                spec.url = url;
            }
            let Some(months) = &months else {
                match extractor.fetch(&store, &spec) {
                    Ok(done) => report(&done, self.output.json)?,
                    Err(e) if names.len() > 1 => {
                        failed += 1;
                        let _ = writeln!(io::stderr(), "materia: error: dataset {name}: {e}");
                    }
                    Err(e) => return Err(e.into()),
                }
                continue;
            };
            for &(year, month) in months {
                match extractor.fetch_archive(&store, &spec, year, month) {
                    Ok(done) => report(&done, self.output.json)?,
                    Err(e) => {
                        failed += 1;
                        let _ = writeln!(
                            io::stderr(),
                            "materia: error: dataset {name} {year}-{month}: {e}"
                        );
                    }
                }
            }
        }
        Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        })
    }
}

/// `YYYY-MM` or `YYYY-MM..YYYY-MM`, as the months in order.
fn parse_month_range(text: &str) -> Result<Vec<(Year, Month)>, BoxError> {
    let one = |s: &str| -> Result<(Year, Month), BoxError> {
        let (y, m) = s
            .split_once('-')
            .ok_or_else(|| format!("--archive: {s:?} is not YYYY-MM"))?;
        let num = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| format!("--archive: {s:?} is not YYYY-MM"))
        };
        Ok((Year::new(num(y)?)?, Month::new(num(m)?)?))
    };
    let (from, to) = match text.split_once("..") {
        Some((a, b)) => (one(a)?, one(b)?),
        None => (one(text)?, one(text)?),
    };
    if from > to {
        return Err(format!("--archive: {text:?} runs backwards").into());
    }
    let mut months = Vec::new();
    let (mut y, mut m) = (i64::from(from.0.get()), i64::from(from.1.get()));
    while (y, m) <= (i64::from(to.0.get()), i64::from(to.1.get())) {
        months.push((Year::new(y)?, Month::new(m)?));
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    Ok(months)
}

/// One fetch's outcome: a line of text, or of JSON.
fn report(done: &Extracted, json: bool) -> Result<(), BoxError> {
    if json {
        return print_json_line(done);
    }
    let mut out = io::stdout().lock();
    match &done.status {
        Status::Landed {
            key,
            bytes_in,
            content_bytes,
            bytes_out,
            sha256,
        } => writeln!(
            out,
            "landed {key}: {bytes_in} bytes in, {content_bytes} bytes of CSV, \
             {bytes_out} bytes stored, sha256 {sha256}"
        )?,
        Status::Unchanged => writeln!(out, "unchanged: {} (304 Not Modified)", done.url)?,
        Status::Duplicate { existing, of } => writeln!(
            out,
            "duplicate: {existing} already holds this {of}; nothing landed"
        )?,
        Status::NotPublished => writeln!(out, "not published: {}", done.url)?,
        other => writeln!(out, "{other:?}: {}", done.url)?,
    }
    Ok(())
}
