//! Small helpers every layer may use: durations written as text (`30m`,
//! `6h`), and URLs made safe to show in logs, errors and state.
//!
//! It imports nothing of the crate: it sits below everything else. The URL
//! helpers parse with reqwest's URL type, so they come with the `http` feature.

use std::time::Duration;

/// Parses `90s`, `30m`, `6h`, `1d` (one number, one unit).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(materia_core::supervise::parse_duration("30m"), Ok(Duration::from_secs(1800)));
/// assert!(materia_core::supervise::parse_duration("30").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} needs a unit: s, m, h or d"))?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} must start with a whole number"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown unit {other:?} in {s:?}: use s, m, h or d")),
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// A URL that is a secret as a whole (a webhook, a dead-man's ping, an ntfy
/// topic: Slack's `/services/T…/B…/SECRET` and healthchecks.io's `/ping/<uuid>`
/// carry the secret in the path), as logs and errors may show it: the scheme
/// and the host (and port) only, then `/…`.
///
/// ```
/// use materia_core::extract::redact_secret_url;
/// assert_eq!(
///     redact_secret_url("https://hooks.slack.com/services/T0001/B0001/SUPERSECRETTOKEN"),
///     "https://hooks.slack.com/…"
/// );
/// assert_eq!(redact_secret_url("http://u:p@127.0.0.1:9/ping/uuid?x=1"), "http://127.0.0.1:9/…");
/// assert_eq!(redact_secret_url("not a url /secret"), "(an invalid URL)");
/// ```
#[cfg(feature = "http")]
pub fn redact_secret_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}/…", u.scheme()),
            (Some(host), None) => format!("{}://{host}/…", u.scheme()),
            (None, _) => format!("{}:…", u.scheme()),
        },
        Err(_) => "(an invalid URL)".into(),
    }
}

/// `url` without its secrets, for logs, errors, state and the ledger: the
/// password, and the value of every query parameter (signed URLs and API tokens
/// travel there) are replaced by `***`; parameter names stay, so two URLs can
/// still be told apart.
///
/// ```
/// use materia_core::extract::redact;
/// assert_eq!(redact("https://user:secret@example.org/x.zip"), "https://user:***@example.org/x.zip");
/// assert_eq!(
///     redact("https://example.org/x.zip?token=abc&X-Amz-Signature=def"),
///     "https://example.org/x.zip?token=***&X-Amz-Signature=***"
/// );
/// assert_eq!(redact("file:///srv/psd.zip"), "file:///srv/psd.zip");
/// ```
#[cfg(feature = "http")]
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if u.query().is_some() {
                let names: Vec<String> = u.query_pairs().map(|(k, _)| k.into_owned()).collect();
                let masked: Vec<String> = names.iter().map(|k| format!("{k}=***")).collect();
                u.set_query(Some(&masked.join("&")));
            }
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => url.chars().filter(|c| !c.is_control()).take(200).collect(),
    }
}
