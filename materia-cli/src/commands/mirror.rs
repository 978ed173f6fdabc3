//! `materia mirror`: push the landing zone to the bucket, or compare them.

use std::io::{self, Write};
use std::process::ExitCode;

use materia_core::landing::LandingStore;
use materia_core::mirror::{Mirror, MirrorOptions};

use crate::BoxError;
use crate::args::{Concurrency, Globals, Landing, Output, bucket_url};
use crate::output::{exit_code, print_json};

/// Push landed files the bucket lacks (never overwrites, never deletes).
///
/// Exit 1 naming each conflict (the bucket holds other content under a key:
/// left alone) or, with --verify, each missing or different object. With
/// --json: one object (uploaded, skipped, bytes, conflicts, aborted; with
/// --verify: checked, missing, different, round_completed_at).
///
/// Example: materia mirror --to s3://materia-raw/landing
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The bucket prefix, s3://bucket/prefix (required: the flag or $MATERIA_MIRROR_URL).
    #[arg(long, env = "MATERIA_MIRROR_URL", value_name = "URL")]
    to: Option<String>,
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
    #[command(flatten)]
    concurrency: Concurrency,
    /// Files from this size (MiB) go up as multipart uploads.
    #[arg(long, default_value_t = 64)]
    multipart_threshold_mib: u64,
    /// Multipart part size (MiB, at least 5; R2 needs equal parts).
    #[arg(long, default_value_t = 16)]
    part_size_mib: u64,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    landing: Landing,
}

impl Args {
    /// Pushes (or with --verify compares); exit 1 on a conflict or a difference.
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let url = bucket_url(self.to.as_deref(), "--to", "MATERIA_MIRROR_URL")?;
        // Never creates the landing zone: a push must not back up nothing.
        let store = self.landing.open_existing(globals)?;
        let mirror = Mirror::new(self.options(url)?)?;
        if self.create_bucket {
            create_bucket(&mirror)?;
        }
        if self.verify {
            verify(&mirror, &store, self.sample, self.output.json)
        } else {
            push(&mirror, &store, self.full, self.output.json)
        }
    }

    fn options(&self, url: &str) -> Result<MirrorOptions, BoxError> {
        Ok(MirrorOptions {
            multipart_threshold: self.multipart_threshold_mib << 20,
            part_size: self.part_size_mib << 20,
            full_every: match self.full_every.as_str() {
                "off" => None,
                every => Some(
                    materia_core::supervise::parse_duration(every)
                        .map_err(|e| format!("--full-every: {e}"))?,
                ),
            },
            ..self.concurrency.bucket(url)?
        })
    }
}

/// Creates the bucket when missing and says what the server honours.
fn create_bucket(mirror: &Mirror) -> Result<(), BoxError> {
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
    Ok(())
}

/// `--verify [--sample N]`: exit 1 naming each missing or different object.
fn verify(
    mirror: &Mirror,
    store: &LandingStore,
    sample: Option<usize>,
    json: bool,
) -> Result<ExitCode, BoxError> {
    let report = match sample {
        Some(n) => mirror.verify_sample(store, n)?,
        None => mirror.verify(store)?,
    };
    if json {
        print_json(&report)?;
    } else {
        let mut out = io::stdout().lock();
        for key in &report.missing {
            writeln!(out, "MISSING {key}")?;
        }
        for key in &report.different {
            writeln!(out, "DIFFERENT {key}")?;
        }
        writeln!(
            out,
            "{} object(s) checked, {} missing, {} different",
            report.checked,
            report.missing.len(),
            report.different.len()
        )?;
        if let Some(at) = report.round_completed_at {
            writeln!(out, "last round over every object completed {at}")?;
        }
    }
    Ok(exit_code(report.is_ok()))
}

/// The push: exit 1 naming each conflict.
fn push(
    mirror: &Mirror,
    store: &LandingStore,
    full: bool,
    json: bool,
) -> Result<ExitCode, BoxError> {
    let report = mirror.push(store, full)?;
    if json {
        print_json(&report)?;
    } else {
        let mut out = io::stdout().lock();
        for key in &report.conflicts {
            writeln!(
                out,
                "CONFLICT {key}: the bucket holds other content; left alone"
            )?;
        }
        if report.aborted > 0 {
            writeln!(
                out,
                "aborted {} multipart upload(s) left by an interrupted run",
                report.aborted
            )?;
        }
        writeln!(
            out,
            "uploaded {} file(s), {} bytes; {} already there",
            report.uploaded, report.bytes, report.skipped
        )?;
    }
    Ok(exit_code(report.conflicts.is_empty()))
}
