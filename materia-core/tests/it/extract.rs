//! Extraction against a real HTTP server on loopback, including a misbehaving one.

use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use materia_core::Error;
use materia_core::dataset::{DatasetSpec, Limits, PSD_COLUMNS};
use materia_core::extract::{Extracted, Extractor, Status};
use materia_core::landing::{DuplicateOf, LandingStore, Month, Sha256Digest, Year, current_month};
use materia_testkit::http::{Reply, Server};

fn csv(rows: usize, seed: u64) -> Vec<u8> {
    let mut out = format!("\u{feff}{}\r\n", PSD_COLUMNS.join(",")).into_bytes();
    for i in 0..rows {
        let line = format!(
            "0711100,\"Coffee, Green\",NA,Netherlands Antilles,{},{},00,141,\"Rst,Ground Dom. Consum\",02,(1000 60 KG BAGS),{}.0000\r\n",
            1960 + i % 60,
            1960 + i % 60,
            seed * 1000 + i as u64,
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}

fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, body) in members {
        w.start_file(*name, opts).expect("zip member");
        w.write_all(body).expect("zip write");
    }
    w.finish().expect("zip finish").into_inner()
}

fn limits() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(700),
        backoff: Duration::from_millis(10),
        retries: 2,
        ..Limits::default()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    outside: PathBuf,
    root: PathBuf,
    store: LandingStore,
    extractor: Extractor,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = dir.path().to_path_buf();
    let root = outside.join("landing");
    let store = LandingStore::open(&root).expect("open");
    Fixture {
        _dir: dir,
        outside,
        root,
        store,
        extractor: Extractor::new(limits()).expect("client"),
    }
}

impl Fixture {
    fn fetch(&self, url: &str) -> materia_core::Result<Extracted> {
        let spec = DatasetSpec {
            url: url.to_owned(),
            ..DatasetSpec::psd()
        };
        self.extractor.fetch(&self.store, &spec)
    }

    /// Asserts nothing landed: no files, and no temp file survives a reopen.
    fn assert_nothing_landed(&self) {
        let store = LandingStore::open(&self.root).expect("reopen");
        assert!(store.list().is_empty(), "{:?}", store.list());
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir).expect("readable") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let name = p.file_name().expect("name").to_string_lossy().into_owned();
                    assert!(!name.starts_with(".tmp"), "temp file left: {}", p.display());
                }
            }
        }
        assert_eq!(store.verify().expect("verify").checked, 0);
    }
}

fn this_month() -> String {
    let (y, m) = current_month();
    format!("{y}/{m}")
}

fn landed_key(done: &Extracted) -> String {
    match &done.status {
        Status::Landed { key, .. } => key.to_string(),
        other => panic!("expected landed, got {other:?}"),
    }
}

#[test]
fn first_fetch_lands_then_304_downloads_nothing() {
    let f = fixture();
    let body = zip_of(&[("psd_coffee.csv", &csv(500, 1))]);
    let server = Server::start(move |req, _| {
        if req.header("If-None-Match") == Some("\"v1\"") {
            Reply::status(304)
        } else {
            Reply::ok(
                body.clone(),
                &[
                    ("ETag", "\"v1\""),
                    ("Last-Modified", "Tue, 10 Nov 2026 14:00:00 GMT"),
                ],
            )
        }
    });
    let url = server.url("/psd_coffee_csv.zip");
    let first = f.fetch(&url).expect("first fetch");
    assert_eq!(
        landed_key(&first),
        format!("psd/{}/v1.csv.gzip", this_month())
    );
    let mut content = Vec::new();
    std::io::Read::read_to_end(
        &mut f.store.get(&first_key(&first)).expect("landed"),
        &mut content,
    )
    .expect("gzip");
    assert_eq!(content, csv(500, 1), "the CSV member, byte for byte");
    let release = f.store.release(&first_key(&first)).expect("recorded");
    assert_eq!(release.etag_header.as_deref(), Some("\"v1\""));
    assert_eq!(
        release.last_modified.as_deref(),
        Some("Tue, 10 Nov 2026 14:00:00 GMT")
    );

    let second = f.fetch(&url).expect("second fetch");
    assert_eq!(second.status, Status::Unchanged);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("If-None-Match"), None);
    assert_eq!(reqs[1].header("If-None-Match"), Some("\"v1\""));
    assert_eq!(
        reqs[1].header("If-Modified-Since"),
        Some("Tue, 10 Nov 2026 14:00:00 GMT")
    );
    assert!(
        reqs[0]
            .header("User-Agent")
            .is_some_and(|ua| ua.starts_with("materia/"))
    );
    assert_eq!(server.bodies_sent(), 1, "the 304 carried no body");
    assert_eq!(f.store.list().len(), 1);
}

