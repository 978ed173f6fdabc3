//! Materia's test kit: what the integration tests of `materia-core` and
//! `materia-cli` and the benchmarks in `benches/` share, so that each is
//! written once.
//!
//! - [`http`]: a loopback HTTP server that answers as a test tells it (stalls,
//!   truncations, pauses, redirects), recording every request;
//! - [`proxy`]: a fault-injecting proxy in front of the S3 server;
//! - [`s3`]: a real S3-compatible server (moto) on loopback, one per test;
//! - [`env`](mod@env): a temporary landing zone and lakehouse path;
//! - [`data`]: generated PSD data ([`psd_csv`]) and landing zones
//!   ([`land_psd_release`], [`psd_landing_zone`], [`synthetic_landing_zone`]).
//!
//! A tool a test needs that is missing (moto, `fiu-run`, FUSE) fails the test
//! with how to install it: it never passes silently.

// A test kit: its items are explained where they are not obvious.
#![allow(missing_docs)]

pub mod data;
pub mod env;
pub mod http;
pub mod proxy;
pub mod s3;

pub use data::{
    COFFEE_ATTRIBUTES, PSD_HEADER, PsdSpec, land_psd_release, psd_csv, psd_landing_zone,
    synthetic_landing_zone,
};
