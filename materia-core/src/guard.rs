//! Readers that stand between a download and the store and refuse what must not
//! land: too many bytes, too much time, the wrong CSV header.
//!
//! Each refusal is an `io::Error` carrying a [`Refusal`], so it travels through
//! decoders and the store unchanged and comes out as the reason of an
//! `Error::Extract` (or, through [`LandingStore::put`](crate::landing::LandingStore::put),
//! of an [`Error::Input`](crate::Error::Input)).

use std::fmt;
use std::io::{self, Read};
use std::time::Instant;

/// Why a guard stopped the input: the text of the error the user sees.
#[derive(Debug)]
pub(crate) struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

pub(crate) fn refuse(msg: String) -> io::Error {
    io::Error::other(Refusal(msg))
}

/// The refusal inside `e`, if a guard made it.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) fn refusal(e: &io::Error) -> Option<&Refusal> {
    e.get_ref()?.downcast_ref::<Refusal>()
}

/// Counts bytes and stops past `max` bytes or after `deadline`.
pub(crate) struct Limited<R> {
    inner: R,
    pub(crate) bytes: u64,
    max: u64,
    what: &'static str,
    deadline: Option<Instant>,
}

impl<R> Limited<R> {
    pub(crate) fn new(inner: R, max: u64, what: &'static str, deadline: Option<Instant>) -> Self {
        Limited {
            inner,
            bytes: 0,
            max,
            what,
            deadline,
        }
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.deadline.is_some_and(|d| Instant::now() > d) {
            return Err(refuse(format!(
                "the download took longer than the total timeout ({} bytes in)",
                self.bytes
            )));
        }
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        if self.bytes > self.max {
            return Err(refuse(format!(
                "the {} is larger than the limit of {} bytes",
                self.what, self.max
            )));
        }
        Ok(n)
    }
}

/// Longest header line accepted.
const MAX_HEADER: usize = 64 * 1024;

/// Longest line [`TextCheck`] lets through (a PSD line is under 300 bytes;
/// DuckDB's CSV reader stops at 2 MB by default).
pub(crate) const MAX_LINE: u64 = 1 << 20;

/// Refuses input that is not CSV text: a NUL byte anywhere, or a line longer
/// than [`MAX_LINE`]. Bytes pass through unchanged.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) struct TextCheck<R> {
    inner: R,
    offset: u64,
    line: u64,
    line_len: u64,
}

#[cfg_attr(not(feature = "http"), allow(dead_code))]
impl<R> TextCheck<R> {
    pub(crate) fn new(inner: R) -> Self {
        TextCheck {
            inner,
            offset: 0,
            line: 1,
            line_len: 0,
        }
    }
}

impl<R: Read> Read for TextCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, &b) in buf[..n].iter().enumerate() {
            match b {
                0 => {
                    return Err(refuse(format!(
                        "not CSV text: a NUL byte at offset {} (line {})",
                        self.offset + i as u64,
                        self.line
                    )));
                }
                b'\n' => {
                    self.line += 1;
                    self.line_len = 0;
                }
                _ => {
                    self.line_len += 1;
                    if self.line_len > MAX_LINE {
                        return Err(refuse(format!(
                            "not CSV text: line {} is longer than {MAX_LINE} bytes",
                            self.line
                        )));
                    }
                }
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// A reader that checks the CSV header line against the expected columns before
/// passing anything on, then passes every byte through unchanged. A wrong header
/// is an `io::Error` that says what is wrong (an HTML page, missing columns, the
/// wrong order, no header line in the first 64 KiB, empty input).
///
/// ```
/// use std::io::Read;
/// use materia_core::csv::HeaderCheck;
/// let expected = vec!["a".to_owned(), "b".to_owned()];
/// let mut out = Vec::new();
/// HeaderCheck::new(&b"a,b\n1,2\n"[..], &expected).read_to_end(&mut out)?;
/// assert_eq!(out, b"a,b\n1,2\n");
/// let err = HeaderCheck::new(&b"<html>oops"[..], &expected).read_to_end(&mut Vec::new());
/// assert!(err.unwrap_err().to_string().contains("HTML"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct HeaderCheck<'a, R> {
    inner: R,
    expected: &'a [String],
    /// The first line (and whatever was read with it), until served.
    head: Vec<u8>,
    served: usize,
    checked: bool,
}

impl<'a, R: Read> HeaderCheck<'a, R> {
    /// Wraps `inner`; an empty `expected` checks nothing.
    pub fn new(inner: R, expected: &'a [String]) -> Self {
        HeaderCheck {
            inner,
            expected,
            head: Vec::new(),
            served: 0,
            checked: expected.is_empty(),
        }
    }