fn first_key(done: &Extracted) -> materia_core::landing::LandingKey {
    landed_key(done).parse().expect("valid key")
}

#[test]
fn a_new_release_lands_a_second_file_in_the_same_month() {
    let f = fixture();
    let server = Server::start(|_, n| {
        let (tag, seed) = if n == 0 { ("\"v1\"", 1) } else { ("\"v2\"", 2) };
        Reply::ok(zip_of(&[("c.csv", &csv(100, seed))]), &[("ETag", tag)])
    });
    let url = server.url("/c.zip");
    let a = f.fetch(&url).expect("v1");
    let b = f.fetch(&url).expect("v2");
    assert_eq!(landed_key(&a), format!("psd/{}/v1.csv.gzip", this_month()));
    assert_eq!(landed_key(&b), format!("psd/{}/v2.csv.gzip", this_month()));
    assert_eq!(f.store.list().len(), 2);
}

#[test]
fn if_modified_since_alone_gives_304_and_an_ignoring_server_gives_duplicate() {
    let f = fixture();
    let body = csv(100, 3);
    let lm = "Wed, 11 Nov 2026 09:00:00 GMT";
    let server = Server::start(move |req, _| match req.path.as_str() {
        "/honours" if req.header("If-Modified-Since") == Some(lm) => Reply::status(304),
        _ => Reply::ok(body.clone(), &[("Last-Modified", lm)]),
    });
    // No ETag: addressed by content.
    let first = f.fetch(&server.url("/honours")).expect("first");
    let sha = Sha256Digest::of(&csv(100, 3));
    assert_eq!(
        landed_key(&first),
        format!("psd/{}/{sha}.csv.gzip", this_month())
    );
    assert_eq!(
        f.fetch(&server.url("/honours")).expect("again").status,
        Status::Unchanged
    );
    // A server that ignores conditional requests: the same content lands nothing.
    let other = f.fetch(&server.url("/ignores")).expect("other url");
    assert!(
        matches!(
            other.status,
            Status::Duplicate {
                of: DuplicateOf::Content,
                ..
            }
        ),
        "{other:?}"
    );
    assert_eq!(f.store.list().len(), 1);
}

#[test]
fn weak_missing_and_hostile_etags_land_under_the_root_only() {
    let f = fixture();
    let tags = ["W/\"x\"", "", "\"../../../tmp/x\"", "\"a/b c\"", "\"..\""];
    let server = Server::start(move |_, n| {
        let body = csv(50, 10 + n as u64);
        match tags[n] {
            "" => Reply::ok(body, &[]),
            tag => Reply::ok(body, &[("ETag", tag)]),
        }
    });
    let mut keys = Vec::new();
    for i in 0..tags.len() {
        let done = f.fetch(&server.url(&format!("/r{i}"))).expect("fetch");
        keys.push(landed_key(&done));
    }
    assert_eq!(keys[0], format!("psd/{}/x.csv.gzip", this_month()));
    assert_eq!(
        keys[1],
        format!(
            "psd/{}/{}.csv.gzip",
            this_month(),
            Sha256Digest::of(&csv(50, 11))
        )
    );
    for key in &keys[2..] {
        let name = key.rsplit('/').next().expect("file name");
        assert!(name.starts_with("x-") && !name.contains(".."), "{key}");
    }
    // Nothing was created beside the landing root, and everything is inside it.
    let beside: Vec<_> = fs::read_dir(&f.outside)
        .expect("readable")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(beside, ["landing"]);
    assert!(!Path::new("/tmp/x.csv.gzip").exists());
    assert_eq!(f.store.verify().expect("verify").checked, 5);
}

