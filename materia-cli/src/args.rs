//! The flags several commands share, each group declared once and flattened
//! (`#[command(flatten)]`) into the commands that use it, so a command lists
//! only the flags it uses.
//!
//! Where the data lives (`--landing-dir`, `--duckdb-path`, `--config`) is
//! [`Globals`]: given before the command's name (`materia --landing-dir DIR
//! ls`) or by the environment (`LANDING_DIR`, `DUCKDB_PATH`, `MATERIA_CONFIG`)
//! for every command, and after its name to the commands that use it; there it
//! wins over the value before the name.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use materia_core::dataset::Config;
use materia_core::landing::LandingStore;
#[cfg(feature = "s3")]
use materia_core::mirror::MirrorOptions;
use materia_core::transform::Model;

use crate::BoxError;

/// The places every command may read, before the command's name or from
/// the environment.
#[derive(clap::Args)]
pub(crate) struct Globals {
    /// The landing zone's root directory.
    #[arg(
        long,
        env = "LANDING_DIR",
        default_value = "./data/landing",
        value_name = "DIR"
    )]
    landing_dir: PathBuf,

    /// The published DuckDB lakehouse.
    #[arg(
        long,
        env = "DUCKDB_PATH",
        default_value = "./data/lakehouse.duckdb",
        value_name = "FILE"
    )]
    duckdb_path: PathBuf,

    /// A TOML file declaring datasets and fetch limits (see docs/reference.md).
    #[arg(long, env = "MATERIA_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `--landing-dir`: a command that reads or writes the landing zone.
#[derive(clap::Args)]
pub(crate) struct Landing {
    /// The landing zone's root directory (default: $LANDING_DIR, else ./data/landing).
    #[arg(id = "landing_dir", long = "landing-dir", value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl Landing {
    /// The landing zone's root directory.
    pub(crate) fn dir<'a>(&'a self, globals: &'a Globals) -> &'a Path {
        self.dir.as_deref().unwrap_or(&globals.landing_dir)
    }

    /// Opens the landing zone, creating it when missing.
    pub(crate) fn open(&self, globals: &Globals) -> Result<LandingStore, BoxError> {
        Ok(LandingStore::open(self.dir(globals))?)
    }

    /// Opens the landing zone of a command that only reads it: never creates it
    /// (a mistyped path is an error naming it; a push must not back up nothing,
    /// successfully).
    pub(crate) fn open_existing(&self, globals: &Globals) -> Result<LandingStore, BoxError> {
        Ok(LandingStore::open_existing(self.dir(globals))?)
    }
}

/// `--duckdb-path`: a command that builds or reads the lakehouse.
#[derive(clap::Args)]
pub(crate) struct Lakehouse {
    /// The published DuckDB lakehouse (default: $DUCKDB_PATH, else ./data/lakehouse.duckdb).
    #[arg(id = "duckdb_path", long = "duckdb-path", value_name = "FILE")]
    path: Option<PathBuf>,
}

impl Lakehouse {
    /// The lakehouse file.
    pub(crate) fn path<'a>(&'a self, globals: &'a Globals) -> &'a Path {
        self.path.as_deref().unwrap_or(&globals.duckdb_path)
    }
}

/// `--config`: a command that reads the dataset declarations.
#[derive(clap::Args)]
pub(crate) struct ConfigFile {
    /// A TOML file declaring datasets and fetch limits, see docs/reference.md
    /// (default: $MATERIA_CONFIG, else the built-in datasets).
    #[arg(id = "config", long = "config", value_name = "FILE")]
    path: Option<PathBuf>,
}

impl ConfigFile {
    /// The config file, when one is given.
    pub(crate) fn path<'a>(&'a self, globals: &'a Globals) -> Option<&'a Path> {
        self.path.as_deref().or(globals.config.as_deref())
    }

    /// The declarations: the file's, or the built-in ones without a file.
    pub(crate) fn load(&self, globals: &Globals) -> Result<Config, BoxError> {
        Ok(Config::load_or_default(self.path(globals))?)
    }
}

/// `--new-dataset`: a command that lands a dataset (`land`, `extract`).
#[derive(clap::Args)]
pub(crate) struct NewDataset {
    /// Accept a dataset nobody declared (neither built in nor in the config
    /// file): without it such a name is refused, as the typo it usually is.
    #[arg(long)]
    new_dataset: bool,
}

impl NewDataset {
    /// Refuses `name` when nobody declared it, unless `--new-dataset` was given.
    pub(crate) fn check(&self, config: &Config, name: &str) -> Result<(), BoxError> {
        if !self.new_dataset {
            config.check_declared(name)?;
        }
        Ok(())
    }
}

