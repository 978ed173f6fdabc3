//! Materia's test kit: what the integration tests of `materia-core` and
//! `materia-cli` share, so that each is written once.
//!
//! - [`http`]: a loopback HTTP server that answers as a test tells it (stalls,
//!   truncations, pauses, redirects), recording every request;
//! - [`proxy`]: a fault-injecting proxy in front of the S3 server;
//! - [`s3`]: a real S3-compatible server (moto) on loopback, one per test;
//! - [`env`](mod@env): a temporary landing zone and lakehouse path;
//! - the PSD data generator, from `materia-benches`: [`psd_csv`],
//!   [`land_psd_release`].
//!
//! A tool a test needs that is missing (moto, `fiu-run`, FUSE) fails the test
//! with how to install it: it never passes silently.

// A test kit: its items are explained where they are not obvious.
#![allow(missing_docs)]

pub mod env;
pub mod http;
pub mod proxy;
pub mod s3;

pub use materia_benches::{PsdSpec, land_psd_release, psd_csv};
