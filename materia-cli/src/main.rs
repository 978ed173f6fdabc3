//! `materia`: the command line over `materia-core`.
//!
//! Exit codes: `0` success (a duplicate put is a success); `1` a check found
//! problems (`verify` found a bad file, `transform` quarantined a file, `mirror`
//! found a conflict or a difference, `restore` refused an object); `2` an error —
//! bad arguments, bad input, I/O — with the reason on stderr. `run` exits with
//! the first failed step's code (124: timed out).

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
mod credentials;
mod ops;
mod query;
mod supervise;

use materia_core::dataset::Config;
use materia_core::extract::{Extracted, Extractor, Status};
use materia_core::landing::{
    Dataset, Etag, LandingStore, Month, NewRelease, PutOutcome, Stats, VerifyReport, Year,
};
#[cfg(feature = "s3")]
use materia_core::mirror::{Mirror, MirrorOptions};
use materia_core::transform::{Model, TransformOptions, TransformReport, transform};
use serde::Serialize;

/// Materia: land, verify and inspect market-data releases on one server.
#[derive(Parser)]
#[command(version, max_term_width = 100)]
struct Cli {
    /// The landing zone's root directory.
    #[arg(
        long,
        global = true,
        env = "LANDING_DIR",
        default_value = "./data/landing"
    )]
    landing_dir: PathBuf,

    /// The published DuckDB lakehouse.
    #[arg(
        long,
        global = true,
        env = "DUCKDB_PATH",
        default_value = "./data/lakehouse.duckdb"
    )]
    duckdb_path: PathBuf,

    /// A TOML file declaring datasets and fetch limits (see the README).
    #[arg(long, global = true, env = "MATERIA_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch datasets' releases over HTTP (or file://) and land them.
    ///
    /// Prints `landed`, `unchanged` (304) or `duplicate` per dataset; with
    /// --archive also `not_published` (404). Example: materia extract --dataset psd,cot
    Extract(ExtractArgs),
    /// Push landed files the bucket lacks (never overwrites, never deletes).
    ///
    /// Example: materia mirror --to s3://materia-raw/landing
    #[cfg(feature = "s3")]
    Mirror {
        /// The bucket prefix, s3://bucket/prefix.
        #[arg(long, env = "MATERIA_MIRROR_URL")]
        to: String,
        /// List the bucket instead of trusting the local record of uploads.
        #[arg(long)]
        full: bool,
        /// List the bucket anyway when the last full push is older than this
        /// (objects lost remotely are uploaded again); `off` never does.
        #[arg(long, env = "MATERIA_MIRROR_FULL_EVERY", default_value = "7d")]
        full_every: String,
        /// Create the bucket first when it is missing (idempotent), and check
        /// it honours conditional writes (else exit 2) and checksums.
        #[arg(long, conflicts_with = "verify")]
        create_bucket: bool,
        /// Only compare: list the bucket and check every object against its local file.
        #[arg(long)]
        verify: bool,
        /// With --verify: compare the content of only N objects, going on from
        /// where the last sampled run stopped (every object over a round of runs).
        #[arg(long, value_name = "N", requires = "verify")]
        sample: Option<usize>,
        /// Requests (uploads, multipart parts) in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Files from this size (MiB) go up as multipart uploads.
        #[arg(long, default_value_t = 64)]
        multipart_threshold_mib: u64,
        /// Multipart part size (MiB, at least 5; R2 needs equal parts).
        #[arg(long, default_value_t = 16)]
        part_size_mib: u64,
        /// Print one JSON object (uploaded, skipped, bytes, conflicts, aborted).
        #[arg(long)]
        json: bool,
    },
    /// Download every object under the prefix that is missing locally.
    ///
    /// Example: materia restore --from s3://materia-raw/landing
    #[cfg(feature = "s3")]
    Restore {
        /// The bucket prefix, s3://bucket/prefix.
        #[arg(long, env = "MATERIA_MIRROR_URL")]
        from: String,
        /// Downloads in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Print one JSON object (downloaded, skipped, bytes, refused, probes).
        #[arg(long)]
        json: bool,
    },
    /// Publish the lakehouse as Parquet files with a manifest per build on a
    /// bucket, for readers beyond this server (see the README's "Publish");
    /// S3 settings as for the mirror. Exit 2 naming the failure; a publish
    /// that lost the race to another is a conflict, nothing lost.
    ///
    /// Example: materia publish --to s3://materia-lake/v1 --keep 7
    #[cfg(feature = "s3")]
    Publish {
        /// The bucket prefix, s3://bucket/prefix.
        #[arg(long, env = "MATERIA_PUBLISH_URL")]
        to: String,
        /// Keep the files of the N newest builds; remove what only older
        /// builds use (default: remove nothing).
        #[arg(long, env = "MATERIA_PUBLISH_KEEP", value_name = "N")]
        keep: Option<usize>,
        /// DuckDB memory_limit while writing Parquet.
        #[arg(long, env = "MATERIA_DUCKDB_MEMORY", default_value = "2GB")]
        memory_limit: String,
        /// Print one JSON object (build, files uploaded and skipped, bytes).
        #[arg(long)]
        json: bool,
    },
    /// Restore the bucket into a temporary directory, check every file, rebuild
    /// the lakehouse from it and compare with the published one; exit 1 naming
    /// each difference. The outcome shows in `materia status`.
    ///
    /// Example: materia drill --from s3://materia-raw/landing
    #[cfg(feature = "s3")]
    Drill {
        /// The bucket prefix, s3://bucket/prefix.
        #[arg(long, env = "MATERIA_MIRROR_URL")]
        from: String,
        /// Where the temporary copy goes (room for the landing zone and a
        /// lakehouse); default: the system's temp directory.
        #[arg(long, env = "MATERIA_DRILL_DIR")]
        work_dir: Option<PathBuf>,
        /// Downloads in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// DuckDB memory_limit for the rebuild.
        #[arg(long, env = "MATERIA_DUCKDB_MEMORY", default_value = "2GB")]
        memory_limit: String,
        /// The directory of your own models the lakehouse is built with.
        #[arg(long, env = "MATERIA_MODELS")]
        models: Option<PathBuf>,
        /// Print one JSON object (restored, tables, differences, ...).
        #[arg(long)]
        json: bool,
    },
    /// Whether each dataset's newest release is within its cadence and the
    /// lakehouse holds what landed; exit 1 naming each stale one.
    ///
    /// Example: materia check --json
    Check {
        /// The datasets expected to have fresh releases, comma-separated
        /// (default: `psd` and the config's datasets; any dataset with landed
        /// files is checked too).
        #[arg(long, value_delimiter = ',', env = "MATERIA_DATASETS")]
        dataset: Vec<String>,
        /// Print one JSON object (datasets, lakehouse).
        #[arg(long)]
        json: bool,
    },
    /// Load new landing files into the lakehouse and publish it atomically.
    ///
    /// Example: materia transform --json
    Transform {
        /// Print one JSON object (releases_loaded, rows_loaded, ...).
        #[arg(long)]
        json: bool,
        /// DuckDB memory_limit for the build.
        #[arg(long, env = "MATERIA_DUCKDB_MEMORY", default_value = "2GB")]
        memory_limit: String,
        /// A directory of your own SQL models (`table` and `audit`, `*.sql`),
        /// run after the built-in ones in dependency order.
        #[arg(long, env = "MATERIA_MODELS")]
        models: Option<PathBuf>,
        /// The DuckDB storage version of the published file: the oldest DuckDB
        /// that must read it (v1.4.0: DuckDB 1.4 and later).
        #[arg(long, env = "MATERIA_DUCKDB_STORAGE_VERSION", default_value = materia_core::transform::STORAGE_VERSION)]
        storage_version: String,
    },
    /// Serve the published lakehouse over HTTP, read-only (see the README's
    /// "Serve"); follows every new publish. Stops on SIGTERM or Ctrl-C.
    ///
    /// Example: materia serve --bind 127.0.0.1:8080
    Serve {
        /// Address to listen on.
        #[arg(long, env = "MATERIA_BIND", default_value = "127.0.0.1:8080")]
        bind: std::net::SocketAddr,
        /// Requests in flight at most; more are answered 503.
        #[arg(long, default_value_t = 64)]
        max_in_flight: usize,
        /// A request's time limit, in seconds, from its arrival: waiting for
        /// a connection, the query and writing the answer (then 503).
        #[arg(long, default_value_t = 10)]
        timeout_secs: u64,
        /// Run clients' SQL at POST /v1/sql: one read-only query (SELECT,
        /// FROM, WITH…; no CREATE, INSERT, COPY, PRAGMA, SET, ATTACH or
        /// several statements), hardened (no files, extensions or SET), at
        /// most 10000 rows.
        #[arg(long)]
        allow_sql: bool,
        /// MiB of answers kept in memory for the current build (0: none).
        #[arg(long, default_value_t = 64)]
        cache_mib: usize,
        /// DuckDB memory_limit of the readers, all queries together, e.g.
        /// 512MB, 1GiB (default: a quarter of RAM, at most 1 GiB).
        #[arg(long, env = "MATERIA_SERVE_MEMORY", value_parser = parse_bytes)]
        memory_limit: Option<u64>,
        /// MiB one answer may take (more: 400 naming limit= or sql).
        #[arg(long, default_value_t = 64)]
        max_answer_mib: usize,
    },
    /// Run SQL read-only against the published lakehouse.
    ///
    /// Example: materia query "SELECT * FROM serving.coffee_balance WHERE country_code = 'WORLD'"
    Query {
        /// The SQL.
        sql: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// One cycle now: each step (extract, transform, check) as a child process with
    /// a timeout; transform is skipped when extract fails. Exits with the first
    /// failed step's code (124: timed out). Refuses while another cycle runs.
    ///
    /// Example: materia run --url file:///srv/psd_coffee_csv.zip --timeout extract=30m
    Run {
        #[command(flatten)]
        cycle: supervise::CycleArgs,
        /// Wait for a running cycle to finish instead of refusing.
        #[arg(long)]
        wait: bool,
        /// Print the steps' JSON lines (the extract result, the transform report, the freshness check).
        #[arg(long)]
        json: bool,
    },
    /// Run cycles on a schedule until SIGTERM/SIGINT (the systemd service).
    ///
    /// A cycle missed while the machine was down runs at start.
    /// Example: materia supervise --schedule 06:00 --timeout extract=30m
    Supervise {
        #[command(flatten)]
        cycle: supervise::CycleArgs,
        /// `HH:MM` (daily, UTC) or `every DURATION` (e.g. `every 6h`).
        #[arg(long, env = "MATERIA_SCHEDULE", default_value = "06:00")]
        schedule: String,
    },
    /// Send an alert to the webhook (MATERIA_ALERT_URL): a test message, or
    /// that a systemd unit failed (the units' OnFailure= backstop).
    ///
    /// Example: materia notify --test
    #[command(group(clap::ArgGroup::new("what").required(true).args(["test", "failed_unit"])))]
    Notify {
        /// Send a test message.
        #[arg(long)]
        test: bool,
        /// Say that this systemd unit failed (materia-alert@.service passes %i).
        #[arg(long, value_name = "UNIT")]
        failed_unit: Option<String>,
        /// The webhook.
        #[arg(long, env = "MATERIA_ALERT_URL")]
        alert_url: String,
        /// json, ntfy or slack (default: from the URL).
        #[arg(long, env = "MATERIA_ALERT_FORMAT")]
        alert_format: Option<String>,
    },
    /// The last run of each step, the landing zone and the lakehouse's age.
    ///
    /// Example: materia status --json
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Land a CSV file (plain or gzipped) as a release.
    ///
    /// Example: materia land --dataset psd --etag '"5e2a9f"' psd_coffee.csv
    Land(LandArgs),
    /// List landed files, ordered by dataset, year and month.
    ///
    /// Example: materia ls --dataset psd
    Ls {
        /// Only this dataset.
        #[arg(long)]
        dataset: Option<Dataset>,
        /// Print JSON (an array of entries).
        #[arg(long)]
        json: bool,
    },
    /// Read every landed file end to end and check it; exit 1 naming each bad one.
    ///
    /// Example: materia verify
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Count landed files and bytes.
    ///
    /// Example: materia stats --json
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// How `materia query` prints rows.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    /// Aligned columns.
    Table,
    /// RFC 4180 CSV with a header line.
    Csv,
    /// One JSON array of objects.
    Json,
}

