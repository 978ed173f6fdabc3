//! Requests `object_store` does not make, signed by its own SigV4 signer:
//!
//! - a listing that does not trust the bucket's keys. `object_store` parses
//!   every listed key into its `Path` and fails the whole listing on one it
//!   refuses (`..`, `.`, an empty segment, a control byte). A bucket is
//!   shared, hostile input: one such object must not stop `restore`,
//!   `mirror --full` or `mirror --verify`. So when `object_store`'s listing
//!   fails on a key, the bucket is listed again here — `ListObjectsV2` with
//!   `encoding-type=url` — and every key comes back as text, for the caller
//!   to accept or refuse one by one ([`Bucket::list_all`]);
//! - a HEAD asking for the checksum the server keeps (`publish`);
//! - any other request to the bucket itself (`create.rs`: making it).

use std::time::Duration;

use base64::Engine;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;
use object_store::path::Path;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::connect::Bucket;
use crate::landing::Sha256Digest;

/// What a key's bytes become in a request path: all but the unreserved
/// characters and `/` percent-encoded (as `object_store` does).
const PATH_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// What the server keeps of an object's SHA-256 ([`Raw::stored_sha256`]).
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "publish"), allow(dead_code))]
pub(crate) enum Stored {
    /// There is no such object.
    Missing,
    /// It is there; the server keeps no SHA-256 of the whole of it.
    Unknown,
    /// It is there, with this SHA-256.
    Sha256(Sha256Digest),
    /// It is there with another checksum of the whole object (CRC32,
    /// CRC64NVME: what SDKs send by default) and no SHA-256 — not written
    /// by Materia, which always sends SHA-256.
    Other,
}

/// One listed object, its key as the bucket has it.
#[derive(Clone, Debug)]
pub(crate) struct Listed {
    /// The key, verbatim (percent-decoded when the server encoded it).
    pub key: String,
    /// The key as an `object_store` path, when it is one.
    pub location: Option<Path>,
    /// Size in bytes.
    pub size: u64,
    /// When it was last written, per the server.
    pub last_modified: Option<jiff::Timestamp>,
}

impl Listed {
    /// The key made safe to print: control and non-ASCII characters escaped.
    pub fn shown(&self) -> String {
        shown(&self.key)
    }
}

/// `key` with control characters escaped, so a hostile key cannot drive the
/// terminal it is printed on.
pub(crate) fn shown(key: &str) -> String {
    key.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

impl From<object_store::ObjectMeta> for Listed {
    fn from(meta: object_store::ObjectMeta) -> Self {
        Listed {
            key: meta.location.to_string(),
            last_modified: jiff::Timestamp::new(
                meta.last_modified.timestamp(),
                meta.last_modified.timestamp_subsec_nanos() as i32,
            )
            .ok(),
            location: Some(meta.location),
            size: meta.size,
        }
    }
}

/// Raw signed requests to a bucket ([`Bucket::raw`]).
pub(crate) struct Raw<'a> {
    bucket: &'a Bucket,
}