    fn check(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        while !self.head.contains(&b'\n') {
            if self.head.len() > MAX_HEADER {
                return Err(refuse(format!(
                    "no CSV header line in the first {MAX_HEADER} bytes"
                )));
            }
            let n = self.inner.read(&mut buf)?;
            if n == 0 {
                break;
            }
            self.head.extend_from_slice(&buf[..n]);
        }
        if self.head.is_empty() {
            return Err(refuse(
                "the input is empty: there is nothing to land".into(),
            ));
        }
        let end = self
            .head
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(self.head.len());
        let line = &self.head[..end];
        let found = crate::csv::split_header(line);
        if found != self.expected {
            return Err(refuse(describe_mismatch(line, &found, self.expected)));
        }
        self.checked = true;
        Ok(())
    }
}

impl<R: Read> Read for HeaderCheck<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.checked {
            self.check()?;
        }
        if self.served < self.head.len() {
            let n = buf.len().min(self.head.len() - self.served);
            buf[..n].copy_from_slice(&self.head[self.served..self.served + n]);
            self.served += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

fn describe_mismatch(line: &[u8], found: &[String], expected: &[String]) -> String {
    let shown: String = String::from_utf8_lossy(line).chars().take(120).collect();
    let lower = shown.to_ascii_lowercase();
    if lower.trim_start().starts_with('<') || lower.contains("<html") {
        return format!("got an HTML page, not CSV (it starts {shown:?})");
    }
    let missing: Vec<&str> = expected
        .iter()
        .filter(|c| !found.contains(c))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        format!(
            "the CSV header has the expected columns but not in the expected order \
             (expected {}; got {shown:?})",
            expected.join(",")
        )
    } else {
        format!(
            "the CSV header is not the expected one: missing {} (got {shown:?})",
            missing.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn header_check_passes_everything_through_when_it_matches() {
        let expected = cols(&["a", "b"]);
        let input = b"a,b\r\n1,2\r\n3,4\r\n".repeat(1000);
        let mut out = Vec::new();
        HeaderCheck::new(&input[..], &expected)
            .read_to_end(&mut out)
            .expect("matches");
        assert_eq!(out, input);
    }

    #[test]
    fn header_check_names_what_is_wrong() {
        let expected = cols(&["a", "b"]);
        let cases: [(&[u8], &str); 5] = [
            (b"<!DOCTYPE html><html>", "HTML"),
            (b"a,c\n1,2\n", "missing b"),
            (b"b,a\n", "order"),
            (b"", "empty"),
            (b"\n", "missing a, b"),
        ];
        for (input, says) in cases {
            let err = HeaderCheck::new(input, &expected)
                .read_to_end(&mut Vec::new())
                .expect_err("mismatch");
            let why = refusal(&err).expect("a refusal").to_string();
            assert!(why.contains(says), "{why}");
        }
    }

    #[test]
    fn text_check_refuses_nul_bytes_and_endless_lines() {
        let ok = b"a,b\n1,2\n".repeat(100);
        let mut out = Vec::new();
        TextCheck::new(&ok[..]).read_to_end(&mut out).expect("text");
        assert_eq!(out, ok);
        let err = TextCheck::new(&b"a,b\n1,\x002\n"[..])
            .read_to_end(&mut Vec::new())
            .expect_err("NUL");
        assert!(
            refusal(&err)
                .expect("refusal")
                .0
                .contains("NUL byte at offset 6 (line 2)")
        );
        let long = vec![b'x'; MAX_LINE as usize + 1];
        let err = TextCheck::new(&long[..])
            .read_to_end(&mut Vec::new())
            .expect_err("long");
        assert!(
            refusal(&err)
                .expect("refusal")
                .0
                .contains("line 1 is longer")
        );
    }

    #[test]
    fn limited_stops_past_the_limit() {
        let input = vec![b'x'; 1000];
        let mut r = Limited::new(&input[..], 999, "body", None);
        let err = r.read_to_end(&mut Vec::new()).expect_err("over");
        assert!(refusal(&err).expect("refusal").0.contains("999"));
        let mut r = Limited::new(&input[..], 1000, "body", None);
        assert_eq!(r.read_to_end(&mut Vec::new()).expect("at the limit"), 1000);
    }
}
