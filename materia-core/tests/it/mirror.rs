//! Mirror and restore against a real S3-compatible server on loopback (moto).

use std::fs;
use std::path::Path;

use materia_core::bucket::BucketConfig;
use materia_core::landing::{LandingStore, NewRelease};
use materia_core::mirror::{Mirror, MirrorOptions};
use materia_testkit::proxy::{Fault, FaultProxy};
use materia_testkit::s3::S3Server;

const BUCKET: &str = "materia-raw";

fn options(server: &S3Server) -> MirrorOptions {
    options_at(&server.endpoint)
}

fn options_at(endpoint: &str) -> MirrorOptions {
    MirrorOptions {
        // Tests count requests: no periodic full listing unless a test asks.
        full_every: None,
        ..MirrorOptions::new(BucketConfig {
            endpoint: Some(endpoint.to_owned()),
            region: Some("us-east-1".into()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test-secret".into()),
            allow_http: Some(true),
            retries: 2,
            ..BucketConfig::new(format!("s3://{BUCKET}/landing"))
        })
    }
}

fn land(store: &LandingStore, month: i64, seed: u64) -> materia_core::landing::LandingKey {
    let body =
        format!("Commodity_Code,Value\r\n0711100,{seed}.0000\r\n").repeat(1 + seed as usize % 7);
    let release = NewRelease::new("psd".parse().expect("valid"), 2026, month)
        .expect("valid")
        .with_etag(Some(format!("e{seed}").parse().expect("valid")));
    store
        .put(release, body.as_bytes())
        .expect("put")
        .landed()
        .expect("new")
        .key
}

#[test]
fn push_uploads_what_is_missing_and_a_no_op_makes_no_request() {
    let mut server = S3Server::start();
    server.create_bucket(BUCKET);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path()).expect("open");
    let keys: Vec<_> = (1..=5)
        .map(|i| land(&store, 1 + i % 12, i as u64))
        .collect();
    let mirror = Mirror::new(options(&server)).expect("mirror");

    let first = mirror.push(&store, false).expect("push");
    assert_eq!((first.uploaded, first.skipped), (5, 0));
    for key in &keys {
        let remote = server
            .get_raw(BUCKET, &format!("landing/{key}"))
            .expect("uploaded");
        assert_eq!(
            remote,
            fs::read(store.path_of(key)).expect("local"),
            "{key}"
        );
    }
    let again = mirror.push(&store, false).expect("push again");
    assert_eq!((again.uploaded, again.skipped), (0, 5));

    land(&store, 6, 99);
    let one = mirror.push(&store, false).expect("push one more");
    assert_eq!((one.uploaded, one.skipped), (1, 5));
    assert!(mirror.verify(&store).expect("verify").is_ok());

    // With the server gone, a push with nothing new still succeeds: no request.
    server.stop();
    let offline = mirror
        .push(&store, false)
        .expect("no-op push makes no request");
    assert_eq!((offline.uploaded, offline.skipped), (0, 6));
}

#[test]
fn full_push_finds_remote_loss_and_restore_rebuilds_the_zone() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path().join("a")).expect("open");
    let keys: Vec<_> = (1..=4).map(|i| land(&store, i, i as u64)).collect();
    let mirror = Mirror::new(options(&server)).expect("mirror");
    mirror.push(&store, false).expect("push");

    server.delete_raw(BUCKET, &format!("landing/{}", keys[0]));
    let report = mirror.verify(&store).expect("verify");
    assert_eq!(report.missing, [keys[0].to_string()]);
    assert_eq!(
        mirror
            .push(&store, false)
            .expect("trusting the record")
            .uploaded,
        0
    );
    let full = mirror.push(&store, true).expect("full push");
    assert_eq!((full.uploaded, full.skipped), (1, 3));
    assert!(mirror.verify(&store).expect("verify").is_ok());

    // A new server's landing zone, from the bucket alone.
    let restored = LandingStore::open(dir.path().join("b")).expect("open");
    let r = mirror.restore(&restored).expect("restore");
    assert_eq!((r.downloaded, r.skipped), (4, 0), "{r:?}");
    assert!(restored.verify().expect("verify").is_ok());
    for key in &keys {
        assert_eq!(
            fs::read(restored.path_of(key)).expect("restored"),
            fs::read(store.path_of(key)).expect("original"),
            "{key}"
        );
    }
    let again = mirror.restore(&restored).expect("restore again");
    assert_eq!((again.downloaded, again.skipped), (0, 4));
}

