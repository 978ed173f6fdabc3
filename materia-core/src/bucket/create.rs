//! `materia mirror --create-bucket`: the bucket made when it is missing, then
//! checked fit for the mirror — a second conditional create of one object must
//! be refused (the mirror never overwrites), and a wrong checksum should be.
//!
//! The probe objects go to `{bucket}/.materia-probe/`, beside the landing
//! prefix, not under it: a bucket lock on the landing prefix refuses their
//! deletion, and a probe left there would be refused by every restore (and
//! fail every drill). Probes left under the prefix by earlier versions are
//! recognised by their names ([`is_probe`]) and skipped by restore.

use base64::Engine;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::connect::Bucket;
use crate::error::{RemoteKind, Result};

/// What creating the bucket found and did (`materia mirror --create-bucket`,
/// the mirror's `Mirror::create_bucket`).
///
/// ```
/// let report = materia_core::bucket::BucketReport { bucket: "materia-raw".into(), created: true, conditional_create: true, checksum_verified: false };
/// assert_eq!(serde_json::to_value(&report).unwrap()["created"], true);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BucketReport {
    /// The bucket.
    pub bucket: String,
    /// It was missing and is made now (else it was there: nothing changed).
    pub created: bool,
    /// A second `If-None-Match: *` PUT of the same key was refused (always
    /// true in a report: a bucket that does not is an error).
    pub conditional_create: bool,
    /// A PUT with a wrong `x-amz-checksum-sha256` was refused (R2 and S3 do;
    /// some S3-compatible servers, moto among them, do not check).
    pub checksum_verified: bool,
}

/// The folder of the probe objects, at the root of the bucket.
const PROBE_DIR: &str = ".materia-probe";

/// Whether `relative` (an object key relative to the landing prefix) is one
/// of Materia's own probe objects: `.materia-probe/{nonce}` or
/// `.materia-probe/{nonce}.checksum`, the nonce in decimal digits. Earlier
/// versions wrote them under the landing prefix, and with the bucket root as
/// the prefix they are there still.
pub(crate) fn is_probe(relative: &str) -> bool {
    let Some(name) = relative
        .strip_prefix(PROBE_DIR)
        .and_then(|r| r.strip_prefix('/'))
    else {
        return false;
    };
    let nonce = name.strip_suffix(".checksum").unwrap_or(name);
    !nonce.is_empty() && nonce.bytes().all(|b| b.is_ascii_digit())
}

impl Bucket {
    /// Creates the bucket when it is missing (idempotent: an existing one is
    /// left as it is), then checks it with a probe object under
    /// `{bucket}/.materia-probe/` (outside the landing prefix): a conditional
    /// create must be honoured, or this fails ([`RemoteKind::Config`]) — the
    /// mirror's never-overwrite promise rests on it. The probe is removed (a
    /// bucket lock that refuses deletes there leaves it; it is never read).
    pub(crate) async fn create(&self) -> Result<BucketReport> {
        let created = self.make_if_missing().await?;
        let (conditional_create, checksum_verified) = self.probe().await?;
        Ok(BucketReport {
            bucket: self.name.clone(),
            created,
            conditional_create,
            checksum_verified,
        })
    }

    /// Makes the bucket unless it is there: whether it was made.
    async fn make_if_missing(&self) -> Result<bool> {
        let raw = self.raw();
        let bucket = &self.name;
        let (status, _) = raw
            .send("HEAD", "", &[], Vec::new())
            .await
            .map_err(|e| self.refuse(RemoteKind::Transient, format!("checking the bucket: {e}")))?;
        match status {
            200 => return Ok(false),
            404 => {}
            403 => {
                return Err(self.refuse(
                    RemoteKind::Auth,
                    format!(
                        "bucket {bucket} refuses these credentials (403): another account's, or a token without access"
                    ),
                ));
            }
            other => {
                return Err(self.refuse(
                    RemoteKind::Other,
                    format!("checking bucket {bucket} answered {other}"),
                ));
            }
        }
        // Outside us-east-1 (and R2's `auto`), S3 wants the region named.
        let body = if matches!(self.region.as_str(), "us-east-1" | "auto") {
            Vec::new()
        } else {
            format!(
                "<CreateBucketConfiguration><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.region
            )
            .into_bytes()
        };
        let (status, text) = raw
            .send("PUT", "", &[], body)
            .await
            .map_err(|e| self.refuse(RemoteKind::Transient, format!("creating the bucket: {e}")))?;
        match status {
            200 => Ok(true),
            409 if text.contains("BucketAlreadyOwnedByYou") => Ok(false),
            _ => {
                let head: String = text.chars().take(300).collect();
                let kind = if status == 403 {
                    RemoteKind::Auth
                } else {
                    RemoteKind::Config
                };
                Err(self.refuse(
                    kind,
                    format!("creating bucket {bucket} answered {status}: {head}"),
                ))
            }
        }
    }

    /// Writes a probe object twice with `If-None-Match: *`, and once with a
    /// wrong checksum: whether the second create was refused (else an error)
    /// and whether the wrong checksum was.
    async fn probe(&self) -> Result<(bool, bool)> {
        let nonce = jiff::Timestamp::now().as_nanosecond();
        let probe = Path::from_iter([PROBE_DIR.to_owned(), format!("{nonce}")]);
        let create = || PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        self.s3
            .put_opts(&probe, PutPayload::from_static(b"materia probe"), create())
            .await
            .map_err(|e| self.failed(format_args!("{probe}: "), e))?;
        let second = self
            .s3
            .put_opts(&probe, PutPayload::from_static(b"overwritten"), create())
            .await;
        let conditional_create = matches!(
            second,
            Err(object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. })
        );
        // A wrong checksum: a bucket that checks refuses it (400).
        let wrong = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"not this"));
        let checksummed = format!("/{probe}.checksum");
        let (status, _) = self
            .raw()
            .send(
                "PUT",
                &checksummed,
                &[("x-amz-checksum-sha256", wrong)],
                b"materia probe".to_vec(),
            )
            .await
            .map_err(|e| self.refuse(RemoteKind::Transient, format!("probing checksums: {e}")))?;
        let checksum_verified = (400..500).contains(&status);
        let _ = self.s3.delete(&probe).await;
        if !checksum_verified {
            let _ = self
                .s3
                .delete(&Path::from(checksummed.trim_start_matches('/')))
                .await;
        }
        if !conditional_create {
            return Err(self.refuse(
                RemoteKind::Config,
                format!(
                    "bucket {} does not honour conditional writes: a second `If-None-Match: *` PUT of {probe} was accepted, so the mirror could overwrite landed files (R2 and S3 honour them; so does moto)",
                    self.name
                ),
            ));
        }
        Ok((conditional_create, checksum_verified))
    }
}

#[cfg(test)]
mod tests {
    use super::is_probe;

    #[test]
    fn only_probe_names_are_probes() {
        assert!(is_probe(".materia-probe/1765096253123456789"));
        assert!(is_probe(".materia-probe/1765096253123456789.checksum"));
        for other in [
            ".materia-probe/",
            ".materia-probe/12a",
            ".materia-probe/12/3",
            ".materia-probe/.checksum",
            ".materia-probex/12",
            "psd/2026/01/x.csv.gzip",
            "x/.materia-probe/12",
        ] {
            assert!(!is_probe(other), "{other}");
        }
    }
}
