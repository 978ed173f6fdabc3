//! One step as a child process: no shell, an explicit environment, its own
//! process group, a timeout enforced with SIGTERM then SIGKILL to the whole
//! group, and its error line picked from its stderr for the report.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::error_line::ErrorLine;
use crate::error::{IoContext, Result};

/// The longest stderr line relayed in one piece (and kept as the error line).
const MAX_LINE: u64 = 64 * 1024;

/// How a child ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It exited by itself with this status.
    Exited(ExitStatus),
    /// It ran past its timeout and was terminated.
    TimedOut,
    /// The supervisor was asked to stop and terminated it.
    Interrupted,
}

/// What ran and how it ended.
pub(crate) struct Finished {
    pub ended: Ended,
    /// The child's error line (see `error_line.rs`).
    pub error_line: Option<String>,
}

/// Runs `exe args` with exactly `env`, relaying its stderr line by line to ours.
/// Past `timeout`, or when `stop` is set, the child's process group gets SIGTERM
/// and, `grace` later, SIGKILL. The group is killed in any case once the child
/// is gone, so nothing it started lingers.
pub(crate) fn run(
    exe: &Path,
    args: &[String],
    env: &[(String, String)],
    timeout: Duration,
    grace: Duration,
    stop: &AtomicBool,
) -> Result<Finished> {
    let mut child = Command::new(exe)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .at(exe)?;
    let pgid = Pid::from_raw(child.id() as i32);
    let error_line = Arc::new(Mutex::new(ErrorLine::default()));
    let relay = child.stderr.take().map(|stderr| {
        let error_line = Arc::clone(&error_line);
        std::thread::spawn(move || {
            let mut out = std::io::stderr();
            let mut reader = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                // Bounded lines (a longer one is relayed in pieces) and any
                // bytes (invalid UTF-8 is shown lossily, never stops the relay).
                buf.clear();
                match Read::take(&mut reader, MAX_LINE).read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&buf);
                let line = text.trim_end_matches(['\n', '\r']);
                let _ = writeln!(out, "{line}");
                error_line
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line);
            }
        })
    });
    let started = Instant::now();
    let mut terminating: Option<(Instant, Ended)> = None;
    let status = loop {
        if let Some(status) = child.try_wait().at(exe)? {
            break status;
        }
        match &terminating {
            None if stop.load(Ordering::SeqCst) => {
                let _ = killpg(pgid, Signal::SIGTERM);
                terminating = Some((Instant::now(), Ended::Interrupted));
            }
            None if started.elapsed() >= timeout => {
                let _ = killpg(pgid, Signal::SIGTERM);
                terminating = Some((Instant::now(), Ended::TimedOut));
            }
            Some((since, _)) if since.elapsed() >= grace => {
                let _ = killpg(pgid, Signal::SIGKILL);
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Whatever the child started goes with it.
    let _ = killpg(pgid, Signal::SIGKILL);
    if let Some(relay) = relay {
        let _ = relay.join();
    }
    let error_line = std::mem::take(&mut *error_line.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Finished {
        ended: terminating.map_or(Ended::Exited(status), |(_, why)| why),
        error_line: error_line.into_line(),
    })
}

/// The exit code a finished step stands for: its own, 124 for a timeout (as
/// `timeout(1)`), 128 + the signal for a signal, 130 for an interruption.
pub(crate) fn exit_code(ended: &Ended) -> i32 {
    match ended {
        Ended::Exited(status) => status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        Ended::TimedOut => 124,
        Ended::Interrupted => 130,
    }
}
