//! Landing keys: the validated names that become paths under `LANDING_DIR`.
//!
//! Every landed file lives at `{dataset}/{year}/{month}/{etag}.csv.gzip`. Each part
//! is a newtype whose constructor is the only way in, so a value of type
//! [`LandingKey`] always renders to a relative path of exactly four normal
//! components that cannot climb out of the store root. Rendering is canonical
//! (four-digit year, two-digit month), and parsing accepts only the canonical form,
//! so `parse(render(k)) == k` and `render(parse(p)) == p`.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::Error;

/// The file-name suffix of every landed file.
pub const SUFFIX: &str = ".csv.gzip";

/// Longest accepted etag token, in bytes.
pub const MAX_ETAG_LEN: usize = 128;

/// Longest accepted dataset name, in bytes.
pub const MAX_DATASET_LEN: usize = 64;

fn invalid(what: &'static str, value: &str, reason: impl Into<String>) -> Error {
    // Hostile input can be megabytes long or full of control bytes: keep the
    // message readable by quoting (Debug escapes) and cutting it short.
    let mut shown: String = value.chars().take(80).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    Error::InvalidKey {
        what,
        value: shown,
        reason: reason.into(),
    }
}

/// A dataset name: 1–64 bytes of `[a-z0-9_-]`.
///
/// ```
/// use materia_core::landing::Dataset;
/// let psd: Dataset = "psd".parse()?;
/// assert_eq!(psd.as_str(), "psd");
/// assert!("PSD".parse::<Dataset>().is_err());
/// assert!("../etc".parse::<Dataset>().is_err());
/// # Ok::<(), materia_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dataset(String);

impl Dataset {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as the lakehouse's table names carry it: `-` as `_`
    /// (`raw.{prefix}_changes`). Two datasets with one prefix cannot both be
    /// declared.
    ///
    /// ```
    /// use materia_core::landing::Dataset;
    /// assert_eq!("ico-prices".parse::<Dataset>()?.table_prefix(), "ico_prices");
    /// # Ok::<(), materia_core::Error>(())
    /// ```
    pub fn table_prefix(&self) -> String {
        self.0.replace('-', "_")
    }
}

impl FromStr for Dataset {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.is_empty() || s.len() > MAX_DATASET_LEN {
            return Err(invalid("dataset", s, "must be 1 to 64 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(invalid("dataset", s, "allowed characters are a-z 0-9 _ -"));
        }
        Ok(Dataset(s.to_owned()))
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A number newtype with a range: `new` checks it, `get` returns the number,
/// `Display` pads it to its width in a path.
macro_rules! bounded {
    ($(#[$doc:meta])* $name:ident($int:ty): $what:literal, $lo:literal..=$hi:literal, width $width:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name($int);

        impl $name {
            #[doc = concat!("A ", $what, " in ", $lo, "–", $hi, ".")]
            pub fn new(value: i64) -> Result<Self, Error> {
                if ($lo..=$hi).contains(&value) {
                    Ok($name(value as $int))
                } else {
                    let reason = concat!("must be ", $lo, " to ", $hi);
                    Err(invalid($what, &value.to_string(), reason))
                }
            }

            #[doc = concat!("The ", $what, " as a number.")]
            pub fn get(self) -> $int {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:0width$}", self.0, width = $width)
            }
        }
    };
}

bounded! {
    /// A release year, 1900–9999 (always four digits in a path).
    ///
    /// ```
    /// use materia_core::landing::Year;
    /// assert_eq!(Year::new(2026)?.get(), 2026);
    /// assert!(Year::new(1899).is_err());
    /// # Ok::<(), materia_core::Error>(())
    /// ```
    Year(u16): "year", 1900..=9999, width 4
}

bounded! {
    /// A month, 1–12 (always two digits in a path).
    ///
    /// ```
    /// use materia_core::landing::Month;
    /// assert_eq!(Month::new(3)?.to_string(), "03");
    /// assert!(Month::new(13).is_err());
    /// # Ok::<(), materia_core::Error>(())
    /// ```
    Month(u8): "month", 1..=12, width 2
}

/// The current UTC year and month: where a fetch made now lands by default.
///
/// ```
/// let (year, month) = materia_core::landing::current_month();
/// assert!(year.get() >= 2024 && (1..=12).contains(&month.get()));
/// ```
pub fn current_month() -> (Year, Month) {
    let now = jiff::tz::Offset::UTC.to_datetime(jiff::Timestamp::now());
    (Year(now.year() as u16), Month(now.month() as u8))
}

/// A SHA-256 digest, shown as 64 lowercase hex digits.
///
/// ```
/// use materia_core::landing::Sha256Digest;
/// let d = Sha256Digest::of(b"abc");
/// assert_eq!(d.to_string(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
/// assert_eq!(d.to_string().parse::<Sha256Digest>()?, d);
/// # Ok::<(), materia_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// The digest whose raw bytes are `bytes`.
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Sha256Digest(bytes)
    }

