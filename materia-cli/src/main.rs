//! `materia`: the command line over `materia-core`. Each command is a module
//! of [`commands`]; the flags several share are in [`args`].
//!
//! Exit codes:
//! - `0`: success — `duplicate`, `unchanged` and `not_published` are successes;
//!   so are `--help`, `--version` and a reader that closed the output early
//!   (a broken pipe).
//! - `1`: a check found problems — `verify` a bad file, `transform` quarantined
//!   a file, `mirror` a conflict (or with `--verify` a difference), `restore`
//!   refused an object, `check` a stale dataset or lakehouse, `drill` a
//!   difference.
//! - `2`: an error, with the reason on stderr — bad arguments, bad input, I/O,
//!   a failed request, another cycle running; `extract` of several datasets
//!   exits 2 when any failed (the others are still fetched).
//! - `materia run` exits with its first failed step's code: the step's own,
//!   124 timed out, 128 + N killed by signal N, 130 interrupted, 127 could not
//!   be started.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

mod args;
mod commands;
mod credentials;
mod cycle;
mod output;

use commands::Command;

/// Materia: land, verify and inspect market-data releases on one server.
#[derive(clap::Parser)]
#[command(name = "materia", version, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    globals: args::Globals,

    #[command(subcommand)]
    command: Command,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    restrict_umask();
    let no_color = no_color(std::env::var_os("NO_COLOR").as_deref());
    let cli = parse(no_color);
    init_tracing(!no_color && io::stderr().is_terminal());
    match run(cli) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // Never panic on a closed or full stderr: the exit code still tells.
            let _ = writeln!(io::stderr(), "{}", error_message(&*err));
            ExitCode::from(2)
        }
    }
}

/// Runs the command: one arm each.
fn run(cli: Cli) -> Result<ExitCode, BoxError> {
    let g = &cli.globals;
    match cli.command {
        Command::Init(args) => args.exec(),
        Command::Extract(args) => args.exec(g),
        Command::Land(args) => args.exec(g),
        Command::Transform(args) => args.exec(g),
        Command::Query(args) => args.exec(g),
        Command::Serve(args) => args.exec(g),
        #[cfg(feature = "s3")]
        Command::Publish(args) => args.exec(g),
        #[cfg(feature = "s3")]
        Command::Mirror(args) => args.exec(g),
        #[cfg(feature = "s3")]
        Command::Restore(args) => args.exec(g),
        #[cfg(feature = "s3")]
        Command::Drill(args) => args.exec(g),
        Command::Check(args) => args.exec(g),
        Command::Run(args) => args.exec(g),
        Command::Supervise(args) => args.exec(g),
        Command::Status(args) => args.exec(g),
        Command::Notify(args) => args.exec(),
        Command::Ls(args) => args.exec(g),
        Command::Verify(args) => args.exec(g),
        Command::Stats(args) => args.exec(g),
    }
}

/// `materia: error: ` and the error's chain, each cause once: an error's text
/// often carries its source's.
fn error_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = format!("materia: error: {err}");
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(&format!(": {text}"));
        }
        source = s.source();
    }
    msg
}

fn is_broken_pipe(err: &BoxError) -> bool {
    err.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// Adds `027` to the process umask (keeping anything stricter): every file
/// created from here on — DuckDB's own too, a WAL or spill file left by an
/// interrupted transform — is at most 0640, every directory 0750.
fn restrict_umask() {
    use nix::sys::stat::{Mode, umask};
    let old = umask(Mode::from_bits_truncate(0o027));
    umask(old | Mode::from_bits_truncate(0o027));
}

/// Whether the `NO_COLOR` value asks for no colour: set and not empty
/// (<https://no-color.org>). Then nothing is coloured — logs, clap's help and
/// errors — even on a terminal; otherwise colour is only for a terminal.
fn no_color(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty())
}

/// The command line, clap's help and errors coloured only when allowed.
fn parse(no_color: bool) -> Cli {
    let color = if no_color {
        clap::ColorChoice::Never
    } else {
        clap::ColorChoice::Auto
    };
    let matches = Cli::command().color(color).get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Logs to stderr, at `MATERIA_LOG`'s level (default `info`), in colour
/// when `ansi` (a terminal, and no `NO_COLOR`).
fn init_tracing(ansi: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MATERIA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(ansi)
        .without_time()
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Cli;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// clap checks duplicate ids only with debug assertions, and the tests
    /// run in release: two flags with one id read each other's value (once
    /// `transform --config c.toml` published the lakehouse over `c.toml`).
    #[test]
    fn no_two_flags_of_a_command_share_an_id() {
        fn walk(command: &clap::Command, path: &str) {
            let mut seen = std::collections::BTreeSet::new();
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                assert!(seen.insert(id), "`{path}` has two flags with the id {id:?}");
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        walk(&Cli::command(), "materia");
    }

    #[test]
    fn each_place_flag_reaches_its_own_value() {
        let places = [
            ("landing_dir", "--landing-dir", "L"),
            ("duckdb_path", "--duckdb-path", "D"),
            ("config", "--config", "C"),
        ];
        let models = [("models", "--models", "M")];
        for (command, with_models, required) in [
            ("transform", true, &[][..]),
            ("drill", true, &["--from", "s3://b/p"]),
            ("check", false, &[]),
            ("run", false, &[]),
            ("supervise", false, &[]),
        ] {
            let flags: Vec<_> = places
                .iter()
                .chain(if with_models { &models[..] } else { &[] })
                .collect();
            let mut line = vec!["materia", command];
            line.extend(required);
            line.extend(flags.iter().flat_map(|(_, flag, value)| [*flag, *value]));
            let matches = Cli::command()
                .try_get_matches_from(&line)
                .unwrap_or_else(|e| panic!("{line:?}: {e}"));
            let (_, sub) = matches.subcommand().expect("a command");
            for (id, _, value) in flags {
                let got = sub.get_one::<std::path::PathBuf>(id);
                assert_eq!(
                    got.and_then(|p| p.to_str()),
                    Some(*value),
                    "{command}: {id}"
                );
            }
        }
    }

    #[test]
    fn no_color_set_and_not_empty_turns_colour_off() {
        use std::ffi::OsStr;
        assert!(super::no_color(Some(OsStr::new("1"))));
        assert!(
            super::no_color(Some(OsStr::new("0"))),
            "any value, as no-color.org says"
        );
        assert!(!super::no_color(Some(OsStr::new(""))));
        assert!(!super::no_color(None));
    }

    #[test]
    fn version_names_the_binary() {
        assert_eq!(
            Cli::command().render_version(),
            format!("materia {}\n", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn a_command_takes_only_the_flags_it_uses() {
        for args in [
            &["materia", "ls", "--duckdb-path", "x"][..],
            &["materia", "query", "--landing-dir", "x", "SELECT 1"],
            &["materia", "notify", "--test", "--config", "x"],
            &["materia", "query", "--json", "--format", "csv", "SELECT 1"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
        for args in [
            &["materia", "query", "--json", "SELECT 1"][..],
            &["materia", "query", "--format", "json", "SELECT 1"],
            &["materia", "--config", "x", "check"],
            &["materia", "check", "--config", "x"],
        ] {
            assert!(Cli::try_parse_from(args).is_ok(), "{args:?}");
        }
    }
}