#[test]
fn other_content_under_our_key_is_a_conflict_left_alone() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path()).expect("open");
    let key = land(&store, 3, 3);
    let theirs = b"\x1f\x8bnot ours".to_vec();
    server.put_raw(BUCKET, &format!("landing/{key}"), theirs.clone());
    let mirror = Mirror::new(options(&server)).expect("mirror");
    let report = mirror.push(&store, false).expect("push");
    assert_eq!(report.conflicts, std::slice::from_ref(&key));
    assert_eq!(report.uploaded, 0);
    assert_eq!(
        server.get_raw(BUCKET, &format!("landing/{key}")),
        Some(theirs),
        "not overwritten"
    );
    // Conflicts are not recorded as done: the next push reports it again.
    assert_eq!(mirror.push(&store, false).expect("push").conflicts.len(), 1);
}

#[test]
fn restore_refuses_untrusted_keys_and_bad_content() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("landing");
    let store = LandingStore::open(&root).expect("open");
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"a,b\n1,2\n").expect("mem");
        e.finish().expect("mem")
    };
    let sha = materia_core::landing::Sha256Digest::of(b"a,b\n1,2\n");
    for key in [
        "landing/psd/2026/11/bad etag.csv.gzip",
        "landing/PSD/2026/11/x.csv.gzip",
        "landing/psd/2026/13/x.csv.gzip",
        "landing/psd/2026/11/x.csv",
        "landing/psd/2026/11/.hidden.csv.gzip",
        "landing/psd/2026/11/extra/x.csv.gzip",
    ] {
        server.put_raw(BUCKET, key, gz.clone());
    }
    // A content address that lies about its content, and a non-gzip body.
    server.put_raw(
        BUCKET,
        &format!("landing/psd/2026/11/{}.csv.gzip", "0".repeat(64)),
        gz.clone(),
    );
    server.put_raw(
        BUCKET,
        "landing/psd/2026/11/plain.csv.gzip",
        b"a,b\n1,2\n".to_vec(),
    );
    // And one good object.
    server.put_raw(
        BUCKET,
        &format!("landing/psd/2026/11/{sha}.csv.gzip"),
        gz.clone(),
    );

    let mirror = Mirror::new(options(&server)).expect("mirror");
    let report = mirror.restore(&store).expect("restore");
    assert_eq!(report.downloaded, 1, "{report:#?}");
    assert_eq!(report.refused.len(), 8, "{report:#?}");
    let store = LandingStore::open(&root).expect("reopen");
    assert_eq!(store.list().len(), 1);
    assert!(store.verify().expect("verify").is_ok());
    let beside: Vec<_> = fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(beside, ["landing"], "nothing written outside LANDING_DIR");
    assert!(!Path::new("/etc/x.csv.gzip").exists());
}

/// A landed file of `mib` MiB that gzip cannot shrink (random bytes).
fn land_large(store: &LandingStore, month: i64, mib: usize) -> materia_core::landing::LandingKey {
    let mut rng = fastrand::Rng::with_seed(month as u64);
    let body: Vec<u8> = (0..mib << 20).map(|_| rng.u8(..)).collect();
    let release = NewRelease::new("psd".parse().expect("valid"), 2026, month)
        .expect("valid")
        .with_etag(Some(format!("big{month}").parse().expect("valid")));
    store
        .put(release, &body[..])
        .expect("put")
        .landed()
        .expect("new")
        .key
}