#[derive(Args)]
struct ExtractArgs {
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
    /// Print one JSON object per fetch (one line each).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct LandArgs {
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
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
    /// The CSV file to land (plain or gzipped), or `-` for standard input.
    file: PathBuf,
}

fn main() -> ExitCode {
    restrict_umask();
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // Each cause once: an error's text often carries its source's.
            let mut msg = format!("materia: error: {err}");
            let mut source = err.source();
            while let Some(s) = source {
                let text = s.to_string();
                if !msg.contains(&text) {
                    msg.push_str(&format!(": {text}"));
                }
                source = s.source();
            }
            // Never panic on a closed or full stderr: the exit code still tells.
            let _ = writeln!(io::stderr(), "{msg}");
            ExitCode::from(2)
        }
    }
}

impl Command {
    /// Whether the command only reads the landing zone, so never creates it
    /// (a mistyped path is an error naming it; a push must not back up
    /// nothing, successfully).
    fn only_reads_landing(&self) -> bool {
        match self {
            Command::Ls { .. }
            | Command::Verify { .. }
            | Command::Stats { .. }
            | Command::Status { .. }
            | Command::Check { .. } => true,
            #[cfg(feature = "s3")]
            Command::Mirror { .. } => true,
            _ => false,
        }
    }
}

