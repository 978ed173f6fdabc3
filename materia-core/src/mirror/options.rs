//! [`MirrorOptions`]: the bucket, and how hard to push.

use std::time::Duration;

use crate::bucket::BucketConfig;

pub(super) const MIB: u64 = 1 << 20;

/// The bucket to mirror to ([`BucketConfig`]: where and how to reach it) and
/// the mirror's own options: how many requests at once, multipart sizes,
/// memory, progress, how often a push lists the bucket.
///
/// ```
/// use std::time::Duration;
/// use materia_core::bucket::BucketConfig;
/// use materia_core::mirror::MirrorOptions;
/// let options = MirrorOptions::new(BucketConfig::new("s3://materia-raw/landing").with_region("auto"))
///     .with_concurrency(16)
///     .with_multipart_threshold(128 << 20)
///     .with_part_size(32 << 20)
///     .with_memory_budget(512 << 20)
///     .with_progress(true)
///     .with_full_every(Some(Duration::from_secs(86_400)));
/// assert_eq!(options.bucket.url, "s3://materia-raw/landing");
/// // Or as a struct, from the defaults.
/// let options = MirrorOptions { concurrency: 4, ..MirrorOptions::new("s3://materia-raw/landing") };
/// assert_eq!(options.part_size, 16 << 20);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorOptions {
    /// The bucket and prefix, and how to reach them.
    pub bucket: BucketConfig,
    /// Requests (uploads, parts, downloads) in flight at once.
    pub concurrency: usize,
    /// Files this size or larger go up as multipart uploads; smaller ones in one
    /// conditional PUT.
    pub multipart_threshold: u64,
    /// The size of every multipart part but the last (at least 5 MiB on S3 and R2).
    pub part_size: u64,
    /// File bytes held in memory at once by uploads in flight.
    pub memory_budget: u64,
    /// Show a progress bar on stderr (the CLI sets it when stderr is a terminal).
    pub progress: bool,
    /// A push lists the bucket (as `--full`) when the last full push is older
    /// than this, so that objects lost remotely are uploaded again; `None`
    /// only when asked.
    pub full_every: Option<Duration>,
}

impl Default for MirrorOptions {
    /// The bucket's defaults ([`BucketConfig::default`]: no URL yet), 8
    /// requests at once, multipart from 64 MiB in 16 MiB parts, 256 MiB of
    /// buffers, a full push (listing the bucket) at least every 7 days.
    ///
    /// ```
    /// let o = materia_core::mirror::MirrorOptions::default();
    /// assert_eq!((o.concurrency, o.multipart_threshold), (8, 64 << 20));
    /// ```
    fn default() -> Self {
        MirrorOptions {
            bucket: BucketConfig::default(),
            concurrency: 8,
            multipart_threshold: 64 * MIB,
            part_size: 16 * MIB,
            memory_budget: 256 * MIB,
            progress: false,
            full_every: Some(Duration::from_secs(7 * 86_400)),
        }
    }
}

impl MirrorOptions {
    /// The defaults for `bucket` — a [`BucketConfig`], or just its URL
    /// (everything else from the environment, 5 retries): 8 requests at once,
    /// multipart from 64 MiB in 16 MiB parts, 256 MiB of buffers, a full
    /// push (listing the bucket) at least every 7 days.
    ///
    /// ```
    /// let o = materia_core::mirror::MirrorOptions::new("s3://materia-raw/landing");
    /// assert_eq!(o.concurrency, 8);
    /// assert_eq!(o.part_size, 16 << 20);
    /// assert_eq!(o.bucket.retries, 5);
    /// ```
    pub fn new(bucket: impl Into<BucketConfig>) -> Self {
        MirrorOptions {
            bucket: bucket.into(),
            ..MirrorOptions::default()
        }
    }

    /// Sets the bucket (see the example on [`MirrorOptions`]).
    pub fn with_bucket(mut self, bucket: BucketConfig) -> Self {
        self.bucket = bucket;
        self
    }

    /// Sets the requests in flight at once.
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Sets the size from which a file goes up in parts.
    pub fn with_multipart_threshold(mut self, bytes: u64) -> Self {
        self.multipart_threshold = bytes;
        self
    }

    /// Sets the size of a part (at least 5 MiB, or [`Mirror::new`](super::Mirror::new) fails).
    pub fn with_part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes;
        self
    }

    /// Sets the file bytes uploads may hold in memory at once.
    pub fn with_memory_budget(mut self, bytes: u64) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// Shows a progress bar on stderr, or not.
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// Sets how old the last full push may be before a push lists the bucket
    /// (`None`: only when asked).
    pub fn with_full_every(mut self, every: Option<Duration>) -> Self {
        self.full_every = every;
        self
    }
}
