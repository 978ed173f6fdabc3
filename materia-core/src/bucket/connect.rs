//! [`Bucket`]: a connected bucket prefix — the S3 client, the runtime its
//! requests run on, and where it points.

use std::time::Duration;

use object_store::RetryConfig;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, Checksum};
use object_store::path::Path;

use super::config::{BucketConfig, INSTANCE_METADATA_VAR};
use super::error::Operation;
use crate::error::{Error, RemoteKind, Result};

/// A bucket prefix, connected: the S3 client, the runtime its requests run
/// on (two worker threads) and what the raw requests of `raw.rs` need.
/// Its errors are its operation's ([`Operation`]).
pub(crate) struct Bucket {
    pub s3: AmazonS3,
    /// The prefix, as `object_store` parsed it.
    pub prefix: Path,
    /// `config.url`: what errors name.
    pub url: String,
    /// Endpoint, bucket and prefix: the same bucket name on another endpoint
    /// is another bucket (the mirror keeps its record of uploads per identity).
    pub identity: String,
    /// `https://host[:port]`, path-style (as `object_store` is configured).
    pub endpoint: String,
    /// The bucket's name.
    pub name: String,
    pub region: String,
    pub allow_http: bool,
    operation: Operation,
    /// Always `Some` until dropped (see the `Drop` impl).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Bucket {
    fn drop(&mut self) {
        // Dropping a runtime inside async code panics; shutting it down in the
        // background never does.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Bucket {
    /// The client for `config.url` (`s3://bucket/prefix`), with the endpoint,
    /// keys and retries of `config` (else the environment's `AWS_*`), and a
    /// request timeout that lets `largest_request` bytes through at 128 KiB/s;
    /// no request is made.
    pub(crate) fn connect(
        config: &BucketConfig,
        operation: Operation,
        largest_request: u64,
    ) -> Result<Bucket> {
        let url = config.url.clone();
        let refuse = |kind, reason: String| operation.error(&url, kind, reason, None);
        let (name, prefix) = parse_url(&url).map_err(|e| refuse(RemoteKind::Config, e))?;
        let builder = builder(config, &name, largest_request);
        let region = builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        // object_store panics signing for an endpoint that is not a URI.
        if !reqwest::Url::parse(&endpoint)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        {
            return Err(refuse(
                RemoteKind::Config,
                format!(
                    "the endpoint {endpoint:?} (AWS_ENDPOINT) is not an http(s) URL: \
                     set it to e.g. https://ACCOUNT_ID.r2.cloudflarestorage.com"
                ),
            ));
        }
        if let Some(problem) = credentials_problem(&builder, instance_metadata(config)) {
            return Err(refuse(RemoteKind::Config, problem));
        }
        let allow_http = builder
            .get_config_value(&AmazonS3ConfigKey::Client(
                object_store::ClientConfigKey::AllowHttp,
            ))
            .is_some_and(|v| v == "true");
        let identity = format!("{} s3://{name}/{prefix}", endpoint.trim_end_matches('/'));
        let s3 = builder
            .build()
            .map_err(|e| operation.store_error(&url, "", e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| refuse(RemoteKind::Other, format!("cannot start a runtime: {e}")))?;
        Ok(Bucket {
            s3,
            prefix,
            url,
            identity,
            endpoint,
            name,
            region,
            allow_http,
            operation,
            runtime: Some(runtime),
        })
    }

    /// Runs `future` to completion on the bucket's own runtime. Callers have
    /// moved off any other runtime first (`crate::blocking::off_runtime`).
    pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        let Some(runtime) = &self.runtime else {
            unreachable!("the runtime lives as long as the bucket")
        };
        runtime.block_on(future)
    }

    /// An error that is not the S3 client's: a bad setting, a refusal.
    pub(crate) fn refuse(&self, kind: RemoteKind, reason: impl std::fmt::Display) -> Error {
        self.operation.error(&self.url, kind, reason, None)
    }

    /// The S3 client's error, classified; `context` (which object or part)
    /// goes before its text.
    pub(crate) fn failed(&self, context: impl std::fmt::Display, e: object_store::Error) -> Error {
        self.operation.store_error(&self.url, context, e)
    }
}

/// `s3://bucket/prefix`: the bucket's name and the prefix.
fn parse_url(url: &str) -> std::result::Result<(String, Path), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let name = match parsed.host_str() {
        Some(name) if parsed.scheme() == "s3" && !name.is_empty() => name.to_owned(),
        _ => return Err("expected s3://bucket/prefix".into()),
    };
    let prefix =
        Path::parse(parsed.path().trim_matches('/')).map_err(|e| format!("bad prefix: {e}"))?;
    Ok((name, prefix))
}

