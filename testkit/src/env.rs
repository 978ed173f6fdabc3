//! A temporary landing zone and lakehouse: the fixture most tests start from.

use std::path::PathBuf;

/// `{tmp}/landing` and `{tmp}/lake/lakehouse.duckdb`, removed when dropped.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub landing: PathBuf,
    pub duckdb: PathBuf,
}

impl Env {
    /// A fresh one.
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        Env {
            landing: dir.path().join("landing"),
            duckdb: dir.path().join("lake/lakehouse.duckdb"),
            dir,
        }
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}
