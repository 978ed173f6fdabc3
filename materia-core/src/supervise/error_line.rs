//! Which line of a failed step's stderr is its error: what `status` and the
//! alert quote. Not simply the last line: after its error a program may log
//! (an INFO line about another dataset) or add boilerplate (clap's "For more
//! information, try '--help'."), and quoting that told an operator nothing.

/// How the `materia` binary starts the line of an error it exits with: the
/// supervisor keeps that line as the failed step's error.
///
/// ```
/// use materia_core::supervise::ERROR_PREFIX;
/// assert_eq!(ERROR_PREFIX, "materia: error: ");
/// ```
pub const ERROR_PREFIX: &str = "materia: error: ";

/// How clap starts the line of a usage error (`error: the following required
/// arguments were not provided:`, its details on the indented lines below).
const USAGE_ERROR_PREFIX: &str = "error: ";

/// The error line of a step, fed its stderr line by line: the last
/// `materia: error:` line (else the last usage error of the argument parser,
/// with its indented details), else the last line that is neither a log line
/// nor the argument parser's boilerplate (a log line only when there is
/// nothing else).
#[derive(Debug, Default)]
pub(crate) struct ErrorLine {
    /// The last line that says it is the error.
    own: Option<String>,
    /// Whether `own` is a usage error whose indented details follow.
    continues: bool,
    /// Whether `own` is materia's (a parser's usage error does not replace it).
    materia: bool,
    /// The last line that is neither a log line nor boilerplate.
    last: Option<String>,
    /// The last log line.
    last_log: Option<String>,
}

impl ErrorLine {
    /// Takes one line of stderr (without its line end).
    pub(crate) fn push(&mut self, raw: &str) {
        let line = strip_ansi(raw);
        let text = line.trim_end();
        if text.trim().is_empty() {
            self.continues = false;
            return;
        }
        if self.continues && text.starts_with(char::is_whitespace) {
            if let Some(own) = &mut self.own {
                own.push(' ');
                own.push_str(text.trim());
            }
            return;
        }
        self.continues = false;
        if text.starts_with(ERROR_PREFIX) {
            (self.own, self.materia) = (Some(text.to_owned()), true);
        } else if text.starts_with(USAGE_ERROR_PREFIX) && !self.materia {
            self.own = Some(text.to_owned());
            self.continues = text.ends_with(':');
        } else if is_log_line(text) {
            self.last_log = Some(text.trim().to_owned());
        } else if !is_boilerplate(text) {
            self.last = Some(text.to_owned());
        }
    }

    /// The step's error line, if it wrote any.
    pub(crate) fn into_line(self) -> Option<String> {
        self.own.or(self.last).or(self.last_log)
    }
}

/// A line of the `tracing` log format: a level first (` INFO …`, `ERROR …`),
/// or after a timestamp when the log shows one.
fn is_log_line(text: &str) -> bool {
    const LEVELS: [&str; 5] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or("");
    let level = if first.starts_with(|c: char| c.is_ascii_digit()) && first.contains('T') {
        words.next().unwrap_or("")
    } else {
        first
    };
    LEVELS.contains(&level)
}

/// What the argument parser adds after its error: nothing about the error.
fn is_boilerplate(text: &str) -> bool {
    text.starts_with("For more information, try") || text.starts_with("Usage: ")
}

/// `text` without terminal colour sequences (`ESC [ … letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.clone().next() == Some('[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_line(stderr: &str) -> Option<String> {
        let mut picker = ErrorLine::default();
        for line in stderr.lines() {
            picker.push(line);
        }
        picker.into_line()
    }

    #[test]
    fn materia_s_error_line_wins_over_later_log_lines() {
        let stderr = " INFO step starting step=extract\n\
                      materia: error: dataset psd: extract http://x/psd.zip: HTTP 500\n\
                      \u{1b}[32m INFO\u{1b}[0m landed url=file:///cot.zip key=cot/2026/12/a.csv.gzip\n\
                      2026-12-07T10:00:00.000000Z  WARN slow\n";
        assert_eq!(
            error_line(stderr).as_deref(),
            Some("materia: error: dataset psd: extract http://x/psd.zip: HTTP 500")
        );
    }

    #[test]
    fn a_usage_error_is_kept_with_its_details_not_the_help_hint() {
        let stderr = "error: the following required arguments were not provided:\n  \
                      --to <URL>\n\nUsage: materia publish --to <URL>\n\n\
                      For more information, try '--help'.\n";
        assert_eq!(
            error_line(stderr).as_deref(),
            Some("error: the following required arguments were not provided: --to <URL>")
        );
    }

    #[test]
    fn without_an_error_line_the_last_line_that_is_not_a_log_line() {
        let stderr = "noise\nextract https://x: 503 Service Unavailable\n ERROR giving up\n\n";
        assert_eq!(
            error_line(stderr).as_deref(),
            Some("extract https://x: 503 Service Unavailable")
        );
        assert_eq!(
            error_line(" WARN a warning\n ERROR only logs\n").as_deref(),
            Some("ERROR only logs")
        );
        assert_eq!(error_line(""), None);
    }

    #[test]
    fn the_last_materia_error_line_is_the_one() {
        let stderr = "materia: error: dataset a: first\nerror: not clap\n\
                      materia: error: dataset b: second\n";
        assert_eq!(
            error_line(stderr).as_deref(),
            Some("materia: error: dataset b: second")
        );
    }
}