/// The client's settings: the environment's, then `config`'s; SHA-256
/// checksums on every PUT; retries; a timeout for `largest_request`.
fn builder(config: &BucketConfig, name: &str, largest_request: u64) -> AmazonS3Builder {
    let retry = RetryConfig {
        max_retries: config.retries,
        retry_timeout: Duration::from_secs(180),
        ..RetryConfig::default()
    };
    // object_store's default request timeout (30 s) fails a 64 MiB PUT
    // below ~2 MB/s: allow the largest single request at 128 KiB/s.
    let timeout_secs = (largest_request / (128 * 1024)).clamp(60, 3600);
    let mut builder = builder_from_env()
        .with_url(format!("s3://{name}"))
        .with_checksum_algorithm(Checksum::SHA256)
        .with_config(
            AmazonS3ConfigKey::Client(object_store::ClientConfigKey::Timeout),
            format!("{timeout_secs}s"),
        )
        .with_retry(retry);
    if let Some(v) = &config.endpoint {
        builder = builder.with_endpoint(v);
    }
    if let Some(v) = &config.region {
        builder = builder.with_region(v);
    }
    if let Some(v) = &config.access_key_id {
        builder = builder.with_access_key_id(v);
    }
    if let Some(v) = &config.secret_access_key {
        builder = builder.with_secret_access_key(v);
    }
    if let Some(v) = config.allow_http {
        builder = builder.with_allow_http(v);
    }
    builder
}

/// Whether `config` (else [`INSTANCE_METADATA_VAR`]) lets a bucket without
/// keys use the EC2 instance's role.
fn instance_metadata(config: &BucketConfig) -> bool {
    config.instance_metadata.unwrap_or_else(|| {
        std::env::var(INSTANCE_METADATA_VAR)
            .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true"))
    })
}

/// Why the client would have no credentials of its own — a key without its
/// secret, or no keys at all — naming what to set; `None` when it has them
/// (keys, a web identity, a container's credentials), signs nothing, or may
/// ask the instance-metadata endpoint (`instance_metadata`). Without this,
/// `object_store` falls back to `169.254.169.254` and fails there with an
/// error that names neither the bucket's settings nor the keys.
fn credentials_problem(builder: &AmazonS3Builder, instance_metadata: bool) -> Option<String> {
    use AmazonS3ConfigKey as K;
    let set = |key: K| builder.get_config_value(&key).is_some();
    match (set(K::AccessKeyId), set(K::SecretAccessKey)) {
        (true, true) => return None,
        (true, false) => {
            return Some("AWS_ACCESS_KEY_ID is set but not AWS_SECRET_ACCESS_KEY: set both".into());
        }
        (false, true) => {
            return Some("AWS_SECRET_ACCESS_KEY is set but not AWS_ACCESS_KEY_ID: set both".into());
        }
        (false, false) => {}
    }
    let explicit = builder
        .get_config_value(&K::SkipSignature)
        .is_some_and(|v| v == "true")
        || (set(K::WebIdentityTokenFile) && set(K::RoleArn))
        || set(K::ContainerCredentialsRelativeUri)
        || (set(K::ContainerCredentialsFullUri) && set(K::ContainerAuthorizationTokenFile));
    if explicit || instance_metadata {
        return None;
    }
    Some(format!(
        "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (for the materia \
         service, in the r2 credential /etc/materia/r2.env, which systemd passes as \
         $CREDENTIALS_DIRECTORY/r2), or {INSTANCE_METADATA_VAR}=1 to use the EC2 instance's role"
    ))
}

/// `AmazonS3Builder::from_env`, except that a variable set to the empty string
/// (or only spaces) counts as unset: old `materia.env` files shipped
/// `AWS_ACCESS_KEY_ID=`, and an empty key must not hide the `r2` credential
/// nor be signed with.
fn builder_from_env() -> AmazonS3Builder {
    let mut builder = AmazonS3Builder::new();
    for (key, value) in std::env::vars_os() {
        if let (Some(key), Some(value)) = (key.to_str(), value.to_str())
            && key.starts_with("AWS_")
            && !value.trim().is_empty()
            && let Ok(config) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>()
        {
            builder = builder.with_config(config, value);
        }
    }
    builder
}

#[cfg(test)]
mod tests {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};

    use super::{credentials_problem, parse_url};

    #[test]
    fn a_bucket_without_keys_is_refused_unless_another_source_is_explicit() {
        let none = AmazonS3Builder::new();
        let problem = credentials_problem(&none, false).expect("refused");
        for name in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "r2",
            "MATERIA_S3_INSTANCE_METADATA",
        ] {
            assert!(problem.contains(name), "{name}: {problem}");
        }
        assert_eq!(credentials_problem(&none, true), None, "opted in");
        let keys = AmazonS3Builder::new()
            .with_access_key_id("k")
            .with_secret_access_key("s");
        assert_eq!(credentials_problem(&keys, false), None);
        let half = AmazonS3Builder::new().with_access_key_id("k");
        assert!(
            credentials_problem(&half, false).is_some_and(|p| p.contains("AWS_SECRET_ACCESS_KEY")),
        );
        let unsigned = AmazonS3Builder::new().with_skip_signature(true);
        assert_eq!(credentials_problem(&unsigned, false), None);
        let web = AmazonS3Builder::new()
            .with_config(AmazonS3ConfigKey::WebIdentityTokenFile, "/t")
            .with_config(AmazonS3ConfigKey::RoleArn, "arn:aws:iam::1:role/r");
        assert_eq!(credentials_problem(&web, false), None);
    }

    #[test]
    fn only_s3_urls_with_a_bucket_are_accepted() {
        let (name, prefix) = parse_url("s3://materia-raw/landing/").expect("valid");
        assert_eq!((name.as_str(), prefix.as_ref()), ("materia-raw", "landing"));
        assert_eq!(parse_url("s3://b").expect("valid").1.as_ref(), "");
        for bad in ["https://example.com/x", "s3:///x", "not a url"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
