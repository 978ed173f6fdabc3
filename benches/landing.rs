//! Landing-store benchmarks: `put` throughput by gzip level, `contains` and
//! `open` against the number of landed files, key parse/render.
//!
//! Run: `cargo bench --workspace --bench landing`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use materia_core::landing::{Dataset, Etag, LandingKey, LandingStore, NewRelease};
use materia_testkit::{PsdSpec, psd_csv, synthetic_landing_zone};

fn put_throughput(c: &mut Criterion) {
    let csv = psd_csv(&PsdSpec {
        min_bytes: 32 << 20,
        seed: 1,
    });
    let mut group = c.benchmark_group("put");
    group.throughput(Throughput::Bytes(csv.len() as u64));
    group.sample_size(10);
    for level in [1, 6, 9] {
        group.bench_with_input(BenchmarkId::new("level", level), &level, |b, &level| {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = LandingStore::open(dir.path())
                .expect("open")
                .with_compression(level);
            let psd: Dataset = "psd".parse().expect("valid");
            let mut n = 0u64;
            b.iter(|| {
                n += 1;
                // A distinct etag and first byte per iteration, so nothing dedups.
                let release = NewRelease::new(psd.clone(), 2026, 11)
                    .expect("valid")
                    .with_etag(Some(format!("bench-{n}").parse().expect("valid")));
                let head = format!("{n}\n");
                let body = std::io::Read::chain(head.as_bytes(), &csv[..]);
                store.put(release, body).expect("put")
            });
        });
    }
    group.finish();
}

fn contains_at_scale(c: &mut Criterion) {
    let mut group = c.benchmark_group("contains");
    let psd: Dataset = "psd".parse().expect("valid");
    for files in [1_000usize, 10_000, 100_000] {
        let dir = tempfile::tempdir().expect("tempdir");
        synthetic_landing_zone(dir.path(), files).expect("fixture");
        let store = LandingStore::open(dir.path()).expect("open");
        assert_eq!(store.stats().files, files as u64);
        let hit: Etag = format!("etag-{:08}", files / 2).parse().expect("valid");
        let miss: Etag = "not-there".parse().expect("valid");
        group.bench_with_input(BenchmarkId::new("hit", files), &files, |b, _| {
            b.iter(|| assert!(store.contains(black_box(&psd), black_box(&hit))))
        });
        group.bench_with_input(BenchmarkId::new("miss", files), &files, |b, _| {
            b.iter(|| assert!(!store.contains(black_box(&psd), black_box(&miss))))
        });
    }
    group.finish();
}

fn open_at_scale(c: &mut Criterion) {
    let mut group = c.benchmark_group("open");
    group.sample_size(10);
    for files in [1_000usize, 10_000, 100_000] {
        let dir = tempfile::tempdir().expect("tempdir");
        synthetic_landing_zone(dir.path(), files).expect("fixture");
        group.bench_with_input(BenchmarkId::from_parameter(files), &files, |b, _| {
            b.iter(|| LandingStore::open(dir.path()).expect("open"))
        });
    }
    group.finish();
}

fn keys(c: &mut Criterion) {
    let text = "psd/2026/11/5e2a9f-0001.csv.gzip";
    let key: LandingKey = text.parse().expect("valid");
    c.bench_function("key/parse", |b| {
        b.iter(|| black_box(text).parse::<LandingKey>().expect("valid"))
    });
    c.bench_function("key/render", |b| b.iter(|| black_box(&key).to_string()));
    c.bench_function("etag/from_header", |b| {
        b.iter(|| Etag::from_header(black_box(b"W/\"5e2a9f-0001\"")))
    });
}

criterion_group!(
    benches,
    put_throughput,
    contains_at_scale,
    open_at_scale,
    keys
);
criterion_main!(benches);