#[test]
fn large_files_go_up_in_parts_and_come_back_whole() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path().join("a")).expect("open");
    let big = land_large(&store, 1, 11);
    let small = land(&store, 2, 2);
    let proxy = FaultProxy::start(&server.endpoint);
    let mirror = Mirror::new(MirrorOptions {
        multipart_threshold: 6 << 20,
        part_size: 5 << 20,
        memory_budget: 10 << 20,
        ..options_at(&proxy.endpoint)
    })
    .expect("mirror");
    let report = mirror.push(&store, false).expect("push");
    assert_eq!((report.uploaded, report.skipped), (2, 0));
    let parts = proxy
        .requests()
        .iter()
        .filter(|r| r.starts_with("PUT ") && r.contains("partNumber="))
        .count();
    assert_eq!(parts, 3, "11 MiB in 5 MiB parts: {:#?}", proxy.requests());
    assert_eq!(
        server.multipart_uploads(BUCKET),
        0,
        "completed, none left open"
    );
    for key in [&big, &small] {
        assert_eq!(
            server.get_raw(BUCKET, &format!("landing/{key}")),
            Some(fs::read(store.path_of(key)).expect("local")),
            "{key}"
        );
    }
    assert!(mirror.verify(&store).expect("verify").is_ok());

    let restored = LandingStore::open(dir.path().join("b")).expect("open");
    let r = mirror.restore(&restored).expect("restore");
    assert_eq!((r.downloaded, r.skipped), (2, 0));
    assert_eq!(
        fs::read(restored.path_of(&big)).expect("restored"),
        fs::read(store.path_of(&big)).expect("original")
    );
    // Restored objects are known to be in the bucket: pushing from the new
    // zone asks nothing.
    let before = proxy.requests().len();
    let again = mirror.push(&restored, false).expect("push from restored");
    assert_eq!((again.uploaded, again.skipped), (0, 2));
    assert_eq!(proxy.requests().len(), before, "no request");
}

#[test]
fn transient_faults_are_retried_and_a_lost_response_is_not_a_conflict() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path()).expect("open");
    let keys: Vec<_> = (1..=4).map(|i| land(&store, i, i as u64)).collect();
    let proxy = FaultProxy::start(&server.endpoint);
    // The first PUT takes effect but its answer is lost: the client's retry of
    // the conditional create then finds the object (412).
    proxy.inject("PUT", "/landing/", Fault::LoseResponse, 1);
    proxy.inject("PUT", "/landing/", Fault::Status(503), 2);
    proxy.inject("PUT", "/landing/", Fault::Status(429), 1);
    proxy.inject("GET", "/landing/", Fault::Status(500), 1);
    let mut options = options_at(&proxy.endpoint);
    options.bucket.retries = 4;
    let mirror = Mirror::new(options).expect("mirror");
    let report = mirror.push(&store, false).expect("push through faults");
    assert_eq!(proxy.injected(), 5, "{:#?}", proxy.requests());
    assert!(report.conflicts.is_empty(), "{report:?}");
    assert_eq!(report.uploaded + report.skipped, 4, "{report:?}");
    for key in &keys {
        assert_eq!(
            server.get_raw(BUCKET, &format!("landing/{key}")),
            Some(fs::read(store.path_of(key)).expect("local")),
            "{key}"
        );
    }
    let again = mirror.push(&store, false).expect("no-op");
    assert_eq!((again.uploaded, again.skipped), (0, 4));
}

#[test]
fn a_permanent_failure_names_the_object_and_the_next_push_finishes() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path()).expect("open");
    let good = land(&store, 1, 1);
    let bad = land(&store, 2, 2);
    let big = land_large(&store, 3, 11);
    let proxy = FaultProxy::start(&server.endpoint);
    proxy.inject("PUT", &format!("/landing/{bad}"), Fault::Status(500), 100);
    // The second part of the large file always fails: the upload is aborted.
    proxy.inject("PUT", "partNumber=2", Fault::Status(500), 100);
    let mut options = options_at(&proxy.endpoint);
    options.bucket.retries = 1;
    let mirror = Mirror::new(MirrorOptions {
        multipart_threshold: 6 << 20,
        part_size: 5 << 20,
        ..options
    })
    .expect("mirror");
    let err = mirror.push(&store, false).expect_err("fails").to_string();
    assert!(
        err.contains(&bad.to_string()) || err.contains(&big.to_string()),
        "{err}"
    );
    assert!(!err.contains("test-secret"), "{err}");
    assert!(server.get_raw(BUCKET, &format!("landing/{good}")).is_some());
    assert!(server.get_raw(BUCKET, &format!("landing/{bad}")).is_none());
    assert!(server.get_raw(BUCKET, &format!("landing/{big}")).is_none());
    assert_eq!(
        server.multipart_uploads(BUCKET),
        0,
        "the failed upload was aborted"
    );
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.starts_with("DELETE ") && r.contains("uploadId=")),
        "abort sent"
    );

    proxy.clear();
    let next = mirror.push(&store, false).expect("the next push finishes");
    assert_eq!((next.uploaded, next.skipped), (2, 1));
    assert!(mirror.verify(&store).expect("verify").is_ok());
}

