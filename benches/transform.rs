//! Transform benchmarks on generated PSD releases (~50k rows each):
//! a full build over 120 releases, and an incremental build of one more release
//! on top of 30 and of 120 (it should not grow with history: the history is
//! stored as changes and written in place; only the serving tables are
//! written anew).
//!
//! Run: `cargo bench --workspace --bench transform`

use std::path::{Path, PathBuf};

use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use materia_core::landing::{LandingStore, NewRelease};
use materia_core::transform::{StepMode, TransformOptions, transform};
use materia_testkit::{PsdSpec, psd_csv, psd_landing_zone};

/// About 50k rows.
const RELEASE_BYTES: usize = 5 << 20;

/// A landing zone with `n` monthly releases, seeds 1..=n.
fn landing(root: &Path, n: u64) -> LandingStore {
    psd_landing_zone(root, n, RELEASE_BYTES).expect("landing zone")
}

fn options(path: PathBuf) -> TransformOptions {
    let mut o = TransformOptions::new(path);
    o.memory_limit = "4GB".into();
    o
}

fn rows(path: &Path) -> u64 {
    let lake = materia_core::transform::Lakehouse::open_read_only(path).expect("open");
    lake.connection()
        .query_row("SELECT sum(rows)::BIGINT FROM raw.releases", [], |r| {
            r.get::<_, i64>(0)
        })
        .expect("count") as u64
}

/// The private history beside a lakehouse (`{DUCKDB_PATH}.history`).
fn history_of(path: &Path) -> PathBuf {
    with_suffix(path, ".history")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_lakehouse(path: &Path) {
    std::fs::remove_file(path).expect("cleanup");
    std::fs::remove_file(history_of(path)).expect("cleanup");
    for slot in [".a", ".b"] {
        let _ = std::fs::remove_file(with_suffix(path, slot));
    }
}

/// A copy of the lakehouse at `base` (history, both slots, and the published
/// name linked to the same slot) at `path`.
fn copy_lakehouse(base: &Path, path: &Path) {
    use std::os::unix::fs::MetadataExt;
    std::fs::copy(history_of(base), history_of(path)).expect("copy history");
    let published = std::fs::metadata(base).expect("base").ino();
    for slot in [".a", ".b"] {
        let from = with_suffix(base, slot);
        if from.exists() {
            std::fs::copy(&from, with_suffix(path, slot)).expect("copy slot");
            if std::fs::metadata(&from).expect("slot").ino() == published {
                std::fs::hard_link(with_suffix(path, slot), path).expect("link");
            }
        }
    }
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("transform");
    group.sample_size(10);
    full_build(&mut group, dir.path());
    for history in [30u64, 120] {
        incremental_build(&mut group, dir.path(), history);
    }
    group.finish();
}

/// A full build over 120 releases, each into a fresh lakehouse.
fn full_build(group: &mut BenchmarkGroup<'_, WallTime>, dir: &Path) {
    let full = landing(&dir.join("landing-120"), 120);
    let probe = dir.join("probe.duckdb");
    transform(&full, &options(probe.clone())).expect("build");
    group.throughput(Throughput::Elements(rows(&probe)));
    let mut n = 0;
    group.bench_function("full/120 releases", |b| {
        b.iter_batched(
            || {
                n += 1;
                dir.join(format!("full-{n}.duckdb"))
            },
            |path| {
                transform(&full, &options(path.clone())).expect("full build");
                remove_lakehouse(&path);
            },
            BatchSize::PerIteration,
        )
    });
}

/// One more release on top of `history` releases, each time on a copy of the
/// same built lakehouse.
fn incremental_build(group: &mut BenchmarkGroup<'_, WallTime>, dir: &Path, history: u64) {
    let store = landing(&dir.join(format!("landing-inc-{history}")), history);
    let base = dir.join(format!("base-{history}.duckdb"));
    transform(&store, &options(base.clone())).expect("base build");
    // A second day fills the other slot: the measured day updates the
    // slot before last in place, as every day after the first two does.
    put_release(&store, 2030, 12, "day", 998);
    transform(&store, &options(base.clone())).expect("second day");
    put_release(&store, 2031, 1, "next", 999);
    let one_release = (rows(&base) as f64 / history as f64) as u64;
    group.throughput(Throughput::Elements(one_release));
    let mut m = 0;
    group.bench_with_input(
        BenchmarkId::new("incremental/+1 on", history),
        &history,
        |b, _| {
            b.iter_batched(
                || {
                    m += 1;
                    let path = dir.join(format!("inc-{history}-{m}.duckdb"));
                    copy_lakehouse(&base, &path);
                    path
                },
                |path| {
                    let report = transform(&store, &options(path.clone())).expect("incremental");
                    assert_eq!(report.releases_loaded, 1);
                    assert!(
                        report
                            .steps
                            .iter()
                            .any(|s| s.model == "lakehouse" && s.mode == StepMode::Append),
                        "updated in place"
                    );
                    remove_lakehouse(&path);
                },
                BatchSize::PerIteration,
            )
        },
    );
}

/// Lands a generated release of about [`RELEASE_BYTES`] with `seed` as
/// `psd/{year}/{month}/{etag}.csv.gzip`.
fn put_release(store: &LandingStore, year: i64, month: i64, etag: &str, seed: u64) {
    let release = NewRelease::new("psd".parse().expect("valid"), year, month)
        .expect("valid")
        .with_etag(Some(etag.parse().expect("valid")));
    let body = psd_csv(&PsdSpec {
        min_bytes: RELEASE_BYTES,
        seed,
    });
    let _ = store.put(release, &body[..]).expect("put");
}

criterion_group!(transform_benches, benches);
criterion_main!(transform_benches);