    pub(crate) fn from_hasher(hasher: Sha256) -> Self {
        Sha256Digest(hasher.finalize().into())
    }

    /// The digest of everything `reader` yields, and how many bytes that was.
    pub(crate) fn of_reader(mut reader: impl std::io::Read) -> std::io::Result<(Self, u64)> {
        let mut hasher = Sha256::new();
        let bytes = std::io::copy(&mut reader, &mut hasher)?;
        Ok((Self::from_hasher(hasher), bytes))
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl FromStr for Sha256Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(invalid("sha256", s, "must be 64 hex digits"));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let hex = std::str::from_utf8(pair).ok();
            let byte = hex
                .filter(|h| {
                    h.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                })
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            out[i] = byte.ok_or_else(|| invalid("sha256", s, "must be lowercase hex"))?;
        }
        Ok(Sha256Digest(out))
    }
}

impl serde::Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An etag token: the file name of a landed release, without its suffix.
///
/// A token is 1–128 bytes of `[A-Za-z0-9._-]` that does not start with `.`, so it
/// can never be `.`, `..`, a hidden file or one of the store's `.tmp` files.
///
/// Tokens come from three places:
/// - [`Etag::from_header`] turns an HTTP `ETag` header value into a token;
/// - [`Etag::from_digest`] makes the content address used when there is no ETag;
/// - [`str::parse`] accepts an existing token and rejects anything else.
///
/// ```
/// use materia_core::landing::Etag;
/// let tag: Etag = "5e2a9f".parse()?;
/// assert_eq!(tag.as_str(), "5e2a9f");
/// assert!("../x".parse::<Etag>().is_err());
/// # Ok::<(), materia_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Etag(String);

impl Etag {
    /// The token as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The content address: the SHA-256 of the uncompressed content, in hex.
    ///
    /// ```
    /// use materia_core::landing::{Etag, Sha256Digest};
    /// let tag = Etag::from_digest(&Sha256Digest::of(b"a,b\n1,2\n"));
    /// assert_eq!(tag.as_str().len(), 64);
    /// ```
    pub fn from_digest(digest: &Sha256Digest) -> Self {
        Etag(digest.to_string())
    }

