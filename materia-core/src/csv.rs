//! The little CSV knowledge shared by the landing store and transform: a header
//! line split into its columns, and checked against the expected ones before
//! any byte lands.

use std::io::{self, Read};

use crate::guard::refuse;

/// The column names of a CSV header line: BOM, CR and surrounding quotes and
/// spaces removed; commas inside quotes kept.
///
/// ```
/// let cols = materia_core::csv::split_header(b"\xef\xbb\xbfA, \"B,C\" ,\"D\"\"E\"\r");
/// assert_eq!(cols, ["A", "B,C", "D\"E"]);
/// ```
pub fn split_header(line: &[u8]) -> Vec<String> {
    let line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line);
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field).trim().to_owned()),
            c => field.push(c),
        }
    }
    fields.push(field.trim().to_owned());
    fields
}

/// Longest header line accepted.
const MAX_HEADER: usize = 64 * 1024;

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
        let found = split_header(line);
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
    use crate::guard::refusal;

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
}
