//! The dead-man's ping: a healthchecks.io-style URL told when a cycle starts
//! (`{url}/start`), succeeds (`{url}`) or fails (`{url}/{exit code}`). It is
//! the only signal that catches "the job never ran": the receiver alerts when
//! the pings stop.
//!
//! A ping never fails or holds up a cycle beyond its bound (10 s a try, two
//! tries); one that cannot be sent is logged showing the URL's scheme and host
//! only (the check's UUID in the path is the secret).

/// Where to ping, and the client to do it with.
pub(crate) struct Ping {
    url: String,
    client: Option<reqwest::blocking::Client>,
}

impl Ping {
    /// A pinger for `url` (a client that cannot be built is logged: no pings).
    pub(crate) fn new(url: &str) -> Ping {
        let client = super::alert::webhook_client()
            .inspect_err(|e| tracing::warn!("no dead-man's pings: {e}"))
            .ok();
        Ping {
            url: url.trim_end_matches('/').to_owned(),
            client,
        }
    }

    /// Sends `{url}{suffix}` (`/start`, empty, `/{code}`), at most twice.
    pub(crate) fn send(&self, suffix: &str) {
        let Some(client) = &self.client else {
            return;
        };
        let url = format!("{}{suffix}", self.url);
        for attempt in 1..=2 {
            match client.get(&url).send() {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => tracing::warn!(
                    url = %crate::text::redact_secret_url(&url),
                    attempt,
                    "the dead-man's ping answered {}",
                    r.status()
                ),
                Err(e) => tracing::warn!(
                    url = %crate::text::redact_secret_url(&url),
                    attempt,
                    "the dead-man's ping failed: {}",
                    e.without_url()
                ),
            }
        }
    }
}
