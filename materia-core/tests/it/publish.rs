//! `materia_core::publish` against a real S3 server on loopback (moto): the
//! files and manifests in the bucket, read back by DuckDB.

use std::collections::BTreeSet;

use materia_core::publish::{Manifest, Prepared, PublishOptions, publish};
use materia_core::transform::transform;
use materia_core::{Error, RemoteKind};
use materia_testkit::s3::S3Server;

use crate::{Fixture, fixture};

const BUCKET: &str = "materia-lake";

fn options(f: &Fixture, server: &S3Server) -> PublishOptions {
    let mut o = PublishOptions::new(&f.options.duckdb_path, format!("s3://{BUCKET}/v1"));
    o.bucket.endpoint = Some(server.endpoint.clone());
    o.bucket.region = Some("us-east-1".into());
    o.bucket.access_key_id = Some("test".into());
    o.bucket.secret_access_key = Some("test-secret".into());
    o.bucket.allow_http = Some(true);
    o.bucket.retries = 1;
    o.memory_limit = "512MB".into();
    o
}

fn land(f: &Fixture, k: u64) {
    let body = materia_testkit::psd_csv(&materia_testkit::PsdSpec {
        min_bytes: 80_000,
        seed: k,
    });
    f.put_release("psd", (2026, k as i64), &format!("p{k}"), &body);
}

fn latest(server: &S3Server) -> (Vec<u8>, Manifest) {
    let bytes = server
        .get_raw(BUCKET, "v1/latest.json")
        .expect("latest.json");
    let m = serde_json::from_slice(&bytes).expect("a manifest");
    (bytes, m)
}

fn objects(server: &S3Server) -> BTreeSet<String> {
    server.list_raw(BUCKET, "v1").into_iter().collect()
}