/// The three places, for a command that builds or checks the lakehouse from
/// the landing zone (or runs the steps that do).
#[derive(clap::Args)]
pub(crate) struct Places {
    #[command(flatten)]
    pub landing: Landing,
    #[command(flatten)]
    pub lakehouse: Lakehouse,
    #[command(flatten)]
    pub config: ConfigFile,
}

/// `--json`.
#[derive(clap::Args)]
pub(crate) struct Output {
    /// Print JSON instead of text (the command's description names its fields).
    #[arg(long)]
    pub json: bool,
}

/// `--memory-limit` of a command that runs DuckDB over the whole lakehouse.
#[derive(clap::Args)]
pub(crate) struct DuckdbMemory {
    /// DuckDB's memory_limit for the build (or the rebuild, or writing Parquet).
    #[arg(
        long = "memory-limit",
        env = "MATERIA_DUCKDB_MEMORY",
        default_value = "2GB"
    )]
    pub memory_limit: String,
}

/// `--concurrency` of a command that talks to the bucket.
#[cfg(feature = "s3")]
#[derive(clap::Args)]
pub(crate) struct Concurrency {
    /// Requests to the bucket in flight at once (uploads, downloads, multipart parts).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

#[cfg(feature = "s3")]
impl Concurrency {
    /// The bucket at `url` (S3 settings from the environment and the `r2`
    /// credential), this many requests at once, with a progress bar on a
    /// terminal.
    pub(crate) fn bucket(&self, url: &str) -> Result<MirrorOptions, BoxError> {
        Ok(MirrorOptions {
            concurrency: self.concurrency,
            progress: std::io::stderr().is_terminal(),
            ..MirrorOptions::new(crate::credentials::bucket_config(url)?)
        })
    }
}

/// The bucket URL of `flag` (`--to`, `--from`), given or from the variable
/// `env`: missing or blank is an error naming both, before anything is done.
#[cfg(feature = "s3")]
pub(crate) fn bucket_url<'a>(
    value: Option<&'a str>,
    flag: &str,
    env: &str,
) -> Result<&'a str, BoxError> {
    match value {
        Some(url) if !url.trim().is_empty() => Ok(url),
        _ => Err(format!(
            "no bucket URL: pass {flag} s3://bucket/prefix or set {env} \
             (in /etc/materia/materia.env for the service)"
        )
        .into()),
    }
}

/// `--models` of a command that builds the lakehouse.
#[derive(clap::Args)]
pub(crate) struct Models {
    /// A directory of your own SQL models (`table`, `view` and `audit`, `*.sql`), run
    /// after the built-in ones in dependency order.
    #[arg(
        id = "models",
        long = "models",
        env = "MATERIA_MODELS",
        value_name = "DIR"
    )]
    dir: Option<PathBuf>,
}

impl Models {
    /// The directory, when one is given.
    pub(crate) fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The models in the directory, when one is given.
    pub(crate) fn load(&self) -> Result<Option<Vec<Model>>, BoxError> {
        let Some(dir) = self.dir.as_deref() else {
            return Ok(None);
        };
        if !dir.is_dir() {
            return Err(format!(
                "models directory {}: no such directory: set --models (or MATERIA_MODELS) to \
                 the directory of your *.sql models",
                dir.display()
            )
            .into());
        }
        Ok(Some(Model::from_dir(dir)?))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::{ConfigFile, Globals, Landing};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        globals: Globals,
        #[command(subcommand)]
        command: Command,
    }

    #[derive(clap::Subcommand)]
    enum Command {
        Ls {
            #[command(flatten)]
            landing: Landing,
            #[command(flatten)]
            config: ConfigFile,
        },
    }

    /// The landing dir and the config `materia ARGS` resolves to.
    fn places(args: &[&str]) -> (String, Option<String>) {
        let cli = Cli::try_parse_from(args).expect("parses");
        let Command::Ls { landing, config } = &cli.command;
        let text = |p: &Path| p.display().to_string();
        (
            text(landing.dir(&cli.globals)),
            config.path(&cli.globals).map(text),
        )
    }

    #[test]
    fn a_place_after_the_command_wins_over_one_before_it() {
        assert_eq!(
            places(&[
                "materia",
                "--landing-dir",
                "/a",
                "ls",
                "--landing-dir",
                "/b"
            ]),
            ("/b".to_owned(), None)
        );
        assert_eq!(
            places(&["materia", "--landing-dir", "/a", "--config", "c", "ls"]),
            ("/a".to_owned(), Some("c".to_owned()))
        );
        assert_eq!(
            places(&["materia", "--config", "c", "ls", "--config", "d"]).1,
            Some("d".to_owned())
        );
    }
}
