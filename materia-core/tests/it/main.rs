//! `materia-core`'s integration tests: one binary, one module per area (each
//! test binary links DuckDB's C++, ~140 MB: one is enough). Loopback servers,
//! the fault proxy and PSD data come from `materia-testkit`.

#[cfg(feature = "duckdb")]
mod datasets;
#[cfg(feature = "http")]
mod extract;
mod keys_prop;
mod landing;
#[cfg(feature = "s3")]
mod mirror;
mod supervise;
mod transform;