/// Each table of `m`, read back from the bucket's files by DuckDB, has the
/// rows of the lakehouse's table: count and the sum of every row's hash.
fn assert_matches_lakehouse(f: &Fixture, server: &S3Server, m: &Manifest) {
    let lake = f.lake();
    let duck = materia_core::transform::duckdb::Connection::open_in_memory().expect("duckdb");
    let dir = tempfile::tempdir().expect("tempdir");
    let fingerprint = "SELECT count(*), coalesce(sum(hash(*COLUMNS(*))::HUGEINT), 0)::VARCHAR";
    for (name, table) in &m.tables {
        let mut local = Vec::new();
        for (i, file) in table.files.iter().enumerate() {
            let body = server
                .get_raw(BUCKET, &format!("v1/{}", file.path))
                .unwrap_or_else(|| panic!("{name}: {} is missing", file.path));
            assert_eq!(
                materia_core::landing::Sha256Digest::of(&body).to_string(),
                file.sha256,
                "{name}: {} is named by its content",
                file.path
            );
            assert!(file.path.ends_with(&format!("{}.parquet", file.sha256)));
            let path = dir.path().join(format!("{name}.{i}.parquet"));
            std::fs::write(&path, body).expect("write");
            local.push(format!("'{}'", path.display()));
        }
        let from_files: (i64, String) = duck
            .query_row(
                &format!("{fingerprint} FROM read_parquet([{}])", local.join(",")),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("DuckDB reads the files");
        let from_lake: (i64, String) = lake
            .connection()
            .query_row(&format!("{fingerprint} FROM {name}"), [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("the lakehouse");
        assert_eq!(from_files, from_lake, "{name}");
        assert_eq!(
            table.rows, from_lake.0 as u64,
            "{name}: rows in the manifest"
        );
    }
}

#[test]
fn publish_uploads_each_file_once_moves_latest_last_and_keeps_n_builds() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let f = fixture();
    land(&f, 1);
    land(&f, 2);
    transform(&f.store, &f.options).expect("build");
    let o = options(&f, &server);

    let first = publish(&o).expect("publish");
    assert!(!first.unchanged);
    assert_eq!((first.uploaded, first.skipped), (first.files, 0));
    let (bytes, m) = latest(&server);
    assert_eq!(m.build, first.build);
    assert_eq!(
        server.get_raw(BUCKET, &format!("v1/{}", first.manifest)),
        Some(bytes),
        "latest.json is a copy of the build's manifest"
    );
    for table in [
        "serving.coffee_balance",
        "serving.psd_latest",
        "serving.releases",
        "raw.psd_changes",
        "raw.psd_closed",
    ] {
        assert!(m.tables.contains_key(table), "{table} published");
    }
    let changes = &m.tables["raw.psd_changes"];
    assert_eq!(changes.partition_by.as_deref(), Some("from_ord"));
    assert_eq!(changes.files.len(), 2, "one file per release");
    assert_eq!(m.releases.as_array().map(Vec::len), Some(2));
    assert!(
        m.views.contains_key("serving.psd_history"),
        "{:?}",
        m.views.keys()
    );
    assert_matches_lakehouse(&f, &server, &m);

    // Nothing new: nothing written.
    let before = objects(&server);
    let again = publish(&o).expect("again");
    assert!(again.unchanged);
    assert_eq!((again.uploaded, again.bytes_uploaded), (0, 0));
    assert_eq!(objects(&server), before);
    // From async code too (a web app's handler): no panic, the same answer.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let inside = runtime
        .block_on(async { publish(&o) })
        .expect("from async code");
    assert!(inside.unchanged, "{inside:?}");

    // One more release: its partition and the rebuilt tables go up; the
    // earlier releases' change files are the same bytes, not uploaded again.
    land(&f, 3);
    transform(&f.store, &f.options).expect("second build");
    let third = publish(&o).expect("publish the new build");
    let (_, m3) = latest(&server);
    assert_eq!(m3.build, third.build);
    assert_ne!(m3.build, m.build);
    let old_changes: BTreeSet<&str> = changes.files.iter().map(|f| f.path.as_str()).collect();
    let new_changes: BTreeSet<&str> = m3.tables["raw.psd_changes"]
        .files
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(new_changes.len(), 3);
    assert!(
        old_changes.is_subset(&new_changes),
        "the first two releases' change files are reused"
    );
    assert!(third.skipped >= 2, "{third:?}");
    assert!(third.uploaded < third.files, "{third:?}");
    assert_matches_lakehouse(&f, &server, &m3);

    // Keep one build: the files only the old build used go, then its
    // manifest; everything the latest names is still there.
    let mut keep = o.clone();
    keep.keep = Some(1);
    let kept = publish(&keep).expect("keep 1");
    assert!(kept.unchanged);
    let only_old: BTreeSet<String> = m
        .paths()
        .filter(|p| !m3.paths().any(|q| q == *p))
        .map(str::to_owned)
        .collect();
    assert!(!only_old.is_empty());
    assert_eq!(kept.removed, only_old.len() + 1, "{kept:?}");
    let left = objects(&server);
    for p in &only_old {
        assert!(!left.contains(&format!("v1/{p}")), "{p} removed");
    }
    assert!(!left.contains(&format!("v1/{}", first.manifest)));
    for p in m3.paths() {
        assert!(left.contains(&format!("v1/{p}")), "{p} kept");
    }
    assert_matches_lakehouse(&f, &server, &m3);
}

#[test]
fn of_two_racing_publishes_one_wins_and_the_other_fails_cleanly() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let (a, b) = (fixture(), fixture());
    land(&a, 1);
    land(&b, 1);
    land(&b, 2);
    transform(&a.store, &a.options).expect("a");
    transform(&b.store, &b.options).expect("b");
    // Both read latest.json (absent) before either moves it.
    let pa = Prepared::prepare(&options(&a, &server)).expect("prepare a");
    let pb = Prepared::prepare(&options(&b, &server)).expect("prepare b");
    let b_manifest = pb.manifest().clone();
    let won = pa.commit().expect("a wins");
    let lost = pb.commit().expect_err("b loses");
    assert!(
        matches!(
            lost,
            Error::Publish {
                kind: RemoteKind::Conflict,
                ..
            }
        ),
        "{lost}"
    );
    assert!(lost.to_string().contains("another publish"), "{lost}");
    let (_, m) = latest(&server);
    assert_eq!(m.build, won.build, "latest.json is the winner's, whole");
    assert_matches_lakehouse(&a, &server, &m);
    // Nothing of the loser's is lost: its files are there, and publishing
    // again (after the winner) succeeds, reusing them.
    let left = objects(&server);
    for p in b_manifest.paths() {
        assert!(left.contains(&format!("v1/{p}")), "{p}");
    }
    let retry = publish(&options(&b, &server)).expect("b again");
    assert_eq!(retry.uploaded, 0, "{retry:?}");
    let (_, m) = latest(&server);
    assert_eq!(m, b_manifest);
    assert_matches_lakehouse(&b, &server, &m);
}

#[test]
fn publish_trusts_neither_latest_json_nor_the_bucket() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let f = fixture();
    for k in 1..=4 {
        land(&f, k);
    }
    transform(&f.store, &f.options).expect("build");
    let mut o = options(&f, &server);
    let first = publish(&o).expect("publish");
    let (_, m1) = latest(&server);
    let changes = m1.tables["raw.psd_changes"].files.clone();
    assert_eq!(changes.len(), 4, "one file per release");
    let object = |path: &str| format!("v1/{path}");

    // latest.json lies: a URL elsewhere, and more rows than the file has.
    let mut lying = m1.clone();
    let files = &mut lying
        .tables
        .get_mut("raw.psd_changes")
        .expect("changes")
        .files;
    files[0].url = "https://evil.example/x.parquet".into();
    files[3].rows += 1;
    server.put_raw(BUCKET, "v1/latest.json", lying.to_bytes());
    // The bucket holds two of the files broken under their names: one
    // truncated, one other bytes of the same size, whose SHA-256 the server
    // keeps (as R2 and S3 keep that of every PUT).
    let truncated = server
        .get_raw(BUCKET, &object(&changes[1].path))
        .expect("file");
    server.put_raw(
        BUCKET,
        &object(&changes[1].path),
        truncated[..truncated.len() / 2].to_vec(),
    );
    let other = vec![b'x'; changes[2].bytes as usize];
    server.put_raw_with_sha256(BUCKET, &object(&changes[2].path), other);

    // Old manifests that are not what they seem. One names latest.json, a
    // key outside data/ and a data file; another is older than the first
    // build but its published_at sorts after every other as text.
    let sha = materia_core::landing::Sha256Digest::of(b"planted");
    let planted = format!("data/serving.evil/{sha}.parquet");
    server.put_raw(BUCKET, &object(&planted), b"planted".to_vec());
    server.put_raw(BUCKET, "v1/other/keepme", b"keep".to_vec());
    let mut naming = m1.clone();
    naming.published_at = "2000-01-01T00:00:00Z".into();
    let file = |path: &str| materia_core::publish::File {
        path: path.into(),
        url: format!("s3://{BUCKET}/v1/{path}"),
        sha256: sha.to_string(),
        bytes: 7,
        rows: 0,
        partition: None,
    };
    naming
        .tables
        .get_mut("serving.releases")
        .expect("releases")
        .files = vec![file("latest.json"), file("other/keepme"), file(&planted)];
    let naming_key = "manifests/0-evil0000.0000000000000001.json";
    server.put_raw(BUCKET, &object(naming_key), naming.to_bytes());
    let first_at: jiff::Timestamp = m1.published_at.parse().expect("a time");
    let mut text_newest = m1.clone();
    let hour_earlier = first_at - jiff::SignedDuration::from_hours(1);
    text_newest.published_at = format!("{}+14:00", jiff::tz::offset(14).to_datetime(hour_earlier));
    assert!(text_newest.published_at > m1.published_at);
    let text_newest_key = "manifests/0-evil0000.0000000000000002.json";
    server.put_raw(BUCKET, &object(text_newest_key), text_newest.to_bytes());

    // The next build, keeping two builds.
    land(&f, 5);
    transform(&f.store, &f.options).expect("second build");
    o.keep = Some(2);
    let second = publish(&o).expect("publish");
    let (_, m2) = latest(&server);
    assert_eq!(m2.build, second.build);
    for p in m2.tables.values().flat_map(|t| &t.files) {
        assert_eq!(
            p.url,
            format!("s3://{BUCKET}/v1/{}", p.path),
            "URLs from the prefix"
        );
    }
    assert_eq!(second.replaced, 2, "{second:?}");
    // Every file whole, every row count the lakehouse's.
    assert_matches_lakehouse(&f, &server, &m2);
    // The two newest builds by time stay; of the others only keys of
    // publish's own shapes went.
    let left = objects(&server);
    assert!(left.contains(&object(&first.manifest)), "{left:?}");
    assert!(left.contains("v1/latest.json"));
    assert!(left.contains("v1/other/keepme"));
    assert!(!left.contains(&object(&planted)));
    assert!(!left.contains(&object(naming_key)));
    assert!(!left.contains(&object(text_newest_key)));
    assert_eq!(second.removed, 3, "{second:?}");
}

