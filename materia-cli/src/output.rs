//! Printing results: JSON for scripts, one way for every command.

use std::io::{self, Write};

use serde::Serialize;

use crate::BoxError;

/// One compact JSON object on its own line (JSON lines, for multi-step output:
/// `materia run --json` prints each step's result as a line).
pub(crate) fn print_json_line(value: &impl Serialize) -> Result<(), BoxError> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    io::stdout().lock().write_all(&line)?;
    Ok(())
}

/// One pretty-printed JSON value.
pub(crate) fn print_json(value: &impl Serialize) -> Result<(), BoxError> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    io::stdout().lock().write_all(&bytes)?;
    Ok(())
}

/// `0` when nothing was found wrong, else `1`: a check found problems.
pub(crate) fn exit_code(ok: bool) -> std::process::ExitCode {
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}
