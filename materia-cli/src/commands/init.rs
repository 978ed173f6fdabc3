//! `materia init`: a starter project — a config, models and an environment example.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::BoxError;

/// Write a starter project: a commented materia.toml (a dataset of your own
/// beside the built-in ones), models/ with a table, a view and an audit, and
/// .env.example.
///
/// Never overwrites: when one of the files exists, nothing is written (exit
/// 2 naming it). The files are the repository's examples/ directory.
///
/// Example: materia init my-lakehouse
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The project directory (created when missing).
    #[arg(default_value = ".", value_name = "DIR")]
    dir: PathBuf,
}

impl Args {
    /// Writes the files, then prints them and the commands to run next.
    pub(crate) fn exec(self) -> Result<ExitCode, BoxError> {
        let written = materia_core::init::init(&self.dir)?;
        let mut out = io::stdout().lock();
        for path in &written {
            writeln!(out, "wrote {}", path.display())?;
        }
        let config = self.dir.join("materia.toml");
        let models = self.dir.join("models");
        let (config, models) = (config.display(), models.display());
        writeln!(out, "next:")?;
        writeln!(out, "  materia extract --config {config}")?;
        writeln!(
            out,
            "  materia transform --config {config} --models {models}"
        )?;
        writeln!(
            out,
            "  materia query \"SELECT * FROM serving.coffee_top_producers\""
        )?;
        writeln!(
            out,
            "(or set what {} names, and drop the flags)",
            self.dir.join(".env.example").display()
        )?;
        Ok(ExitCode::SUCCESS)
    }
}
