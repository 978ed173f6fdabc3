//! `materia restore`: the bucket's objects missing locally, downloaded and checked.

use std::io::{self, Write};
use std::process::ExitCode;

use materia_core::mirror::Mirror;

use crate::BoxError;
use crate::args::{Concurrency, Globals, Landing, Output, bucket_url};
use crate::output::{exit_code, print_json};

/// Download every object under the prefix that is missing locally.
///
/// Each goes through the landing store's checks; exit 1 naming each one
/// refused. With --json: one object (downloaded, skipped, bytes, refused,
/// probes).
///
/// Example: materia restore --from s3://materia-raw/landing
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The bucket prefix, s3://bucket/prefix (required: the flag or $MATERIA_MIRROR_URL).
    #[arg(long, env = "MATERIA_MIRROR_URL", value_name = "URL")]
    from: Option<String>,
    #[command(flatten)]
    concurrency: Concurrency,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    landing: Landing,
}

impl Args {
    /// Restores; exit 1 when an object was refused.
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let url = bucket_url(self.from.as_deref(), "--from", "MATERIA_MIRROR_URL")?;
        let store = self.landing.open(globals)?;
        let report = Mirror::new(self.concurrency.bucket(url)?)?.restore(&store)?;
        if self.output.json {
            print_json(&report)?;
        } else {
            let mut out = io::stdout().lock();
            for r in &report.refused {
                writeln!(out, "REFUSED {}: {}", r.object, r.reason)?;
            }
            writeln!(
                out,
                "downloaded {} file(s), {} bytes; {} already here",
                report.downloaded, report.bytes, report.skipped
            )?;
            if report.probes > 0 {
                writeln!(
                    out,
                    "skipped {} probe object(s) an older `mirror --create-bucket` left",
                    report.probes
                )?;
            }
        }
        Ok(exit_code(report.refused.is_empty()))
    }
}
