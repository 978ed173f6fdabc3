//! One module per command, as cargo's: its `Args` (the flags it takes; the
//! doc comments are its help text) and its `exec`, which turns them into
//! materia-core's options, calls the library and prints the result.

pub(crate) mod check;
#[cfg(feature = "s3")]
pub(crate) mod drill;
pub(crate) mod extract;
pub(crate) mod init;
pub(crate) mod land;
pub(crate) mod ls;
#[cfg(feature = "s3")]
pub(crate) mod mirror;
pub(crate) mod notify;
#[cfg(feature = "s3")]
pub(crate) mod publish;
pub(crate) mod query;
#[cfg(feature = "s3")]
pub(crate) mod restore;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod stats;
pub(crate) mod status;
pub(crate) mod supervise;
pub(crate) mod transform;
pub(crate) mod verify;

/// The commands, in the order `materia --help` lists them: a starter
/// project (init), the pipeline (extract, land, transform, query, serve,
/// publish), the backup (mirror, restore, drill), operations (check, run,
/// supervise, status, notify), then the landing zone's own (ls, verify,
/// stats).
#[derive(clap::Subcommand)]
pub(crate) enum Command {
    Init(init::Args),
    Extract(extract::Args),
    Land(land::Args),
    Transform(transform::Args),
    Query(query::Args),
    Serve(serve::Args),
    #[cfg(feature = "s3")]
    Publish(publish::Args),
    #[cfg(feature = "s3")]
    Mirror(mirror::Args),
    #[cfg(feature = "s3")]
    Restore(restore::Args),
    #[cfg(feature = "s3")]
    Drill(drill::Args),
    Check(check::Args),
    Run(run::Args),
    Supervise(supervise::Args),
    Status(status::Args),
    Notify(notify::Args),
    Ls(ls::Args),
    Verify(verify::Args),
    Stats(stats::Args),
}