/// Regression tests for the hardening review (issue 12).
mod hardening {
    use super::*;
    use materia_core::Error;
    use materia_core::landing::{Etag, Sha256Digest};

    fn put_unsigned(server: &S3Server, raw_path: &str, body: &[u8]) {
        // moto accepts unsigned requests; the path is sent as written.
        let status = reqwest::blocking::Client::new()
            .put(format!("{}/{BUCKET}/{raw_path}", server.endpoint))
            .body(body.to_vec())
            .send()
            .expect("put")
            .status();
        assert!(status.is_success(), "{raw_path}: {status}");
    }

    #[test]
    fn one_odd_bucket_key_does_not_stop_restore_verify_or_full_push() {
        let server = S3Server::start();
        server.create_bucket(BUCKET);
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LandingStore::open(dir.path().join("a")).expect("open");
        let keys: Vec<_> = (1..=2).map(|i| land(&store, i, i as u64)).collect();
        let mirror = Mirror::new(options(&server)).expect("mirror");
        mirror.push(&store, false).expect("push");
        // Keys object_store refuses to parse: an empty segment, a control byte.
        put_unsigned(&server, "landing/psd//2026/01/x.csv.gzip", b"\x1f\x8bjunk");
        put_unsigned(
            &server,
            "landing/psd/2026/01/%1B%5B2Jx.csv.gzip",
            b"\x1f\x8bjunk",
        );

        let restored = LandingStore::open(dir.path().join("b")).expect("open");
        let report = mirror.restore(&restored).expect("restore lists past them");
        assert_eq!(report.downloaded, 2, "{report:?}");
        assert_eq!(report.refused.len(), 2, "{report:?}");
        for r in &report.refused {
            assert!(
                !r.object.chars().any(char::is_control),
                "printed raw: {r:?}"
            );
        }
        for key in &keys {
            assert_eq!(
                fs::read(restored.path_of(key)).expect("restored"),
                fs::read(store.path_of(key)).expect("local")
            );
        }
        let verify = mirror.verify(&store).expect("verify lists past them");
        assert!(verify.is_ok() && verify.checked == 2, "{verify:?}");
        let full = mirror
            .push(&store, true)
            .expect("full push lists past them");
        assert_eq!((full.uploaded, full.skipped), (0, 2), "{full:?}");
    }

    #[test]
    fn the_record_belongs_to_the_endpoint_not_just_the_bucket_name() {
        let (a, b) = (S3Server::start(), S3Server::start());
        a.create_bucket(BUCKET);
        b.create_bucket(BUCKET);
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LandingStore::open(dir.path()).expect("open");
        for i in 1..=3 {
            land(&store, i, i as u64);
        }
        let first = Mirror::new(options(&a))
            .expect("a")
            .push(&store, false)
            .expect("push a");
        assert_eq!(first.uploaded, 3);
        // Same bucket name and prefix, another endpoint, empty: everything goes up.
        let other = Mirror::new(options(&b))
            .expect("b")
            .push(&store, false)
            .expect("push b");
        assert_eq!((other.uploaded, other.skipped), (3, 0), "{other:?}");
        assert_eq!(b.list_raw(BUCKET, "landing").len(), 3);
    }

    #[test]
    fn a_push_lists_the_bucket_when_the_last_full_one_is_too_old() {
        let server = S3Server::start();
        server.create_bucket(BUCKET);
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LandingStore::open(dir.path()).expect("open");
        let key = land(&store, 1, 1);
        land(&store, 2, 2);
        Mirror::new(options(&server))
            .expect("mirror")
            .push(&store, false)
            .expect("push");
        server.delete_raw(BUCKET, &format!("landing/{key}"));
        // Trusting the record, the loss goes unseen…
        let trusting = Mirror::new(options(&server))
            .expect("mirror")
            .push(&store, false)
            .expect("push");
        assert_eq!(trusting.uploaded, 0);
        // …until a full listing is due.
        let due = Mirror::new(MirrorOptions {
            full_every: Some(std::time::Duration::ZERO),
            ..options(&server)
        })
        .expect("mirror");
        assert_eq!(due.push(&store, false).expect("push").uploaded, 1);
        let later = Mirror::new(MirrorOptions {
            full_every: Some(std::time::Duration::from_secs(3600)),
            ..options(&server)
        })
        .expect("mirror");
        server.delete_raw(BUCKET, &format!("landing/{key}"));
        assert_eq!(
            later.push(&store, false).expect("push").uploaded,
            0,
            "the last full push was just now"
        );
    }

