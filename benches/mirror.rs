//! Mirror benchmarks against moto's S3 server on loopback (`pip install
//! 'moto[server]'`): pushing 200 landed files into an empty prefix, and a no-op
//! push over 10k files (answered from the local record, no request).
//!
//! Run: `cargo bench --workspace --bench mirror`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use materia_core::bucket::BucketConfig;
use materia_core::mirror::{Mirror, MirrorOptions};
use materia_testkit::psd_landing_zone;
use materia_testkit::s3::S3Server;

/// moto on loopback with the bucket `bench`.
fn moto() -> S3Server {
    let server = S3Server::start();
    server.create_bucket("bench");
    server
}

fn options(endpoint: &str, prefix: &str) -> MirrorOptions {
    MirrorOptions::new(BucketConfig {
        endpoint: Some(endpoint.to_owned()),
        region: Some("us-east-1".into()),
        access_key_id: Some("bench".into()),
        secret_access_key: Some("bench".into()),
        allow_http: Some(true),
        ..BucketConfig::new(format!("s3://bench/{prefix}"))
    })
}

fn benches(c: &mut Criterion) {
    let server = moto();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("mirror");
    group.sample_size(10);

    let push = psd_landing_zone(&dir.path().join("push"), 200, 60_000).expect("landing");
    group.throughput(Throughput::Elements(200));
    let mut n = 0;
    group.bench_function("push/200 files", |b| {
        b.iter_batched(
            || {
                n += 1;
                Mirror::new(options(&server.endpoint, &format!("p{n}"))).expect("mirror")
            },
            |mirror| {
                let report = mirror.push(&push, false).expect("push");
                assert_eq!(report.uploaded, 200);
            },
            BatchSize::PerIteration,
        )
    });

    let noop = psd_landing_zone(&dir.path().join("noop"), 10_000, 1_000).expect("landing");
    let mirror = Mirror::new(MirrorOptions {
        concurrency: 16,
        ..options(&server.endpoint, "noop")
    })
    .expect("mirror");
    mirror.push(&noop, false).expect("first push");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("no-op/10k files", |b| {
        b.iter(|| {
            let report = mirror.push(&noop, false).expect("no-op");
            assert_eq!(report.uploaded, 0);
        })
    });
    group.finish();
}

criterion_group!(mirror_benches, benches);
criterion_main!(mirror_benches);
