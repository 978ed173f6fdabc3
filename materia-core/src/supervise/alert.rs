//! Alerts: one message to a webhook when a cycle starts failing, and one when it
//! recovers — one per failure streak, never one per cycle.
//!
//! Formats: generic JSON (the [`Alert`] itself), ntfy (plain text body with
//! `Title`, `Priority` and `Tags` headers) and Slack-style `{"text": …}`,
//! chosen by a setting or detected from the URL. A send is bounded (10 s a try,
//! two tries); one that fails is logged showing only the URL's scheme and host
//! (the whole URL is a secret: Slack's and ntfy's carry it in the path) and
//! never fails or holds up the cycle.

use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};

/// How an alert is written for its receiver.
///
/// ```
/// use materia_core::supervise::AlertFormat;
/// assert_eq!(AlertFormat::detect("https://ntfy.sh/materia"), AlertFormat::Ntfy);
/// assert_eq!(AlertFormat::detect("https://hooks.slack.com/services/T/B/X"), AlertFormat::Slack);
/// assert_eq!(AlertFormat::detect("https://example.org/hook"), AlertFormat::Json);
/// assert_eq!("ntfy".parse::<AlertFormat>()?, AlertFormat::Ntfy);
/// # Ok::<(), materia_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertFormat {
    /// The alert as a JSON object.
    Json,
    /// ntfy: the text as the body, `Title`, `Priority` and `Tags` headers.
    Ntfy,
    /// Slack (and Mattermost, Discord's Slack-compatible hooks): `{"text": …}`.
    Slack,
}

impl AlertFormat {
    /// The format a URL's host suggests: ntfy, Slack, else JSON.
    pub fn detect(url: &str) -> AlertFormat {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        if host.contains("ntfy") {
            AlertFormat::Ntfy
        } else if host.contains("slack.com") || url.contains("/slack") {
            AlertFormat::Slack
        } else {
            AlertFormat::Json
        }
    }
}

impl FromStr for AlertFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<AlertFormat> {
        match s {
            "json" => Ok(AlertFormat::Json),
            "ntfy" => Ok(AlertFormat::Ntfy),
            "slack" => Ok(AlertFormat::Slack),
            other => Err(Error::Config {
                origin: "alert format".into(),
                reason: format!("unknown format {other:?}: use json, ntfy or slack"),
                source: None,
            }),
        }
    }
}

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertKind {
    /// A cycle failed (the first of a streak).
    Failure,
    /// A cycle succeeded after a failure streak.
    Recovery,
    /// `materia notify --test`.
    Test,
}

/// One alert, as the generic JSON format sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// Failure, recovery or test.
    pub kind: AlertKind,
    /// The failed step (failures only).
    pub step: Option<String>,
    /// Its exit code (124: timed out).
    pub exit_code: Option<i32>,
    /// Its last error line.
    pub error: Option<String>,
    /// Cycles failed in a row (0 for a test).
    pub streak: u32,
    /// The machine.
    pub host: String,
    /// When the cycle started.
    pub at: jiff::Timestamp,
}

impl Alert {
    /// One line for people.
    pub fn text(&self) -> String {
        match self.kind {
            AlertKind::Failure => format!(
                "materia on {}: step {} failed (exit {}): {}",
                self.host,
                self.step.as_deref().unwrap_or("?"),
                self.exit_code.unwrap_or(-1),
                self.error.as_deref().unwrap_or("no error line")
            ),
            AlertKind::Recovery => format!(
                "materia on {}: recovered after {} failed cycle(s)",
                self.host, self.streak
            ),
            AlertKind::Test => format!("materia on {}: test alert", self.host),
        }
    }
}

/// The HTTP client for alerts and pings: 10 s a request, no Referer (the URL
/// may carry a token).
pub(crate) fn webhook_client() -> reqwest::Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .referer(false)
        .build()
}

/// Sends alerts to one webhook.
pub struct Alerter {
    url: String,
    format: AlertFormat,
    client: reqwest::blocking::Client,
}

impl Alerter {
    /// An alerter for `url`, in `format` (detected from the URL when `None`).
    pub fn new(url: &str, format: Option<AlertFormat>) -> Result<Alerter> {
        let client = webhook_client().map_err(|e| Error::Config {
            origin: "alert client".into(),
            reason: e.to_string(),
            source: Some(Box::new(e)),
        })?;
        Ok(Alerter {
            url: url.to_owned(),
            format: format.unwrap_or_else(|| AlertFormat::detect(url)),
            client,
        })
    }

    /// Sends `alert`, at most twice. `Err` says why it could not be sent
    /// (the URL shown as its scheme and host only); callers log it and go on.
    pub fn send(&self, alert: &Alert) -> Result<()> {
        let mut last = String::new();
        for _ in 0..2 {
            let request = self.client.post(&self.url);
            let json = |value: serde_json::Value| {
                self.client
                    .post(&self.url)
                    .header("Content-Type", "application/json")
                    .body(value.to_string())
            };
            let request = match self.format {
                AlertFormat::Json => json(serde_json::to_value(alert).unwrap_or_default()),
                AlertFormat::Slack => json(serde_json::json!({ "text": alert.text() })),
                AlertFormat::Ntfy => {
                    let (priority, tags) = match alert.kind {
                        AlertKind::Failure => ("high", "rotating_light"),
                        AlertKind::Recovery => ("default", "white_check_mark"),
                        AlertKind::Test => ("low", "test_tube"),
                    };
                    request
                        .header("Title", format!("materia {:?}", alert.kind).to_lowercase())
                        .header("Priority", priority)
                        .header("Tags", tags)
                        .body(alert.text())
                }
            };
            match request.send() {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("the receiver answered {}", r.status()),
                Err(e) => last = e.without_url().to_string(),
            }
        }
        Err(Error::Config {
            origin: format!("alert {}", crate::text::redact_secret_url(&self.url)),
            reason: last,
            source: None,
        })
    }
}