#[test]
fn a_500_then_success_is_retried() {
    let f = fixture();
    let server = Server::start(|_, n| match n {
        0 => Reply::status(500),
        1 => Reply::status(429),
        _ => Reply::ok(csv(10, 1), &[("ETag", "\"ok\"")]),
    });
    let done = f.fetch(&server.url("/flaky")).expect("retried to success");
    assert_eq!(
        landed_key(&done),
        format!("psd/{}/ok.csv.gzip", this_month())
    );
    assert_eq!(server.requests().len(), 3);
}

fn expect_extract_error(f: &Fixture, url: &str, says: &str) {
    match f.fetch(url) {
        Err(Error::Extract {
            url: named, reason, ..
        }) => {
            assert_eq!(named, url, "the error names the URL");
            assert!(reason.contains(says), "{says:?} not in {reason:?}");
        }
        other => panic!("{url}: expected an extract error saying {says:?}, got {other:?}"),
    }
    f.assert_nothing_landed();
}

#[test]
fn faults_land_nothing_and_say_what_went_wrong() {
    let f = fixture();
    let big = csv(20_000, 5);
    let server = Server::start(move |req, _| match req.path.as_str() {
        "/down" => Reply::status(500),
        "/truncated" => Reply::Truncated {
            sent: big.len() / 2,
            body: big.clone(),
        },
        "/truncated.zip" => {
            let z = zip_of(&[("c.csv", &big)]);
            Reply::ok(z[..z.len() - 30].to_vec(), &[])
        }
        "/html" => Reply::ok(
            "<!DOCTYPE html><html><body>Service temporarily unavailable</body></html>",
            &[("Content-Type", "text/html")],
        ),
        "/wrong-header" => Reply::ok("a,b,c\r\n1,2,3\r\n", &[]),
        "/stall" => Reply::Stall {
            prefix: big[..1000].to_vec(),
            stall: Duration::from_secs(3),
        },
        "/empty" => Reply::ok(Vec::new(), &[]),
        "/nul-in-header" => {
            let mut body = big.clone();
            body[5] = 0;
            Reply::ok(body, &[])
        }
        "/nul-in-data" => {
            let mut body = big.clone();
            let at = body.len() / 2;
            body[at] = 0;
            Reply::ok(body, &[])
        }
        "/endless-line" => {
            let mut body = big.clone();
            body.extend(std::iter::repeat_n(b'9', 10 << 20));
            Reply::ok(body, &[])
        }
        "/endless-header" => Reply::ok(vec![b'A'; 10 << 20], &[]),
        _ => Reply::status(404),
    });
    expect_extract_error(&f, &server.url("/down"), "500 Internal Server Error");
    expect_extract_error(&f, &server.url("/truncated"), "reading the download failed");
    expect_extract_error(&f, &server.url("/truncated.zip"), "not a complete zip");
    expect_extract_error(&f, &server.url("/html"), "HTML page");
    expect_extract_error(&f, &server.url("/wrong-header"), "missing Commodity_Code");
    expect_extract_error(&f, &server.url("/stall"), "timed out");
    expect_extract_error(&f, &server.url("/empty"), "empty");
    expect_extract_error(
        &f,
        &server.url("/nul-in-header"),
        "NUL byte at offset 5 (line 1)",
    );
    expect_extract_error(&f, &server.url("/nul-in-data"), "NUL byte");
    expect_extract_error(
        &f,
        &server.url("/endless-line"),
        "is longer than 1048576 bytes",
    );
    expect_extract_error(&f, &server.url("/endless-header"), "no CSV header line");
    expect_extract_error(&f, &server.url("/missing"), "404");
    // The permanent 500 was tried 1 + retries times.
    let tries = server
        .requests()
        .iter()
        .filter(|r| r.path == "/down")
        .count();
    assert_eq!(tries, 3);
}

