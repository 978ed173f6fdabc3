//! [`BucketConfig`]: where a bucket is and how to reach it.

/// Where a bucket prefix is and how to reach it: the connection settings the
/// mirror and `publish` share. Each operation has its own options on top
/// (the mirror's `MirrorOptions`, publish's `PublishOptions`), as
/// `object_store` keeps its `AmazonS3Builder` apart from its `PutOptions`.
///
/// Values left `None` come from the standard variables when connecting, as
/// `object_store`'s `AmazonS3Builder::from_env` reads them, except that a
/// variable set to the empty string counts as unset: `AWS_ENDPOINT` (R2:
/// `https://<account>.r2.cloudflarestorage.com`), `AWS_REGION` (`auto` for
/// R2), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`.
/// `Debug` never shows the secret.
///
/// Without keys, connecting fails naming the variables, before any request:
/// Materia's buckets (R2, S3-compatible servers) are reached with keys, and
/// `object_store` would otherwise ask the EC2 instance-metadata endpoint
/// (`169.254.169.254`) for credentials. A web identity token or a container's
/// credentials (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_CONTAINER_CREDENTIALS_*`)
/// and unsigned requests (`AWS_SKIP_SIGNATURE=true`) are explicit too; the
/// instance's role is used only when asked for
/// ([`instance_metadata`](BucketConfig::instance_metadata), else
/// [`INSTANCE_METADATA_VAR`]`=1`).
///
/// ```
/// use materia_core::bucket::BucketConfig;
/// let config = BucketConfig::new("s3://materia-raw/landing")
///     .with_endpoint("https://ACCOUNT_ID.r2.cloudflarestorage.com")
///     .with_region("auto")
///     .with_access_key_id("KEY_ID")
///     .with_secret_access_key("SECRET")
///     .with_retries(3);
/// assert_eq!(config.region.as_deref(), Some("auto"));
/// assert!(!format!("{config:?}").contains("SECRET"));
/// // Loopback servers (tests) speak plain HTTP, only when allowed.
/// let local = BucketConfig::new("s3://test/x").with_endpoint("http://127.0.0.1:9000").with_allow_http(true);
/// assert_eq!(local.allow_http, Some(true));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct BucketConfig {
    /// `s3://bucket/prefix`.
    pub url: String,
    /// The S3 endpoint.
    pub endpoint: Option<String>,
    /// The region.
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<String>,
    /// Allow `http://` endpoints (loopback tests).
    pub allow_http: Option<bool>,
    /// Retries of a failed request (5xx, 429, timeouts), with backoff.
    pub retries: usize,
    /// Without keys, take the credentials of the EC2 instance's role from
    /// the instance-metadata endpoint (else [`INSTANCE_METADATA_VAR`]; off
    /// unless it is `1` or `true`).
    pub instance_metadata: Option<bool>,
}

/// The variable that lets a bucket without keys use the EC2 instance's role
/// (`1` or `true`); see [`BucketConfig`].
///
/// ```
/// assert_eq!(materia_core::bucket::INSTANCE_METADATA_VAR, "MATERIA_S3_INSTANCE_METADATA");
/// ```
pub const INSTANCE_METADATA_VAR: &str = "MATERIA_S3_INSTANCE_METADATA";

impl Default for BucketConfig {
    /// No URL yet (connecting fails until one is set), everything else from
    /// the environment, 5 retries.
    ///
    /// ```
    /// let config = materia_core::bucket::BucketConfig::default();
    /// assert_eq!((config.url.as_str(), config.retries), ("", 5));
    /// ```
    fn default() -> Self {
        BucketConfig {
            url: String::new(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            allow_http: None,
            retries: 5,
            instance_metadata: None,
        }
    }
}

impl std::fmt::Debug for BucketConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketConfig")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("allow_http", &self.allow_http)
            .field("retries", &self.retries)
            .field("instance_metadata", &self.instance_metadata)
            .finish()
    }
}

/// The defaults for a URL.
///
/// ```
/// use materia_core::bucket::BucketConfig;
/// assert_eq!(BucketConfig::from("s3://materia-raw/landing"), BucketConfig::new("s3://materia-raw/landing"));
/// ```
impl From<&str> for BucketConfig {
    fn from(url: &str) -> Self {
        BucketConfig::new(url)
    }
}

/// The defaults for a URL.
impl From<String> for BucketConfig {
    fn from(url: String) -> Self {
        BucketConfig::new(url)
    }
}

/// The defaults for a URL.
impl From<&String> for BucketConfig {
    fn from(url: &String) -> Self {
        BucketConfig::new(url)
    }
}

impl BucketConfig {
    /// The defaults for `url` (`s3://bucket/prefix`): everything else from
    /// the environment, 5 retries.
    ///
    /// ```
    /// let config = materia_core::bucket::BucketConfig::new("s3://materia-raw/landing");
    /// assert_eq!((config.endpoint, config.retries), (None, 5));
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        BucketConfig {
            url: url.into(),
            ..BucketConfig::default()
        }
    }

    /// Sets the URL, `s3://bucket/prefix` (see the example on [`BucketConfig`]).
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Sets the endpoint (else `AWS_ENDPOINT`).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets the region (else `AWS_REGION`).
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets the access key id (else `AWS_ACCESS_KEY_ID`).
    pub fn with_access_key_id(mut self, id: impl Into<String>) -> Self {
        self.access_key_id = Some(id.into());
        self
    }

    /// Sets the secret access key (else `AWS_SECRET_ACCESS_KEY`).
    pub fn with_secret_access_key(mut self, secret: impl Into<String>) -> Self {
        self.secret_access_key = Some(secret.into());
        self
    }

    /// Allows (or refuses) `http://` endpoints (else `AWS_ALLOW_HTTP`).
    pub fn with_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = Some(allow);
        self
    }

    /// Sets the retries of a failed request.
    pub fn with_retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }

    /// Allows (or refuses) the EC2 instance's role as credentials when no
    /// keys are given (else [`INSTANCE_METADATA_VAR`]).
    ///
    /// ```
    /// let config = materia_core::bucket::BucketConfig::new("s3://b/p").with_instance_metadata(true);
    /// assert_eq!(config.instance_metadata, Some(true));
    /// ```
    pub fn with_instance_metadata(mut self, allow: bool) -> Self {
        self.instance_metadata = Some(allow);
        self
    }
}