impl Bucket {
    /// Raw signed requests to this bucket.
    pub(crate) fn raw(&self) -> Raw<'_> {
        Raw { bucket: self }
    }

    /// Every object under the prefix. `object_store` fails a whole listing on
    /// one key it refuses (or a listing its XML parser cannot read); then the
    /// bucket is listed raw (see [`Raw::list`]) so that the caller can skip that
    /// key alone. When both fail, the first error is the one reported.
    pub(crate) async fn list_all(&self) -> crate::error::Result<Vec<Listed>> {
        let listed: std::result::Result<Vec<object_store::ObjectMeta>, _> =
            self.s3.list(Some(&self.prefix)).try_collect().await;
        let error = match listed {
            Ok(objects) => return Ok(objects.into_iter().map(Listed::from).collect()),
            Err(e) => e,
        };
        match self.raw().list(self.prefix.as_ref()).await {
            Ok(objects) => {
                tracing::warn!("object_store could not list the bucket ({error}); listed it raw");
                Ok(objects)
            }
            Err(raw_error) => {
                tracing::debug!("the raw listing failed too: {raw_error}");
                Err(self.failed("listing: ", error))
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListBucketResult {
    #[serde(default)]
    contents: Vec<Contents>,
    #[serde(default)]
    is_truncated: bool,
    next_continuation_token: Option<String>,
    encoding_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Contents {
    key: String,
    size: u64,
    last_modified: Option<String>,
}

impl Raw<'_> {
    /// An HTTP client (no redirects) and the S3 client's credential; plain
    /// HTTP only when allowed.
    async fn client(&self) -> Result<(reqwest::Client, std::sync::Arc<AwsCredential>), String> {
        if !self.bucket.allow_http && self.bucket.endpoint.starts_with("http://") {
            return Err("refusing plain HTTP (AWS_ALLOW_HTTP is not set)".into());
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let credential = self
            .bucket
            .s3
            .credentials()
            .get_credential()
            .await
            .map_err(|e| e.to_string())?;
        Ok((client, credential))
    }

    /// One signed request to `{endpoint}/{bucket}{path}` (`path` empty or
    /// starting with `/`) with `headers` and `body`: its status and body text.
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<(u16, String), String> {
        let response = self.request(method, path, headers, body).await?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, text))
    }

    /// The SHA-256 the server keeps of the whole object at `key`, asked with
    /// `x-amz-checksum-mode: ENABLED`. R2 and S3 keep the
    /// `x-amz-checksum-sha256` a single PUT sent; a multipart upload's is a
    /// checksum of checksums, and some servers keep none (moto, unless the
    /// upload names the algorithm the SDKs' way).
    #[cfg_attr(not(feature = "publish"), allow(dead_code))]
    pub(crate) async fn stored_sha256(&self, key: &str) -> Result<Stored, String> {
        let path = format!("/{}", utf8_percent_encode(key, PATH_ENCODE));
        let ask = [("x-amz-checksum-mode", "ENABLED".to_owned())];
        let response = self.request("HEAD", &path, &ask, Vec::new()).await?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(Stored::Missing);
        }
        if !status.is_success() {
            return Err(format!("HEAD {key} answered {status}"));
        }
        let headers = response.headers();
        let whole = headers
            .get("x-amz-checksum-type")
            .is_none_or(|t| t == "FULL_OBJECT");
        let digest = headers
            .get("x-amz-checksum-sha256")
            .filter(|_| whole)
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
        if let Some(d) = digest {
            return Ok(Stored::Sha256(Sha256Digest::from_bytes(d)));
        }
        let other = ["crc32", "crc32c", "crc64nvme", "sha1"]
            .iter()
            .any(|a| headers.contains_key(format!("x-amz-checksum-{a}").as_str()));
        Ok(if whole && other {
            Stored::Other
        } else {
            Stored::Unknown
        })
    }

    /// One signed request (see [`Raw::send`]): the response.
    async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<reqwest::Response, String> {
        let (client, credential) = self.client().await?;
        let url = format!("{}{path}", self.base());
        let signed = self.sign(&credential, method, &url, headers, body.clone())?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        client
            .request(method, &url)
            .headers(signed)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))
    }

    /// `{endpoint}/{bucket}`: the bucket's URL, path-style.
    fn base(&self) -> String {
        let endpoint = self.bucket.endpoint.trim_end_matches('/');
        format!("{endpoint}/{}", self.bucket.name)
    }

    /// The headers of `method url` with `headers` and `body`, signed (SigV4)
    /// with `credential`.
    fn sign(
        &self,
        credential: &AwsCredential,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<http::HeaderMap, String> {
        let mut builder = http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let mut request = builder
            .body(HttpRequestBody::from(body))
            .map_err(|e| e.to_string())?;
        AwsAuthorizer::new(credential, "s3", &self.bucket.region)
            .try_authorize(&mut request, None)
            .map_err(|e| e.to_string())?;
        Ok(request.headers().clone())
    }

    /// Every object under `prefix/`, page by page.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<Listed>, String> {
        let (client, credential) = self.client().await?;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url =
                reqwest::Url::parse(&self.base()).map_err(|e| format!("bad endpoint: {e}"))?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("list-type", "2");
                q.append_pair("encoding-type", "url");
                if !prefix.is_empty() {
                    q.append_pair("prefix", &format!("{prefix}/"));
                }
                if let Some(t) = &token {
                    q.append_pair("continuation-token", t);
                }
            }
            let signed = self.sign(&credential, "GET", url.as_str(), &[], Vec::new())?;
            let response = client
                .get(url.clone())
                .headers(signed)
                .send()
                .await
                .map_err(|e| format!("listing failed: {e}"))?;
            let status = response.status();
            let body = response.text().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                let head: String = body.chars().take(200).collect();
                return Err(format!("listing answered {status}: {head}"));
            }
            let page: ListBucketResult =
                quick_xml::de::from_str(&body).map_err(|e| format!("bad listing: {e}"))?;
            let encoded = page.encoding_type.as_deref() == Some("url");
            for c in page.contents {
                let key = if encoded {
                    percent_encoding::percent_decode_str(&c.key)
                        .decode_utf8_lossy()
                        .into_owned()
                } else {
                    c.key
                };
                out.push(Listed {
                    location: Path::parse(&key).ok(),
                    last_modified: c.last_modified.and_then(|t| t.parse().ok()),
                    size: c.size,
                    key,
                });
            }
            match (page.is_truncated, page.next_continuation_token) {
                (true, Some(next)) => token = Some(next),
                _ => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn control_bytes_are_escaped_for_the_terminal() {
        assert_eq!(shown("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(shown("psd/2026/01/x.csv.gzip"), "psd/2026/01/x.csv.gzip");
    }
}