#[test]
fn size_limits_stop_big_bodies_and_zip_bombs() {
    let mut f = fixture();
    f.extractor = Extractor::new(Limits {
        max_body_bytes: 200_000,
        max_content_bytes: 1 << 20,
        ..limits()
    })
    .expect("client");
    let big = csv(20_000, 6);
    let mut bomb = format!("{}\r\n", PSD_COLUMNS.join(",")).into_bytes();
    bomb.resize(64 << 20, b'0');
    let bomb = zip_of(&[("bomb.csv", &bomb)]);
    assert!(bomb.len() < 200_000, "the bomb is small: {}", bomb.len());
    let server = Server::start(move |req, _| match req.path.as_str() {
        "/big" => Reply::ok(big.clone(), &[]),
        _ => Reply::ok(bomb.clone(), &[]),
    });
    expect_extract_error(
        &f,
        &server.url("/big"),
        "body is larger than the limit of 200000",
    );
    expect_extract_error(
        &f,
        &server.url("/bomb.zip"),
        "CSV content is larger than the limit",
    );
}

#[test]
fn zip_member_selection_is_strict() {
    let f = fixture();
    let good = csv(10, 1);
    let server = Server::start(move |req, _| {
        let members: Vec<(&str, &[u8])> = match req.path.as_str() {
            "/two.zip" => vec![("a.csv", &good), ("b.csv", &good)],
            "/none.zip" => vec![("readme.txt", b"hello")],
            "/climb.zip" => vec![("../x.csv", &good)],
            _ => vec![("notes.txt", b"x"), ("data/psd.CSV", &good)],
        };
        Reply::ok(zip_of(&members), &[])
    });
    expect_extract_error(&f, &server.url("/two.zip"), "several .csv members");
    expect_extract_error(
        &f,
        &server.url("/none.zip"),
        "no .csv member; it holds readme.txt",
    );
    expect_extract_error(&f, &server.url("/climb.zip"), "unsafe name");
    let done = f
        .fetch(&server.url("/one.zip"))
        .expect("one csv among other files");
    landed_key(&done);
}

#[test]
fn archives_land_in_their_own_month_and_404_is_not_published() {
    let f = fixture();
    let server = Server::start(|req, _| match req.path.as_str() {
        "/archives/2024/03/psd_coffee_csv.zip" => Reply::ok(
            zip_of(&[("psd_coffee.csv", &csv(30, 2403))]),
            &[("ETag", "\"a2403\"")],
        ),
        _ => Reply::status(404),
    });
    let spec = DatasetSpec {
        archive_url: Some(server.url("/archives/{YYYY}/{MM}/psd_coffee_csv.zip")),
        ..DatasetSpec::psd()
    };
    let y = Year::new(2024).expect("valid");
    let march = f
        .extractor
        .fetch_archive(&f.store, &spec, y, Month::new(3).expect("valid"))
        .expect("march");
    assert_eq!(landed_key(&march), "psd/2024/03/a2403.csv.gzip");
    let april = f
        .extractor
        .fetch_archive(&f.store, &spec, y, Month::new(4).expect("valid"))
        .expect("april");
    assert_eq!(april.status, Status::NotPublished);
    // A plain fetch that 404s is an error, not "not published".
    expect_extract_error_kept(&f, &server.url("/nope"));
}

fn expect_extract_error_kept(f: &Fixture, url: &str) {
    assert!(matches!(f.fetch(url), Err(Error::Extract { .. })));
}

#[test]
fn file_urls_work_offline() {
    let f = fixture();
    let path = f.outside.join("psd_coffee_csv.zip");
    fs::write(&path, zip_of(&[("psd_coffee.csv", &csv(40, 7))])).expect("write");
    let url = format!("file://{}", path.display());
    let done = f.fetch(&url).expect("file url");
    landed_key(&done);
    let again = f.fetch(&url).expect("again");
    assert!(
        matches!(again.status, Status::Duplicate { .. }),
        "{again:?}"
    );
}