/// Adds `027` to the process umask (keeping anything stricter): every file
/// created from here on — DuckDB's own too, a WAL or spill file left by an
/// interrupted transform — is at most 0640, every directory 0750.
fn restrict_umask() {
    use nix::sys::stat::{Mode, umask};
    let old = umask(Mode::from_bits_truncate(0o027));
    umask(old | Mode::from_bits_truncate(0o027));
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MATERIA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .init();
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn is_broken_pipe(err: &BoxError) -> bool {
    err.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn run(cli: Cli) -> Result<ExitCode, BoxError> {
    if let Command::Query { sql, format } = &cli.command {
        return query::run(&cli.duckdb_path, sql, *format);
    }
    #[cfg(feature = "s3")]
    if let Command::Publish {
        to,
        keep,
        memory_limit,
        json,
    } = &cli.command
    {
        let mut options = materia_core::publish::PublishOptions::new(
            &cli.duckdb_path,
            credentials::bucket_config(to)?,
        );
        options.keep = *keep;
        options.memory_limit.clone_from(memory_limit);
        let report = materia_core::publish::publish(&options)?;
        if *json {
            print_json(&report)?;
        } else if report.unchanged {
            writeln!(
                io::stdout(),
                "build {} is already the latest at {to}: nothing written",
                report.build
            )?;
        } else {
            writeln!(
                io::stdout(),
                "published build {}: {} table(s), {} file(s) ({} uploaded, {} already there), {} bytes uploaded; latest.json -> {}",
                report.build,
                report.tables,
                report.files,
                report.uploaded,
                report.skipped,
                report.bytes_uploaded,
                report.manifest
            )?;
        }
        if report.replaced > 0 {
            writeln!(
                io::stderr(),
                "replaced {} file(s) the bucket held broken (another size or SHA-256 than their name's)",
                report.replaced
            )?;
        }
        if report.removed > 0 {
            writeln!(
                io::stderr(),
                "removed {} object(s) of older builds",
                report.removed
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Serve {
        bind,
        max_in_flight,
        timeout_secs,
        allow_sql,
        cache_mib,
        memory_limit,
        max_answer_mib,
    } = &cli.command
    {
        let mut options = materia_core::serve::ServeOptions::new(&cli.duckdb_path);
        options.bind = *bind;
        options.max_in_flight = *max_in_flight;
        options.timeout = std::time::Duration::from_secs(*timeout_secs);
        options.allow_sql = *allow_sql;
        options.cache_bytes = cache_mib.saturating_mul(1 << 20);
        if let Some(bytes) = memory_limit {
            options.memory_limit_bytes = *bytes;
        }
        options.max_answer_bytes = max_answer_mib.saturating_mul(1 << 20).max(1);
        return serve(&options);
    }
    if let Command::Notify {
        alert_url,
        alert_format,
        failed_unit,
        ..
    } = &cli.command
    {
        return supervise::notify(alert_url, alert_format.as_deref(), failed_unit.as_deref());
    }
    let store = if cli.command.only_reads_landing() {
        LandingStore::open_existing(&cli.landing_dir)?
    } else {
        LandingStore::open(&cli.landing_dir)?
    };
    let paths = supervise::Paths {
        landing_dir: &cli.landing_dir,
        duckdb_path: &cli.duckdb_path,
        config: cli.config.as_deref(),
    };
    match cli.command {
        Command::Query { .. } | Command::Notify { .. } | Command::Serve { .. } => {
            unreachable!("handled above")
        }
        #[cfg(feature = "s3")]
        Command::Publish { .. } => {
            unreachable!("handled above")
        }
        Command::Transform {
            json,
            memory_limit,
            models,
            storage_version,
        } => {
            let mut options = TransformOptions::new(&cli.duckdb_path);
            options.memory_limit = memory_limit;
            options.storage_version = storage_version;
            options.tables = Config::load_or_default(cli.config.as_deref())?.tables();
            if let Some(dir) = models {
                options.models = Model::from_dir(&dir)?;
            }
            let report = transform(&store, &options)?;
            print_transform(&report, json)?;
            // Published, but files were quarantined: a check found problems.
            Ok(if report.rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Run { cycle, wait, json } => supervise::run_once(&paths, &cycle, json, wait),
        Command::Supervise { cycle, schedule } => supervise::supervise(&paths, &cycle, &schedule),
        Command::Status { json } => supervise::status(&paths, &store, json),
        Command::Check { dataset, json } => ops::freshness(
            &store,
            cli.config.as_deref(),
            dataset,
            &cli.duckdb_path,
            json,
        ),
        #[cfg(feature = "s3")]
        Command::Drill {
            from,
            work_dir,
            concurrency,
            memory_limit,
            models,
            json,
        } => {
            let mirror = MirrorOptions {
                concurrency,
                progress: io::stderr().is_terminal(),
                ..MirrorOptions::new(credentials::bucket_config(from)?)
            };
            let mut options = materia_core::drill::DrillOptions::new(&cli.duckdb_path);
            options.memory_limit = memory_limit;
            options.tables = Config::load_or_default(cli.config.as_deref())?.tables();
            if let Some(dir) = models {
                options.models = Model::from_dir(&dir)?;
            }
            if let Some(dir) = work_dir {
                options.work_dir = dir;
            }
            ops::drill(&store, mirror, &options, json)
        }
        Command::Extract(args) => extract(&store, cli.config.as_deref(), args),
        Command::Land(args) => land(store, cli.config.as_deref(), args),
        #[cfg(feature = "s3")]
        Command::Mirror {
            to,
            full,
            full_every,
            create_bucket,
            verify,
            sample,
            concurrency,
            multipart_threshold_mib,
            part_size_mib,
            json,
        } => mirror(
            &store,
            MirrorOptions {
                concurrency,
                multipart_threshold: multipart_threshold_mib << 20,
                part_size: part_size_mib << 20,
                progress: io::stderr().is_terminal(),
                full_every: match full_every.as_str() {
                    "off" => None,
                    every => Some(
                        materia_core::supervise::parse_duration(every)
                            .map_err(|e| format!("--full-every: {e}"))?,
                    ),
                },
                ..MirrorOptions::new(credentials::bucket_config(to)?)
            },
            full,
            create_bucket,
            verify.then_some(sample),
            json,
        ),
        #[cfg(feature = "s3")]
        Command::Restore {
            from,
            concurrency,
            json,
        } => {
            let options = MirrorOptions {
                concurrency,
                progress: io::stderr().is_terminal(),
                ..MirrorOptions::new(credentials::bucket_config(from)?)
            };
            let report = Mirror::new(options)?.restore(&store)?;
            if json {
                print_json(&report)?;
            } else {
                for r in &report.refused {
                    writeln!(io::stdout(), "REFUSED {}: {}", r.object, r.reason)?;
                }
                writeln!(
                    io::stdout(),
                    "downloaded {} file(s), {} bytes; {} already here",
                    report.downloaded,
                    report.bytes,
                    report.skipped
                )?;
                if report.probes > 0 {
                    writeln!(
                        io::stdout(),
                        "skipped {} probe object(s) an older `mirror --create-bucket` left",
                        report.probes
                    )?;
                }
            }
            Ok(if report.refused.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Ls { dataset, json } => {
            let entries: Vec<_> = store
                .list()
                .into_iter()
                .filter(|e| dataset.as_ref().is_none_or(|d| &e.key.dataset == d))
                .collect();
            if json {
                print_json(&entries)?;
            } else {
                let mut out = io::stdout().lock();
                for e in &entries {
                    let landed = e
                        .release
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |r| r.landed_at.to_string());
                    writeln!(out, "{}\t{}\t{landed}", e.key, e.file_bytes)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { json } => {
            let report = store.verify()?;
            if json {
                print_json(&report)?;
            } else {
                print_verify(&report)?;
            }
            Ok(if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Stats { json } => {
            let stats = store.stats();
            if json {
                print_json(&stats)?;
            } else {
                print_stats(&stats)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn extract(
    store: &LandingStore,
    config: Option<&std::path::Path>,
    args: ExtractArgs,
) -> Result<ExitCode, BoxError> {
    let config = Config::load_or_default(config)?;
    let names = if args.dataset.is_empty() {
        config.fetch.clone()
    } else {
        args.dataset.clone()
    };
    if names.len() > 1 && args.url.is_some() {
        return Err("--url fetches one dataset: name one with --dataset".into());
    }
    let specs = names
        .iter()
        .map(|name| config.dataset(name).cloned())
        .collect::<Result<Vec<_>, _>>()?;
    let months = args.archive.as_deref().map(parse_month_range).transpose()?;
    let extractor =
        Extractor::new(config.limits.clone())?.with_progress(io::stderr().is_terminal());
    let mut failed = 0;
    for mut spec in specs {
        let name = spec.name.to_string();
        let env_name = format!("MATERIA_{}_URL", name.to_uppercase().replace('-', "_"));
        if let Some(url) = args.url.clone().or_else(|| std::env::var(&env_name).ok()) {
            spec.url = url;
        }
        let Some(months) = &months else {
            match extractor.fetch(store, &spec) {
                Ok(done) => report_extracted(&done, args.json)?,
                Err(e) if names.len() > 1 => {
                    failed += 1;
                    let _ = writeln!(io::stderr(), "materia: error: dataset {name}: {e}");
                }
                Err(e) => return Err(e.into()),
            }
            continue;
        };
        for &(year, month) in months {
            match extractor.fetch_archive(store, &spec, year, month) {
                Ok(done) => report_extracted(&done, args.json)?,
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

fn report_extracted(done: &Extracted, json: bool) -> Result<(), BoxError> {
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

fn land(
    store: LandingStore,
    config: Option<&std::path::Path>,
    args: LandArgs,
) -> Result<ExitCode, BoxError> {
    let mut store = store.with_compression(args.level);
    if let Some(threads) = args.threads {
        store = store.with_threads(threads as usize);
    }
    // What extract would check: CSV text, and a declared dataset's header.
    let config = Config::load_or_default(config)?;
    let header = config
        .dataset(args.dataset.as_str())
        .map(|spec| spec.header.clone())
        .unwrap_or_default();
    let etag = match &args.etag {
        Some(value) => Some(Etag::from_header(value.as_bytes()).ok_or("--etag is empty")?),
        None => None,
    };
    let release = match (args.year, args.month) {
        (Some(year), Some(month)) => NewRelease::new(args.dataset, year, month)?,
        _ => NewRelease::this_month(args.dataset),
    };
    let release = release
        .with_etag(etag)
        .with_source(args.file.display().to_string())
        .with_csv_header(header);
    let outcome = if args.file.as_os_str() == "-" {
        store.put(release, io::stdin().lock())?
    } else {
        let file = std::fs::File::open(&args.file)
            .map_err(|e| format!("cannot open {}: {e}", args.file.display()))?;
        store.put(release, file)?
    };
    #[derive(Serialize)]
    #[serde(tag = "outcome", rename_all = "snake_case")]
    enum Report<'a> {
        Landed {
            #[serde(flatten)]
            release: &'a materia_core::landing::Release,
            path: PathBuf,
        },
        Duplicate {
            existing: &'a materia_core::landing::LandingKey,
            of: materia_core::landing::DuplicateOf,
        },
    }
    let report = match &outcome {
        PutOutcome::Landed(r) => Report::Landed {
            release: r,
            path: store.path_of(&r.key),
        },
        PutOutcome::Duplicate { existing, of } => Report::Duplicate { existing, of: *of },
    };
    if args.json {
        print_json(&report)?;
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

#[cfg(feature = "s3")]
fn mirror(
    store: &LandingStore,
    options: MirrorOptions,
    full: bool,
    create_bucket: bool,
    verify: Option<Option<usize>>,
    json: bool,
) -> Result<ExitCode, BoxError> {
    let mirror = Mirror::new(options)?;
    if create_bucket {
        let b = mirror.create_bucket()?;
        writeln!(
            io::stderr(),
            "bucket {}: {}; conditional writes honoured; checksums {}",
            b.bucket,
            if b.created {
                "created"
            } else {
                "already there"
            },
            if b.checksum_verified {
                "verified by the server"
            } else {
                "NOT verified by this server (R2 and S3 verify them)"
            }
        )?;
    }
    if let Some(sample) = verify {
        let report = match sample {
            Some(n) => mirror.verify_sample(store, n)?,
            None => mirror.verify(store)?,
        };
        if json {
            print_json(&report)?;
        } else {
            for key in &report.missing {
                writeln!(io::stdout(), "MISSING {key}")?;
            }
            for key in &report.different {
                writeln!(io::stdout(), "DIFFERENT {key}")?;
            }
            writeln!(
                io::stdout(),
                "{} object(s) checked, {} missing, {} different",
                report.checked,
                report.missing.len(),
                report.different.len()
            )?;
            if let Some(at) = report.round_completed_at {
                writeln!(io::stdout(), "last round over every object completed {at}")?;
            }
        }
        return Ok(if report.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let report = mirror.push(store, full)?;
    if json {
        print_json(&report)?;
    } else {
        for key in &report.conflicts {
            writeln!(
                io::stdout(),
                "CONFLICT {key}: the bucket holds other content; left alone"
            )?;
        }
        if report.aborted > 0 {
            writeln!(
                io::stdout(),
                "aborted {} multipart upload(s) left by an interrupted run",
                report.aborted
            )?;
        }
        writeln!(
            io::stdout(),
            "uploaded {} file(s), {} bytes; {} already there",
            report.uploaded,
            report.bytes,
            report.skipped
        )?;
    }
    Ok(if report.conflicts.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_transform(report: &TransformReport, json: bool) -> Result<(), BoxError> {
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
    for r in &report.rejected {
        writeln!(out, "QUARANTINED {}: {}", r.landing_key, r.reason)?;
    }
    for w in &report.warnings {
        writeln!(out, "warning: audit {:?}: {} rows", w.audit, w.rows)?;
    }
    Ok(())
}

/// One compact JSON object on its own line (JSON lines, for multi-step output).
fn print_json_line(value: &impl Serialize) -> Result<(), BoxError> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    io::stdout().lock().write_all(&line)?;
    Ok(())
}

fn print_json(value: &impl Serialize) -> Result<(), BoxError> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    io::stdout().lock().write_all(&bytes)?;
    Ok(())
}

fn print_verify(report: &VerifyReport) -> Result<(), BoxError> {
    let mut out = io::stdout().lock();
    for bad in &report.bad {
        writeln!(out, "BAD {}: {}", bad.path.display(), bad.problem)?;
    }
    for key in &report.unrecorded {
        writeln!(out, "unrecorded (gzip ok, no ledger record) {key}")?;
    }
    for stray in &report.strays {
        writeln!(
            out,
            "stray (not a landing key, left alone) {}",
            stray.display()
        )?;
    }
    writeln!(
        out,
        "{} file(s) checked, {} bytes read, {} bad",
        report.checked,
        report.bytes,
        report.bad.len()
    )?;
    Ok(())
}

fn print_stats(stats: &Stats) -> Result<(), BoxError> {
    let mut out = io::stdout().lock();
    for (name, ds) in &stats.datasets {
        writeln!(out, "{name}\t{} file(s)\t{} bytes", ds.files, ds.bytes)?;
    }
    writeln!(
        out,
        "total\t{} file(s)\t{} bytes ({} bytes uncompressed)",
        stats.files, stats.bytes, stats.content_bytes
    )?;
    Ok(())
}

/// A size as DuckDB writes it: a number and a unit (`B`, `KB`/`MB`/`GB`
/// powers of 1000, `KiB`/`MiB`/`GiB` powers of 1024).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_bytes: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "{text:?}: give a size with its unit, e.g. 512MB or 1GiB"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_bytes))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{text:?}: give a size above zero, e.g. 512MB or 1GiB"))
}

/// `materia serve`: binds, says where, serves until SIGTERM or Ctrl-C.
fn serve(options: &materia_core::serve::ServeOptions) -> Result<ExitCode, BoxError> {
    let server = materia_core::serve::Server::bind(options)?;
    let addr = server.local_addr()?;
    tracing::info!(lakehouse = %options.duckdb_path.display(), "serving on http://{addr}");
    // The address, for whoever started us (port 0 picks one).
    writeln!(io::stdout(), "listening on http://{addr}")?;
    io::stdout().flush()?;
    server.run(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        std::future::poll_fn(|cx| {
            if term.poll_recv(cx).is_ready() || int.poll_recv(cx).is_ready() {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_read_as_duckdb_writes_them() {
        assert_eq!(parse_bytes("512MB"), Ok(512_000_000));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("64 MiB"), Ok(64 << 20));
        for bad in ["512", "0MB", "1TB", "MB", "-1GB"] {
            let e = parse_bytes(bad).expect_err(bad);
            assert!(e.contains("e.g. 512MB"), "{bad}: {e}");
        }
    }
}
