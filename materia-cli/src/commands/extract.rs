//! `materia extract`: fetch datasets' releases and land them.

use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use materia_core::dataset::{Config, DatasetSpec};
use materia_core::extract::{Extracted, Extractor, Status};
use materia_core::landing::{LandingStore, Month, Year};
use materia_core::supervise::{ERROR_PREFIX, STEP_REPORT_ENV, write_step_report};

use crate::BoxError;
use crate::args::{ConfigFile, Globals, Landing, NewDataset, Output};
use crate::output::print_json_line;

/// Fetch datasets' releases over HTTP (or file://) and land them.
///
/// Prints `landed`, `unchanged` (304) or `duplicate` per dataset; with
/// --archive also `not_published` (404). With --json: one object per fetch,
/// one line each; a fetch that failed is `{"dataset", "url", "status":
/// "failed", "error"}`. A dataset nobody declared is refused unless
/// --new-dataset (then --url, or MATERIA_{DATASET}_URL, gives its URL).
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
    #[command(flatten)]
    new_dataset: NewDataset,
}

impl Args {
    /// Fetches each dataset in turn; exit 2 when any failed (the others are
    /// still fetched). Run by the supervisor, also writes each dataset's
    /// outcome to the file [`STEP_REPORT_ENV`] names.
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
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
            .map(|name| self.spec(&config, name))
            .collect::<Result<Vec<_>, _>>()?;
        let months = self.archive.as_deref().map(parse_month_range).transpose()?;
        let store = self.landing.open(globals)?;
        let extractor =
            Extractor::new(config.limits.clone())?.with_progress(io::stderr().is_terminal());
        let (lines, alone_error) = self.fetch_all(&extractor, &store, &specs, months.as_deref())?;
        if let Some(path) = std::env::var_os(STEP_REPORT_ENV) {
            write_step_report(Path::new(&path), &lines)?;
        }
        if let Some(e) = alone_error {
            return Err(e.into());
        }
        let failed = lines
            .iter()
            .any(|l| matches!(l.status, Status::Failed { .. }));
        Ok(if failed {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        })
    }

    /// The dataset `name` to fetch: declared (or `--new-dataset` with a URL),
    /// from `--url` or `MATERIA_{NAME}_URL` when given.
    fn spec(&self, config: &Config, name: &str) -> Result<DatasetSpec, BoxError> {
        self.new_dataset.check(config, name)?;
        let mut spec = match config.datasets.get(name) {
            Some(spec) => spec.clone(),
            None => DatasetSpec::new(name.parse()?, ""),
        };
        let env_name = format!("MATERIA_{}_URL", name.to_uppercase().replace('-', "_"));
        if let Some(url) = self.url.clone().or_else(|| std::env::var(&env_name).ok()) {
            spec.url = url;
        }
        if spec.url.is_empty() {
            return Err(format!(
                "dataset {name:?} is declared nowhere, so it has no URL: give one with --url (or {env_name})"
            )
            .into());
        }
        Ok(spec)
    }

    /// Fetches each dataset (each month of `months`), printing each outcome:
    /// every outcome, and the error when only one dataset was fetched (it is
    /// then the command's error, as any command's). Of several, each failure
    /// is a line of its own on stderr and the others go on.
    fn fetch_all(
        &self,
        extractor: &Extractor,
        store: &LandingStore,
        specs: &[DatasetSpec],
        months: Option<&[(Year, Month)]>,
    ) -> Result<(Vec<Extracted>, Option<materia_core::Error>), BoxError> {
        let alone = specs.len() == 1 && months.is_none();
        let mut lines = Vec::new();
        let mut alone_error = None;
        for spec in specs {
            let fetches: Vec<Option<(Year, Month)>> = match months {
                None => vec![None],
                Some(months) => months.iter().copied().map(Some).collect(),
            };
            for month in fetches {
                let line = match fetch(extractor, store, spec, month) {
                    Ok(done) => done,
                    Err((url, e)) => {
                        let text = error_text(&e);
                        let line = Extracted::failed(spec, &url, &text);
                        if alone {
                            alone_error = Some(e);
                        } else {
                            let when = month.map(|(y, m)| format!(" {y}-{m}")).unwrap_or_default();
                            let _ = writeln!(
                                io::stderr(),
                                "{ERROR_PREFIX}dataset {}{when}: {text}",
                                spec.name
                            );
                        }
                        line
                    }
                };
                report(&line, self.output.json)?;
                lines.push(line);
            }
        }
        Ok((lines, alone_error))
    }
}

/// One fetch of `spec`: its current release, or that of `month`; a failure
/// with the URL it fetched.
fn fetch(
    extractor: &Extractor,
    store: &LandingStore,
    spec: &DatasetSpec,
    month: Option<(Year, Month)>,
) -> Result<Extracted, (String, materia_core::Error)> {
    match month {
        None => extractor
            .fetch(store, spec)
            .map_err(|e| (spec.url.clone(), e)),
        Some((y, m)) => extractor.fetch_archive(store, spec, y, m).map_err(|e| {
            let url = spec.archive_url(y.get(), m.get());
            (url.unwrap_or_else(|| spec.url.clone()), e)
        }),
    }
}

/// An error's text as the command's error line shows it, without the prefix.
fn error_text(e: &materia_core::Error) -> String {
    let line = crate::error_message(e);
    line.strip_prefix(ERROR_PREFIX).unwrap_or(&line).to_owned()
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
        // Said on stderr, as every error.
        Status::Failed { .. } => {}
        other => writeln!(out, "{other:?}: {}", done.url)?,
    }
    Ok(())
}