#[test]
fn a_big_body_streams_through() {
    // About 24 MiB streamed from a 2.4 MiB chunk (later copies repeat the header
    // line inside the data, which is fine for landing).
    let f = fixture();
    let chunk = Arc::new(csv(20_000, 9));
    let len = chunk.len() as u64 * 10;
    let server = Server::start(move |_, _| Reply::Stream {
        chunk: chunk.clone(),
        len,
    });
    let done = f.fetch(&server.url("/big.csv")).expect("streamed");
    match done.status {
        Status::Landed {
            bytes_in,
            content_bytes,
            ..
        } => assert_eq!((bytes_in, content_bytes), (len, len)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_body_whose_first_bytes_arrive_apart_is_still_recognised() {
    // Regression: the format sniff read once, so `PK`, a pause, then the rest of
    // a zip was refused as "not CSV text".
    let zip = zip_of(&[("psd_coffee.csv", &csv(50, 1))]);
    let f = fixture();
    let server = Server::start(move |_, _| Reply::Paused {
        body: zip.clone(),
        split: 2,
        pause: Duration::from_millis(300),
    });
    let done = f.fetch(&server.url("/psd.zip")).expect("lands");
    let key = landed_key(&done);
    assert!(key.starts_with(&format!("psd/{}/", this_month())), "{key}");
}

#[test]
fn url_tokens_stay_out_of_the_ledger_and_off_the_next_host() {
    // Regression: `redact` removed only URL passwords, so query-string tokens
    // reached the ledger, logs and state; and a redirect carried the URL (with
    // its token) to the next host as a Referer.
    let body = zip_of(&[("psd_coffee.csv", &csv(20, 3))]);
    let target = Server::start(move |_, _| Reply::ok(body.clone(), &[]));
    let location = target.url("/psd.zip");
    let origin = Server::start(move |_, _| Reply::Full {
        status: 302,
        headers: vec![("Location".into(), location.clone())],
        body: Vec::new(),
    });
    let f = fixture();
    let done = f
        .fetch(&format!("{}?token=s3cr3t&sig=abc", origin.url("/download")))
        .expect("lands");
    assert!(!done.url.contains("s3cr3t"), "{}", done.url);
    assert!(done.url.contains("token=***"), "{}", done.url);
    let key = first_key(&done);
    let source = f
        .store
        .release(&key)
        .expect("recorded")
        .source
        .expect("source");
    assert!(
        !source.contains("s3cr3t") && !source.contains("abc"),
        "{source}"
    );
    let ledger = fs::read_to_string(f.root.join(".materia/ledger.jsonl")).expect("ledger");
    assert!(!ledger.contains("s3cr3t"), "{ledger}");
    let seen = target.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("referer"),
        None,
        "the token went on as a Referer"
    );
}

#[test]
fn a_huge_total_timeout_means_no_deadline_not_a_panic() {
    // Regression: `Instant::now() + total_timeout` panicked on a configured
    // value too large to add.
    let f = fixture();
    let path = f.outside.join("psd_coffee_csv.zip");
    fs::write(&path, zip_of(&[("psd_coffee.csv", &csv(40, 8))])).expect("write");
    let extractor = Extractor::new(Limits {
        total_timeout: Duration::MAX,
        ..limits()
    })
    .expect("client");
    let spec = DatasetSpec {
        url: format!("file://{}", path.display()),
        ..DatasetSpec::psd()
    };
    let done = extractor.fetch(&f.store, &spec).expect("lands");
    landed_key(&done);
}

#[cfg(feature = "s3")] // tokio comes with the mirror
#[test]
fn from_async_code_the_extractor_works_and_drops_without_a_panic() {
    let f = fixture();
    let path = f.outside.join("psd_coffee_csv.zip");
    fs::write(&path, zip_of(&[("psd_coffee.csv", &csv(40, 9))])).expect("write");
    let spec = DatasetSpec {
        url: format!("file://{}", path.display()),
        ..DatasetSpec::psd()
    };
    let made_outside = Extractor::new(limits()).expect("client");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let store = std::sync::Arc::new(f.store);
    rt.block_on(async move {
        // On an executor thread: created, used and dropped without a panic.
        let inside = Extractor::new(limits()).expect("client");
        landed_key(&inside.fetch(&store, &spec).expect("fetched"));
        drop(inside);
        drop(made_outside);
        // The recommended way.
        let done = tokio::task::spawn_blocking(move || {
            Extractor::new(limits()).and_then(|e| e.fetch(&store, &spec))
        })
        .await
        .expect("joined")
        .expect("fetched");
        assert!(matches!(done.status, Status::Duplicate { .. }), "{done:?}");
    });
}
