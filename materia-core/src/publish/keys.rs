//! The keys `publish` writes under its prefix, as patterns: what it may
//! delete (`keep`) and reuse is only what matches them. A manifest in the
//! bucket is input like any other — one naming `latest.json`, or a key
//! outside `data/`, must never get it deleted.

use super::manifest::Manifest;
use crate::landing::Sha256Digest;

/// `data/{table}/{sha256}.parquet`: a Parquet file, named by its content.
pub(crate) fn data_path(table: &str, sha256: &Sha256Digest) -> String {
    format!("data/{table}/{sha256}.parquet")
}

/// The table and digest of a data file's key, when it has the shape
/// [`data_path`] makes: one segment for the table (not hidden, no `/`) and
/// 64 lowercase hex digits.
pub(crate) fn parse_data_path(path: &str) -> Option<(&str, Sha256Digest)> {
    let rest = path.strip_prefix("data/")?;
    let (table, file) = rest.split_once('/')?;
    let sha = file.strip_suffix(".parquet")?.parse().ok()?;
    (segment(table) && !file.contains('/')).then_some((table, sha))
}

/// `manifests/{build}.{first 16 hex of the manifest's SHA-256}.json`: a
/// manifest's key.
pub(crate) fn manifest_key(m: &Manifest) -> String {
    let digest = Sha256Digest::of(&m.to_bytes()).to_string();
    format!("manifests/{}.{}.json", m.build, &digest[..16])
}

/// Whether `path` is a manifest's key: `manifests/{build}.{16 hex}.json`.
pub(crate) fn is_manifest_path(path: &str) -> bool {
    let Some(stem) = path
        .strip_prefix("manifests/")
        .and_then(|name| name.strip_suffix(".json"))
    else {
        return false;
    };
    let Some((build, digest)) = stem.rsplit_once('.') else {
        return false;
    };
    segment(build)
        && digest.len() == 16
        && digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One key segment Materia could have written: not empty, not hidden (so
/// neither `.` nor `..`), no `/`, no control character.
fn segment(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('.') && !s.contains('/') && !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_content_addressed_keys_match() {
        let sha = Sha256Digest::of(b"x");
        let path = data_path("raw.psd_changes", &sha);
        assert_eq!(parse_data_path(&path), Some(("raw.psd_changes", sha)));
        for other in [
            "latest.json".to_owned(),
            format!("data/{sha}.parquet"),
            format!("data/../{sha}.parquet"),
            format!("data/a/b/{sha}.parquet"),
            format!("data/t/{}.parquet", sha.to_string().to_uppercase()),
            format!("data/t/{sha}.parquet.x"),
            format!("manifests/t/{sha}.parquet"),
            "data/t/x.parquet".to_owned(),
        ] {
            assert_eq!(parse_data_path(&other), None, "{other}");
        }
        assert!(is_manifest_path(
            "manifests/3-abcdef01.0123456789abcdef.json"
        ));
        for other in [
            "latest.json",
            "manifests/latest.json",
            "manifests/3-abcdef01.0123456789abcdeF.json",
            "manifests/3-abcdef01.0123456789abcde.json",
            "manifests/.0123456789abcdef.json",
            "manifests/a/b.0123456789abcdef.json",
            "data/3-abcdef01.0123456789abcdef.json",
        ] {
            assert!(!is_manifest_path(other), "{other}");
        }
    }
}
