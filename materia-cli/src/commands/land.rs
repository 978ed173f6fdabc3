//! `materia land`: a CSV file landed as a release.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use materia_core::landing::{
    Dataset, DuplicateOf, Etag, LandingKey, LandingStore, NewRelease, PutOutcome, Release,
};
use serde::Serialize;

use crate::BoxError;
use crate::args::{ConfigFile, Globals, Landing, NewDataset, Output};
use crate::output::print_json;

/// Land a CSV file (plain or gzipped) as a release.
///
/// Checked as extract checks it: CSV text, and a declared dataset's header.
/// A dataset nobody declared (built in or in the config) is refused unless
/// --new-dataset.
///
/// Example: materia land --dataset psd --etag '"5e2a9f"' psd_coffee.csv
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Dataset name: 1-64 characters of a-z 0-9 _ -.
    #[arg(long)]
    dataset: Dataset,
    /// The release's ETag, as an HTTP ETag header value (`"abc"`, `W/"abc"` or a
    /// bare token). Unsafe characters are mapped to `x-{sha256}`. Without it the
    /// file is addressed by the SHA-256 of its content.
    #[arg(long)]
    etag: Option<String>,
    /// Year to land under (default: the current UTC year).
    #[arg(long, requires = "month")]
    year: Option<i64>,
    /// Month to land under, 1-12 (default: the current UTC month).
    #[arg(long, requires = "year")]
    month: Option<i64>,
    /// Gzip level for plain input, 0-9.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9))]
    level: u32,
    /// Compression threads (default: one per core; at most 4 are used).
    /// Memory stays bounded (at most 8 chunks of 2 MiB in flight).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    landing: Landing,
    #[command(flatten)]
    config: ConfigFile,
    #[command(flatten)]
    new_dataset: NewDataset,
    /// The CSV file to land (plain or gzipped), or `-` for standard input.
    file: PathBuf,
}

/// What `--json` prints.
#[derive(Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum Report<'a> {
    Landed {
        #[serde(flatten)]
        release: &'a Release,
        path: PathBuf,
    },
    Duplicate {
        existing: &'a LandingKey,
        of: DuplicateOf,
    },
}

impl Args {
    /// Lands the file; a duplicate is a success.
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let release = self.release(globals)?;
        let mut store = self.landing.open(globals)?.with_compression(self.level);
        if let Some(threads) = self.threads {
            store = store.with_threads(threads as usize);
        }
        let outcome = if self.file.as_os_str() == "-" {
            store.put(release, io::stdin().lock())?
        } else {
            let file = std::fs::File::open(&self.file)
                .map_err(|e| format!("cannot open {}: {e}", self.file.display()))?;
            store.put(release, file)?
        };
        if self.output.json {
            print_json(&report(&store, &outcome))?;
        } else {
            match &outcome {
                PutOutcome::Landed(r) => writeln!(
                    io::stdout(),
                    "landed {} ({} bytes of content, {} bytes stored)",
                    r.key,
                    r.content_bytes,
                    r.file_bytes
                )?,
                PutOutcome::Duplicate { existing, of } => writeln!(
                    io::stdout(),
                    "duplicate: {existing} already holds this {of}; nothing landed"
                )?,
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    /// The release to land, with what extract would check: a declared
    /// dataset (or `--new-dataset`), CSV text, and a declared dataset's header.
    fn release(&self, globals: &Globals) -> Result<NewRelease, BoxError> {
        let config = self.config.load(globals)?;
        self.new_dataset.check(&config, self.dataset.as_str())?;
        let header = config
            .dataset(self.dataset.as_str())
            .map(|spec| spec.header.clone())
            .unwrap_or_default();
        let etag = match &self.etag {
            Some(value) => Some(Etag::from_header(value.as_bytes()).ok_or("--etag is empty")?),
            None => None,
        };
        let release = match (self.year, self.month) {
            (Some(year), Some(month)) => NewRelease::new(self.dataset.clone(), year, month)?,
            _ => NewRelease::this_month(self.dataset.clone()),
        };
        Ok(release
            .with_etag(etag)
            .with_source(self.file.display().to_string())
            .with_csv_header(header))
    }
}

fn report<'a>(store: &LandingStore, outcome: &'a PutOutcome) -> Report<'a> {
    match outcome {
        PutOutcome::Landed(r) => Report::Landed {
            release: r,
            path: store.path_of(&r.key),
        },
        PutOutcome::Duplicate { existing, of } => Report::Duplicate { existing, of: *of },
    }
}
