//! Mirror and restore against a real S3-compatible server on loopback (moto).
#![cfg(feature = "s3")]

mod support {
    pub mod s3;
}

use std::fs;
use std::path::Path;

use materia_core::landing::{LandingStore, NewRelease};
use materia_core::mirror::{Mirror, MirrorOptions};
use support::s3::S3Server;

const BUCKET: &str = "materia-raw";

fn options(server: &S3Server) -> MirrorOptions {
    MirrorOptions {
        endpoint: Some(server.endpoint.clone()),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test-secret".into()),
        allow_http: Some(true),
        retries: 2,
        ..MirrorOptions::new(format!("s3://{BUCKET}/landing"))
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
    let Some(mut server) = S3Server::start() else {
        return;
    };
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
    let Some(server) = S3Server::start() else {
        return;
    };
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
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket(BUCKET);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path()).expect("open");
    let key = land(&store, 3, 3);
    let theirs = b"\x1f\x8bnot ours".to_vec();
    server.put_raw(BUCKET, &format!("landing/{key}"), theirs.clone());
    let mirror = Mirror::new(options(&server)).expect("mirror");
    let report = mirror.push(&store, false).expect("push");
    assert_eq!(report.conflicts, [key.to_string()]);
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
    let Some(server) = S3Server::start() else {
        return;
    };
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
