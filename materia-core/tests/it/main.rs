//! `materia-core`'s integration tests: one binary, one module per area (each
//! test binary links DuckDB's C++, ~140 MB: one is enough). Loopback servers,
//! the fault proxy and PSD data come from `materia-testkit`.

mod architecture;
#[cfg(feature = "duckdb")]
mod balance;
mod build_plan;
#[cfg(all(feature = "duckdb", feature = "http"))]
mod datasets;
#[cfg(feature = "http")]
mod extract;
mod generated_sql;
mod keys_prop;
mod landing;
#[cfg(feature = "s3")]
mod mirror;
mod models;
#[cfg(feature = "publish")]
mod publish;
#[cfg(feature = "serve")]
mod serve;
mod supervise;
mod transform;

/// A temporary landing zone and lakehouse path, with DuckDB kept small (512 MB,
/// 2 threads); the transform modules add their own ways to land releases.
#[cfg(feature = "duckdb")]
pub struct Fixture {
    /// Holds everything; removed when dropped.
    pub dir: tempfile::TempDir,
    /// `{dir}/landing`.
    pub store: materia_core::landing::LandingStore,
    /// Building `{dir}/lakehouse.duckdb`.
    pub options: materia_core::transform::TransformOptions,
}

/// A fresh [`Fixture`].
#[cfg(feature = "duckdb")]
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        materia_core::landing::LandingStore::open(dir.path().join("landing")).expect("open");
    let mut options =
        materia_core::transform::TransformOptions::new(dir.path().join("lakehouse.duckdb"));
    options.memory_limit = "512MB".into();
    options.threads = 2;
    Fixture {
        dir,
        store,
        options,
    }
}

#[cfg(feature = "duckdb")]
impl Fixture {
    /// Lands `body` as `dataset`'s release of `year`/`month` under `etag`.
    pub fn put_release(
        &self,
        dataset: &str,
        (year, month): (i64, i64),
        etag: &str,
        body: &[u8],
    ) -> materia_core::landing::LandingKey {
        let release =
            materia_core::landing::NewRelease::new(dataset.parse().expect("valid"), year, month)
                .expect("valid")
                .with_etag(Some(etag.parse().expect("valid")));
        self.store
            .put(release, body)
            .expect("put")
            .landed()
            .expect("new")
            .key
    }

    /// The published lakehouse, read-only.
    pub fn lake(&self) -> materia_core::transform::Lakehouse {
        materia_core::transform::Lakehouse::open_read_only(&self.options.duckdb_path)
            .expect("published")
    }
}
