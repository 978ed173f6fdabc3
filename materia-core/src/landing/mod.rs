//! The landing zone: every dataset release as one immutable gzipped CSV on local
//! disk, at `{LANDING_DIR}/{dataset}/{year}/{month}/{etag}.csv.gzip`.
//!
//! - [`key`](LandingKey): validated names ([`Dataset`], [`Year`], [`Month`],
//!   [`Etag`]) and the one function that turns an HTTP `ETag` into a path-safe
//!   token ([`Etag::from_header`]);
//! - [`LandingStore`]: streaming, deduplicating, crash-safe writes; listing,
//!   reading, verifying;
//! - [`Release`]: the ledger record kept for every landed file (hashes, sizes,
//!   release metadata).
//!
//! - [`MetaDir`]: `.materia/`, the one owner of Materia's own files (the ledger,
//!   locks, the spool, the supervisor's state, the mirror's records), each
//!   listed there with its owner.
//!
//! Layout of the root:
//!
//! ```text
//! {root}/
//!   .materia/                  Materia's own files: see MetaDir
//!   psd/2026/11/5e2a9f.csv.gzip
//!   psd/2026/11/.tmp.XXXXXX.partial   a write in progress (or a crashed one)
//! ```

mod codec;
pub(crate) mod durable;
mod key;
mod ledger;
mod meta;
mod store;

pub use key::{
    Dataset, Etag, LandingKey, MAX_DATASET_LEN, MAX_ETAG_LEN, Month, SUFFIX, Sha256Digest, Year,
    current_month,
};
pub use ledger::Release;
pub use meta::MetaDir;
pub use store::{
    BadFile, DatasetStats, DuplicateOf, Entry, LandingStore, NewRelease, PutOutcome, Stats,
    VerifyReport,
};