    #[test]
    fn a_full_push_compares_content_not_size() {
        let server = S3Server::start();
        server.create_bucket(BUCKET);
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LandingStore::open(dir.path()).expect("open");
        let key = land(&store, 1, 1);
        let same = land(&store, 2, 2);
        let mirror = Mirror::new(options(&server)).expect("mirror");
        mirror.push(&store, false).expect("push");
        // Overwritten behind our back with as many bytes, other content; and one
        // rewritten with the same bytes (its metadata lost).
        let mut bytes = fs::read(store.path_of(&key)).expect("local");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        server.put_raw(BUCKET, &format!("landing/{key}"), bytes);
        let original = fs::read(store.path_of(&same)).expect("local");
        server.put_raw(BUCKET, &format!("landing/{same}"), original);
        let report = mirror.push(&store, true).expect("full push");
        assert_eq!(report.conflicts, std::slice::from_ref(&key), "{report:?}");
        assert_eq!(report.skipped, 1, "{report:?}");
        let verify = mirror.verify(&store).expect("verify");
        assert_eq!(verify.different, [key.to_string()]);
    }

    #[test]
    fn restore_keeps_the_order_of_releases_within_a_month() {
        let server = S3Server::start();
        server.create_bucket(BUCKET);
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LandingStore::open(dir.path().join("a")).expect("open");
        let psd: materia_core::landing::Dataset = "psd".parse().expect("valid");
        let mut keys = Vec::new();
        for i in 0..6u64 {
            // Six releases of one month, landed a second apart, in etag order
            // opposite to landing order.
            let at = jiff::Timestamp::from_second(1_780_000_000 + i as i64).expect("ts");
            let release = NewRelease::new(psd.clone(), 2026, 11)
                .expect("valid")
                .with_etag(Some(format!("z{}", 9 - i).parse().expect("valid")))
                .with_landed_at(at);
            let body = format!("a,b\n{i},x\n");
            keys.push(
                store
                    .put(release, body.as_bytes())
                    .expect("put")
                    .landed()
                    .expect("new")
                    .key,
            );
        }
        let mirror = Mirror::new(MirrorOptions {
            concurrency: 6,
            ..options(&server)
        })
        .expect("mirror");
        mirror.push(&store, false).expect("push");
        let restored = LandingStore::open(dir.path().join("b")).expect("open");
        assert_eq!(mirror.restore(&restored).expect("restore").downloaded, 6);
        for key in &keys {
            assert_eq!(
                restored.release(key).expect("recorded").landed_at,
                store.release(key).expect("recorded").landed_at,
                "{key}"
            );
        }
        assert_eq!(restored.latest(&psd).map(|e| e.key), Some(keys[5].clone()));
    }

