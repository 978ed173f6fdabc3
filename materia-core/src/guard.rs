//! Readers that stand between a download and the store and refuse what must not
//! land: too many bytes, too much time, bytes that are not text. The CSV header
//! check ([`HeaderCheck`](crate::csv::HeaderCheck)) refuses the same way.
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

#[cfg(test)]
mod tests {
    use super::*;

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
