//! Mirror benchmarks against moto's S3 server on loopback (`pip install
//! 'moto[server]'`): pushing 200 landed files into an empty prefix, and a no-op
//! push over 10k files (answered from the local record, no request).
//!
//! Run: `cargo bench --workspace --bench mirror`

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use materia_benches::psd_landing_zone;
use materia_core::bucket::BucketConfig;
use materia_core::mirror::{Mirror, MirrorOptions};

struct Moto(Child, String);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server (pip install 'moto[server]')");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    let status = std::process::Command::new("curl")
        .args(["-s", "-X", "PUT", &format!("{endpoint}/bench")])
        .status()
        .expect("curl");
    assert!(status.success());
    Moto(child, endpoint)
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
                Mirror::new(options(&server.1, &format!("p{n}"))).expect("mirror")
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
        ..options(&server.1, "noop")
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