    /// Whether `token` has the form of a content address (64 lowercase hex
    /// digits). Only [`Etag::from_digest`] makes such tokens: a server's ETag of
    /// that form is mapped by [`Etag::from_header`], and the store refuses one
    /// that is not the content's SHA-256, so a restore can check every
    /// content-addressed file against its name.
    ///
    /// ```
    /// use materia_core::landing::Etag;
    /// assert!(Etag::looks_content_addressed(&"ab".repeat(32)));
    /// assert!(!Etag::looks_content_addressed("5e2a9f"));
    /// ```
    pub fn looks_content_addressed(token: &str) -> bool {
        token.len() == 64
            && token
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// Whether this token is a content address (see [`Etag::looks_content_addressed`]).
    pub fn is_content_address(&self) -> bool {
        Etag::looks_content_addressed(&self.0)
    }

    /// Turns an HTTP `ETag` header value into a token — the one way a server's
    /// words become part of a path.
    ///
    /// Surrounding whitespace, a weak `W/` prefix and the surrounding quotes are
    /// stripped. What remains is kept as is when it is a valid token. Anything
    /// else — slashes, `..`, spaces, control bytes, non-ASCII, a leading dot, more
    /// than 128 bytes, or 64 lowercase hex digits (the form of a content address,
    /// which must stay distinct) — is **mapped**, never rejected: it becomes `x-` followed by
    /// the SHA-256 (hex) of the stripped value. The mapping is deterministic, so
    /// the same header always gives the same token and conditional requests keep
    /// working, and nothing the server sends can reach the path. An empty value
    /// (`""`, `W/""`) is no ETag at all: `None`, and the store falls back to the
    /// content address.
    ///
    /// ```
    /// use materia_core::landing::Etag;
    /// assert_eq!(Etag::from_header(b"W/\"5e2a-9f\"").unwrap().as_str(), "5e2a-9f");
    /// let hostile = Etag::from_header(b"\"../../etc/passwd\"").unwrap();
    /// assert!(hostile.as_str().starts_with("x-") && !hostile.as_str().contains('/'));
    /// assert_eq!(Etag::from_header(b"\"\""), None);
    /// let hex = "ab".repeat(32);
    /// assert!(Etag::from_header(hex.as_bytes()).unwrap().as_str().starts_with("x-"));
    /// ```
    pub fn from_header(value: &[u8]) -> Option<Etag> {
        let mut v = value.trim_ascii();
        if let Some(rest) = v.strip_prefix(b"W/") {
            v = rest;
        }
        if v.len() >= 2 && v.starts_with(b"\"") && v.ends_with(b"\"") {
            v = &v[1..v.len() - 1];
        }
        if v.is_empty() {
            return None;
        }
        match std::str::from_utf8(v)
            .ok()
            .filter(|s| token_ok(s) && !Etag::looks_content_addressed(s))
        {
            Some(s) => Some(Etag(s.to_owned())),
            None => Some(Etag(format!("x-{}", Sha256Digest::of(v)))),
        }
    }
}

fn token_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ETAG_LEN
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl FromStr for Etag {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if token_ok(s) {
            Ok(Etag(s.to_owned()))
        } else {
            Err(invalid(
                "etag",
                s,
                "must be 1 to 128 characters of A-Z a-z 0-9 . _ - not starting with '.'",
            ))
        }
    }
}

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The address of one landed file: `{dataset}/{year}/{month}/{etag}.csv.gzip`.
///
/// ```
/// use materia_core::landing::LandingKey;
/// let key: LandingKey = "psd/2026/11/5e2a9f.csv.gzip".parse()?;
/// assert_eq!(key.year.get(), 2026);
/// assert_eq!(key.to_string(), "psd/2026/11/5e2a9f.csv.gzip");
/// assert!("psd/2026/1/5e2a9f.csv.gzip".parse::<LandingKey>().is_err()); // not canonical
/// assert!("psd/2026/11/../x.csv.gzip".parse::<LandingKey>().is_err());
/// # Ok::<(), materia_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LandingKey {
    /// The dataset, e.g. `psd`.
    pub dataset: Dataset,
    /// The year the release was fetched in (UTC), or the archive's year.
    pub year: Year,
    /// The month the release was fetched in (UTC), or the archive's month.
    pub month: Month,
    /// The release's etag token.
    pub etag: Etag,
}

impl LandingKey {
    /// The landing key of a bucket object: `object_key` must be `prefix/` followed
    /// by a valid key, nothing else. Object names are untrusted input (`restore`
    /// reads them from a listing); anything that does not parse is an error that
    /// names it.
    ///
    /// ```
    /// use materia_core::landing::LandingKey;
    /// let key = LandingKey::from_object_key("landing", "landing/psd/2026/11/abc.csv.gzip")?;
    /// assert_eq!(key.to_string(), "psd/2026/11/abc.csv.gzip");
    /// assert!(LandingKey::from_object_key("landing", "landing/psd/2026/11/../../../etc/x.csv.gzip").is_err());
    /// assert!(LandingKey::from_object_key("landing", "other/psd/2026/11/abc.csv.gzip").is_err());
    /// # Ok::<(), materia_core::Error>(())
    /// ```
    pub fn from_object_key(prefix: &str, object_key: &str) -> Result<LandingKey, Error> {
        let prefix = prefix.trim_matches('/');
        let rest = if prefix.is_empty() {
            Some(object_key)
        } else {
            object_key
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('/'))
        };
        match rest {
            Some(rest) => rest.parse(),
            None => Err(invalid(
                "object key",
                object_key,
                format!("not under the prefix {prefix:?}"),
            )),
        }
    }

    /// The key's path relative to the store root.
    ///
    /// ```
    /// use materia_core::landing::LandingKey;
    /// let key: LandingKey = "psd/2026/11/abc.csv.gzip".parse()?;
    /// assert_eq!(key.relative_path(), std::path::Path::new("psd/2026/11/abc.csv.gzip"));
    /// # Ok::<(), materia_core::Error>(())
    /// ```
    pub fn relative_path(&self) -> PathBuf {
        let mut p = self.month_dir();
        p.push(self.file_name());
        p
    }

    /// The directory that holds the file, relative to the store root.
    pub fn month_dir(&self) -> PathBuf {
        [
            self.dataset.as_str(),
            &self.year.to_string(),
            &self.month.to_string(),
        ]
        .iter()
        .collect()
    }

    /// The file's name: `{etag}.csv.gzip`.
    pub fn file_name(&self) -> String {
        format!("{}{SUFFIX}", self.etag)
    }
}

impl fmt::Display for LandingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}{SUFFIX}",
            self.dataset, self.year, self.month, self.etag
        )
    }
}