/// Review of issue 24, item 7: a `latest.json` edited to claim the current
/// build was taken as "already published" and kept as it was, and `--keep`
/// then removed the build's own files next to a planted future manifest; a
/// file named for two partitions stood for both; a file overwritten by an
/// SDK (a CRC32 checksum, no SHA-256) was reused.
#[test]
fn an_edited_latest_json_is_rewritten_and_its_files_are_checked_again() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let f = fixture();
    for k in 1..=3 {
        land(&f, k);
    }
    transform(&f.store, &f.options).expect("build");
    let mut o = options(&f, &server);
    publish(&o).expect("publish");
    let (_, m1) = latest(&server);

    // Same build, other prefix and time; a planted manifest dated later.
    let mut lying = m1.clone();
    lying.prefix = "s3://evil/v1".into();
    lying.published_at = "2020-01-01T00:00:00Z".into();
    server.put_raw(BUCKET, "v1/latest.json", lying.to_bytes());
    let mut planted = m1.clone();
    planted.published_at = "2999-01-01T00:00:00Z".into();
    planted.tables.clear();
    server.put_raw(
        BUCKET,
        "v1/manifests/zz.0000000000000000.json",
        planted.to_bytes(),
    );
    o.keep = Some(1);
    let again = publish(&o).expect("publish");
    assert!(!again.unchanged, "an edited latest.json is not this build");
    let (_, m) = latest(&server);
    assert_eq!(m.prefix, format!("s3://{BUCKET}/v1"));
    assert!(objects(&server).contains(&format!("v1/{}", again.manifest)));
    assert_matches_lakehouse(&f, &server, &m);

    // latest.json names one release's file for two partitions, and an SDK
    // overwrote another standing file (same size, CRC32 kept, no SHA-256).
    let mut swapped = m.clone();
    let files = &mut swapped
        .tables
        .get_mut("raw.psd_changes")
        .expect("changes")
        .files;
    let (first, second) = (files[0].clone(), files[1].clone());
    files[1] = materia_core::publish::File {
        partition: second.partition,
        ..first
    };
    let third = files[2].clone();
    server.put_raw(BUCKET, "v1/latest.json", swapped.to_bytes());
    server.put_raw_with_crc32(
        BUCKET,
        &format!("v1/{}", third.path),
        vec![b'x'; third.bytes as usize],
    );
    land(&f, 4);
    transform(&f.store, &f.options).expect("the next build");
    let next = publish(&o).expect("publish");
    assert!(next.replaced >= 1, "the overwritten file: {next:?}");
    let (_, m) = latest(&server);
    assert_matches_lakehouse(&f, &server, &m);
}
