//! `materia notify`: an alert to the webhook, now.

use std::io::{self, Write};
use std::process::ExitCode;

use jiff::Timestamp;
use materia_core::supervise::{Alert, AlertKind, Alerter, host_name};

use crate::BoxError;

/// Send an alert to the webhook (MATERIA_ALERT_URL) now.
///
/// A test message, or that a systemd unit failed (the units' OnFailure=
/// backstop).
///
/// Example: materia notify --test
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["test", "failed_unit"])))]
pub(crate) struct Args {
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
}

impl Args {
    /// Sends the alert.
    pub(crate) fn exec(self) -> Result<ExitCode, BoxError> {
        let format = self.alert_format.as_deref().map(str::parse).transpose()?;
        let failed_unit = self.failed_unit.as_deref();
        let alert = Alert {
            kind: if failed_unit.is_some() {
                AlertKind::Failure
            } else {
                AlertKind::Test
            },
            step: failed_unit.map(str::to_owned),
            exit_code: None,
            error: failed_unit.map(|u| format!("the systemd unit {u} failed: journalctl -u {u}")),
            streak: 0,
            host: host_name(),
            at: Timestamp::now(),
        };
        Alerter::new(&self.alert_url, format)?.send(&alert)?;
        let what = if failed_unit.is_some() {
            "a failure"
        } else {
            "a test"
        };
        writeln!(io::stdout(), "sent {what} alert")?;
        Ok(ExitCode::SUCCESS)
    }
}