/// Parses a number that must be written with exactly `width` ASCII digits.
fn fixed_digits(s: &str, width: usize, what: &'static str) -> Result<i64, Error> {
    if s.len() != width || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(what, s, format!("must be exactly {width} digits")));
    }
    s.parse()
        .map_err(|_| invalid(what, s, format!("must be exactly {width} digits")))
}

impl FromStr for LandingKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        let [dataset, year, month, file] = parts[..] else {
            return Err(invalid(
                "landing key",
                s,
                "expected {dataset}/{year}/{month}/{etag}.csv.gzip",
            ));
        };
        let etag = file
            .strip_suffix(SUFFIX)
            .ok_or_else(|| invalid("landing key", s, "file name must end in .csv.gzip"))?;
        Ok(LandingKey {
            dataset: dataset.parse()?,
            year: Year::new(fixed_digits(year, 4, "year")?)?,
            month: Month::new(fixed_digits(month, 2, "month")?)?,
            etag: etag.parse()?,
        })
    }
}

impl TryFrom<&Path> for LandingKey {
    type Error = Error;

    /// Parses a relative path such as `psd/2026/11/abc.csv.gzip`.
    fn try_from(path: &Path) -> Result<Self, Error> {
        let shown = path.to_string_lossy();
        let mut parts = Vec::with_capacity(4);
        for component in path.components() {
            match component {
                Component::Normal(part) => parts
                    .push(part.to_str().ok_or_else(|| {
                        invalid("landing key", &shown, "path is not valid UTF-8")
                    })?),
                _ => {
                    return Err(invalid(
                        "landing key",
                        &shown,
                        "must be a relative path of plain names",
                    ));
                }
            }
        }
        parts.join("/").parse()
    }
}

impl serde::Serialize for LandingKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for LandingKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_stripped_or_mapped() {
        let tag = |v: &[u8]| Etag::from_header(v).map(|t| t.0);
        assert_eq!(tag(b"\"abc\""), Some("abc".into()));
        assert_eq!(tag(b" W/\"abc\" "), Some("abc".into()));
        assert_eq!(tag(b"abc"), Some("abc".into()));
        assert_eq!(tag(b""), None);
        assert_eq!(tag(b"W/\"\""), None);
        for hostile in [
            &b"\"a/b\""[..],
            b"..",
            b"\".hidden\"",
            b"a b",
            b"a\0b",
            b"\xff\xfe",
            "caf\u{e9}".as_bytes(),
            &[b'a'; 129],
        ] {
            let t = tag(hostile).expect("mapped");
            assert!(t.starts_with("x-") && t.len() == 66, "{t}");
            assert_eq!(tag(hostile), Some(t), "mapping is deterministic");
        }
        assert_eq!(tag(&[b'a'; 128]), Some("a".repeat(128)));
    }

    #[test]
    fn non_canonical_and_hostile_keys_are_rejected() {
        for bad in [
            "",
            "psd",
            "psd/2026/11",
            "psd/2026/11/x.csv",
            "psd/2026/11/.csv.gzip",
            "psd/2026/11/.tmp.csv.gzip",
            "psd/26/11/x.csv.gzip",
            "psd/2026/1/x.csv.gzip",
            "psd/2026/13/x.csv.gzip",
            "psd/2026/00/x.csv.gzip",
            "psd/1899/01/x.csv.gzip",
            "psd/+202/01/x.csv.gzip",
            "PSD/2026/11/x.csv.gzip",
            "/psd/2026/11/x.csv.gzip",
            "psd/2026/11/x.csv.gzip/",
            "psd//2026/11/x.csv.gzip",
            "psd/2026/11/a/b.csv.gzip",
            "../2026/11/x.csv.gzip",
        ] {
            assert!(bad.parse::<LandingKey>().is_err(), "{bad:?} was accepted");
        }
        assert!(LandingKey::try_from(Path::new("/psd/2026/11/x.csv.gzip")).is_err());
        assert!(LandingKey::try_from(Path::new("./psd/2026/11/x.csv.gzip")).is_err());
        let key = LandingKey::try_from(Path::new("psd/2026/11/x.csv.gzip")).expect("valid");
        assert_eq!(key.relative_path(), Path::new("psd/2026/11/x.csv.gzip"));
    }

    #[test]
    fn errors_name_the_thing_and_stay_short() {
        let err = "psd/2026/13/x.csv.gzip"
            .parse::<LandingKey>()
            .expect_err("month 13");
        assert!(err.to_string().contains("month"), "{err}");
        let long = "a".repeat(10_000);
        let err = long.parse::<Dataset>().expect_err("too long");
        assert!(err.to_string().len() < 300, "{err}");
    }
}
