//! `materia serve`: the read-only HTTP API over the published lakehouse.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use materia_core::serve::{ServeOptions, Server};

use crate::BoxError;
use crate::args::{Globals, Lakehouse};

/// Serve the published lakehouse over HTTP, read-only.
///
/// Follows every new publish; stops on SIGTERM or Ctrl-C. The API is in
/// docs/serving-and-publishing.md.
///
/// Example: materia serve --bind 127.0.0.1:8080
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Address to listen on.
    #[arg(long, env = "MATERIA_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
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
    #[command(flatten)]
    lakehouse: Lakehouse,
}

impl Args {
    /// Binds, says where, serves until SIGTERM or Ctrl-C.
    pub(crate) fn exec(self, globals: &Globals) -> Result<ExitCode, BoxError> {
        let mut options = ServeOptions::new(self.lakehouse.path(globals));
        options.bind = self.bind;
        options.max_in_flight = self.max_in_flight;
        options.timeout = Duration::from_secs(self.timeout_secs);
        options.allow_sql = self.allow_sql;
        options.cache_bytes = self.cache_mib.saturating_mul(1 << 20);
        if let Some(bytes) = self.memory_limit {
            options.memory_limit_bytes = bytes;
        }
        options.max_answer_bytes = self.max_answer_mib.saturating_mul(1 << 20).max(1);
        let server = Server::bind(&options)?;
        let addr = server.local_addr()?;
        tracing::info!(lakehouse = %options.duckdb_path.display(), "serving on http://{addr}");
        // The address, for whoever started us (port 0 picks one).
        writeln!(io::stdout(), "listening on http://{addr}")?;
        io::stdout().flush()?;
        server.run(stop_signal())?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Ready on the first SIGTERM or SIGINT (never, when the handlers cannot be
/// installed).
async fn stop_signal() {
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
