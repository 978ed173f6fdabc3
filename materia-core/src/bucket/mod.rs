//! The bucket: how to reach an S3-compatible bucket (Cloudflare R2) and what
//! every operation on one shares. The mirror (`mirror`: the landing zone
//! pushed and restored) and `publish` (the lakehouse as Parquet) both go
//! through here; neither reaches into the other.
//!
//! - [`BucketConfig`] (`config.rs`): the connection settings — URL, endpoint,
//!   keys, region, retries — apart from any operation's own options, as
//!   `object_store` keeps its `AmazonS3Builder` apart from its `PutOptions`.
//! - `Bucket` (`connect.rs`): the bucket connected — `object_store`'s S3
//!   client (SHA-256 checksums on every PUT, retries with backoff, a timeout
//!   fit for the largest request) and the tokio runtime its requests run on.
//! - `error.rs`: its failures as the operation's [`Error`](crate::Error)
//!   variant, with a [`RemoteKind`](crate::RemoteKind) a caller can match.
//! - `raw.rs`: signed requests `object_store` does not make — a listing that
//!   survives hostile keys, a HEAD asking for the stored checksum, requests
//!   to the bucket itself.
//! - `create.rs`: the bucket made when missing, and probed: conditional
//!   writes must be honoured ([`BucketReport`]).
//!
//! ```no_run
//! # fn main() -> materia_core::Result<()> {
//! use materia_core::bucket::BucketConfig;
//! use materia_core::mirror::{Mirror, MirrorOptions};
//! let bucket = BucketConfig::new("s3://materia-raw/landing")
//!     .with_endpoint("https://ACCOUNT_ID.r2.cloudflarestorage.com")
//!     .with_region("auto");
//! let mirror = Mirror::new(MirrorOptions::new(bucket).with_concurrency(16))?;
//! println!("{:?}", mirror.create_bucket()?);
//! # Ok(()) }
//! ```

mod config;
mod connect;
mod create;
mod error;
mod raw;

pub use config::{BucketConfig, INSTANCE_METADATA_VAR};
pub(crate) use connect::Bucket;
pub use create::BucketReport;
pub(crate) use create::is_probe;
pub(crate) use error::Operation;
pub(crate) use raw::Listed;
#[cfg_attr(not(feature = "publish"), allow(unused_imports))]
pub(crate) use raw::Stored;