    #[test]
    fn a_locally_corrupted_file_is_never_uploaded() {
        let server = S3Server::start();
        server.create_bucket(BUCKET);
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LandingStore::open(dir.path()).expect("open");
        let small = land(&store, 1, 1);
        let large = land(&store, 2, 2);
        for key in [&small, &large] {
            let path = store.path_of(key);
            let mut bytes = fs::read(&path).expect("local");
            bytes[12] ^= 0x01;
            fs::write(&path, bytes).expect("corrupt in place");
        }
        // One single PUT, one multipart upload (threshold 1 byte).
        for threshold in [u64::MAX, 1] {
            let mirror = Mirror::new(MirrorOptions {
                multipart_threshold: threshold,
                ..options(&server)
            })
            .expect("mirror");
            let err = mirror.push(&store, false).expect_err("refused");
            assert!(matches!(err, Error::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains("not uploading"), "{err}");
        }
        assert!(server.list_raw(BUCKET, "landing").is_empty());
        assert_eq!(
            server.multipart_uploads(BUCKET),
            0,
            "the multipart upload was aborted"
        );
    }

    #[test]
    fn a_server_etag_of_64_hex_digits_is_not_taken_for_a_content_address() {
        let server = S3Server::start();
        server.create_bucket(BUCKET);
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LandingStore::open(dir.path().join("a")).expect("open");
        let hex = "0123456789abcdef".repeat(4);
        let psd: materia_core::landing::Dataset = "psd".parse().expect("valid");
        // Named as a content address it is not: refused.
        let forged = NewRelease::new(psd.clone(), 2026, 1)
            .expect("valid")
            .with_etag(Some(hex.parse().expect("a valid token")));
        let err = store.put(forged, &b"a,b\n1,2\n"[..]).expect_err("refused");
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        // As a server's ETag header it is mapped out of that namespace…
        let tag = Etag::from_header(format!("\"{hex}\"").as_bytes()).expect("tag");
        assert!(!tag.is_content_address(), "{tag}");
        let release = NewRelease::new(psd, 2026, 1)
            .expect("valid")
            .with_etag(Some(tag));
        let key = store
            .put(release, &b"a,b\n1,2\n"[..])
            .expect("put")
            .landed()
            .expect("new")
            .key;
        // …and a true content address still is one.
        let sha = Sha256Digest::of(b"c,d\n3,4\n").to_string();
        let addressed = NewRelease::new("psd".parse().expect("valid"), 2026, 2)
            .expect("valid")
            .with_etag(Some(sha.parse().expect("valid")));
        let _ = store
            .put(addressed, &b"c,d\n3,4\n"[..])
            .expect("a real content address lands")
            .landed()
            .expect("new");
        let mirror = Mirror::new(options(&server)).expect("mirror");
        mirror.push(&store, false).expect("push");
        let restored = LandingStore::open(dir.path().join("b")).expect("open");
        let report = mirror.restore(&restored).expect("restore");
        assert_eq!(
            (report.downloaded, report.refused.len()),
            (2, 0),
            "{report:?}"
        );
        assert!(restored.path_of(&key).exists());
    }
}

#[test]
fn from_async_code_it_works_and_drops_without_a_panic() {
    // Regression: the private runtime panicked when a Mirror was used or
    // dropped inside async code.
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = std::sync::Arc::new(LandingStore::open(dir.path()).expect("open"));
    land(&store, 1, 1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let opts = options(&server);
    rt.block_on(async move {
        // On an executor thread: blocks its caller, works, no panic.
        let mirror = Mirror::new(opts.clone()).expect("new");
        assert_eq!(mirror.push(&store, false).expect("pushed").uploaded, 1);
        drop(mirror);
        // The recommended way.
        land(&store, 2, 2);
        let mirror = std::sync::Arc::new(Mirror::new(opts).expect("new"));
        let report = tokio::task::spawn_blocking(move || mirror.push(&store, false))
            .await
            .expect("joined")
            .expect("pushed");
        assert_eq!((report.uploaded, report.skipped), (1, 1));
    });
}

#[test]
fn errors_say_what_kind_of_failure_and_keep_the_cause() {
    use materia_core::{Error, RemoteKind};
    use std::error::Error as _;
    let server = S3Server::start();
    // No bucket: the server says NoSuchBucket.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path()).expect("open");
    land(&store, 1, 1);
    let err = Mirror::new(options(&server))
        .expect("mirror")
        .push(&store, true)
        .expect_err("no bucket");
    assert!(
        matches!(
            err,
            Error::Mirror {
                kind: RemoteKind::NotFound,
                ..
            }
        ),
        "{err:?}"
    );
    let cause = err.source().expect("a source");
    assert!(
        cause.downcast_ref::<object_store::Error>().is_some(),
        "{cause:?}"
    );
    // Nobody listening: a transient failure, after the retries.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let err = Mirror::new(options_at(&format!("http://{closed}")))
        .expect("mirror")
        .push(&store, true)
        .expect_err("nobody there");
    assert!(
        matches!(
            err,
            Error::Mirror {
                kind: RemoteKind::Transient,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn create_bucket_makes_it_once_and_reports_a_bucket_without_conditional_writes() {
    let server = S3Server::start();
    let mirror = Mirror::new(options(&server)).expect("mirror");
    let first = mirror.create_bucket().expect("create");
    assert!(first.created && first.conditional_create, "{first:?}");
    // moto does not check checksums (R2 and S3 do): reported, not hidden.
    assert!(!first.checksum_verified, "{first:?}");
    let second = mirror.create_bucket().expect("again");
    assert!(!second.created, "a second run changes nothing: {second:?}");
    assert!(
        server.list_raw(BUCKET, "landing").is_empty(),
        "nothing is written under the landing prefix"
    );
    assert!(
        server.list_raw(BUCKET, ".materia-probe").is_empty(),
        "the probes are removed"
    );
    // The bucket is usable: a push lands there.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path()).expect("open");
    let key = land(&store, 1, 1);
    assert_eq!(mirror.push(&store, false).expect("push").uploaded, 1);
    assert!(server.get_raw(BUCKET, &format!("landing/{key}")).is_some());

    // A server that ignores If-None-Match (the header never reaches it).
    let proxy = FaultProxy::start(&server.endpoint);
    proxy.inject(
        "PUT",
        ".materia-probe",
        Fault::DropHeader("if-none-match"),
        10,
    );
    let careless = Mirror::new(options_at(&proxy.endpoint)).expect("mirror");
    let err = careless.create_bucket().expect_err("refused");
    assert!(
        matches!(
            err,
            materia_core::Error::Mirror {
                kind: materia_core::RemoteKind::Config,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("does not honour conditional writes"),
        "{err}"
    );
    assert!(proxy.injected() >= 1);
}

#[test]
fn create_bucket_probes_outside_a_locked_prefix_and_restore_skips_old_probes() {
    let server = S3Server::start();
    // An R2 bucket lock on `landing/`, simulated: every delete there is
    // refused, one by one or in bulk (`POST ?delete`, as object_store
    // deletes, naming the keys in its body).
    let proxy = FaultProxy::start(&server.endpoint);
    proxy.inject(
        "DELETE",
        &format!("/{BUCKET}/landing/"),
        Fault::Status(403),
        usize::MAX,
    );
    proxy.inject_if_body(
        "POST",
        "?delete",
        "<Key>landing/",
        Fault::Status(403),
        usize::MAX,
    );
    let mirror = Mirror::new(options_at(&proxy.endpoint)).expect("mirror");
    let report = mirror.create_bucket().expect("create");
    assert!(report.created && report.conditional_create, "{report:?}");
    assert_eq!(
        server.list_raw(BUCKET, "landing"),
        Vec::<String>::new(),
        "no probe under the locked prefix"
    );
    assert!(server.list_raw(BUCKET, ".materia-probe").is_empty());
    // The simulated lock holds: object_store's own delete there is refused.
    server.put_raw(BUCKET, "landing/locked", b"x".to_vec());
    let client = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&proxy.endpoint)
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test-secret")
        .with_allow_http(true)
        .build()
        .expect("client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let deleted = runtime.block_on(object_store::ObjectStoreExt::delete(
        &client,
        &object_store::path::Path::from("landing/locked"),
    ));
    assert!(deleted.is_err(), "the lock refuses it");
    assert_eq!(server.list_raw(BUCKET, "landing"), ["landing/locked"]);
    server.delete_raw(BUCKET, "landing/locked");

    // Probes an earlier version left under the prefix (the lock kept them)
    // are not landing files: a restore skips them, refusing nothing.
    for probe in ["1765000000000000000", "1765000000000000000.checksum"] {
        server.put_raw(
            BUCKET,
            &format!("landing/.materia-probe/{probe}"),
            b"materia probe".to_vec(),
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path().join("here")).expect("open");
    let key = land(&store, 1, 1);
    assert_eq!(mirror.push(&store, false).expect("push").uploaded, 1);
    let restored = LandingStore::open(dir.path().join("restored")).expect("open");
    let report = mirror.restore(&restored).expect("restore");
    assert!(report.refused.is_empty(), "{report:#?}");
    assert_eq!((report.downloaded, report.probes), (1, 2), "{report:#?}");
    assert!(restored.path_of(&key).exists());
    // Only the probes' own names: anything else there is still refused.
    server.put_raw(BUCKET, "landing/.materia-probe/x.csv.gzip", b"x".to_vec());
    let again = mirror.restore(&restored).expect("restore");
    assert_eq!(again.refused.len(), 1, "{again:#?}");
}
