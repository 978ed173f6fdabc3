//! The landing store's guarantees, checked on a real filesystem.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use materia_core::Error;
use materia_core::landing::{
    Dataset, DuplicateOf, Etag, LandingKey, LandingStore, NewRelease, PutOutcome,
};

const CSV: &str = "Commodity_Code,Country_Code,Market_Year,Value\r\n0711100,BR,2025,63000.0000\r\n";

fn psd() -> Dataset {
    "psd".parse().expect("valid dataset")
}

fn release(year: i64, month: i64, etag: Option<&str>) -> NewRelease {
    NewRelease::new(psd(), year, month)
        .expect("valid month")
        .with_etag(etag.map(|e| e.parse().expect("valid etag")))
}

fn landed(outcome: PutOutcome) -> materia_core::landing::Release {
    outcome.landed().expect("a new landing")
}

/// Every file under `root`, relative, excluding the store's own `.materia/`.
fn files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("readable dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                if path.file_name() != Some(".materia".as_ref()) {
                    walk(&path, root, out);
                }
            } else {
                out.push(path.strip_prefix(root).expect("under root").to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).expect("in memory");
    enc.finish().expect("in memory")
}

fn read_all(store: &LandingStore, key: &LandingKey) -> String {
    let mut s = String::new();
    store
        .get(key)
        .expect("landed")
        .read_to_string(&mut s)
        .expect("valid gzip");
    s
}

#[test]
fn plain_input_is_gzipped_and_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path()).expect("open");
    let r = landed(
        store
            .put(release(2026, 11, Some("5e2a9f")), CSV.as_bytes())
            .expect("put"),
    );
    assert_eq!(r.key.to_string(), "psd/2026/11/5e2a9f.csv.gzip");
    assert_eq!(
        files(dir.path()),
        [PathBuf::from("psd/2026/11/5e2a9f.csv.gzip")]
    );
    let raw = fs::read(store.path_of(&r.key)).expect("landed file");
    assert_eq!(&raw[..2], &[0x1f, 0x8b], "stored as gzip");
    assert_eq!(raw.len() as u64, r.file_bytes);
    assert_eq!(read_all(&store, &r.key), CSV);
    assert_eq!(r.content_bytes, CSV.len() as u64);
}

#[test]
fn gzipped_input_is_stored_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path()).expect("open");
    // Two members, as `cat a.gz b.gz` makes: valid gzip, must be kept as is.
    let mut input = gzip(b"a,b\n");
    input.extend(gzip(b"1,2\n"));
    let r = landed(store.put(release(2026, 11, None), &input[..]).expect("put"));
    assert_eq!(fs::read(store.path_of(&r.key)).expect("landed"), input);
    assert_eq!(read_all(&store, &r.key), "a,b\n1,2\n");
    // Content addressing covers the content, not the compressed bytes.
    assert_eq!(r.key.etag, Etag::from_digest(&r.content_sha256));
    assert_eq!(
        r.content_sha256,
        materia_core::landing::Sha256Digest::of(b"a,b\n1,2\n")
    );
}

#[test]
fn broken_or_empty_input_lands_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path()).expect("open");
    let good = gzip(CSV.as_bytes());
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff; // the CRC-32 in the trailer
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"garbage");
    let cases: [(&str, Vec<u8>); 5] = [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("bad crc", bad_crc),
        ("trailing garbage", trailing),
        ("empty", Vec::new()),
        ("empty gzip", gzip(b"")),
    ];
    for (what, input) in cases {
        match store.put(release(2026, 11, Some("t")), &input[..]) {
            Err(Error::InvalidInput { reason }) => assert!(!reason.is_empty()),
            other => panic!("{what}: expected InvalidInput, got {other:?}"),
        }
    }
    assert_eq!(
        files(dir.path()),
        Vec::<PathBuf>::new(),
        "no final and no temp file"
    );
    assert!(store.list().is_empty());
}

/// A reader that yields some data, then fails like a dropped connection.
struct FailingReader {
    sent: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.sent > 1 << 20 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "peer went away",
            ));
        }
        let n = buf.len().min(4096);
        buf[..n].fill(b'x');
        self.sent += n;
        Ok(n)
    }
}

#[test]
fn an_input_error_midway_lands_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path()).expect("open");
    let err = store
        .put(release(2026, 11, Some("t")), FailingReader { sent: 0 })
        .expect_err("the input failed");
    assert!(matches!(err, Error::Input { .. }), "{err:?}");
    assert!(err.to_string().contains("peer went away"), "{err}");
    assert_eq!(files(dir.path()), Vec::<PathBuf>::new());
}

#[test]
fn same_etag_lands_once_in_any_month() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path()).expect("open");
    let first = landed(
        store
            .put(release(2026, 10, Some("e1")), CSV.as_bytes())
            .expect("put"),
    );
    for (y, m) in [(2026, 10), (2026, 11), (2027, 1)] {
        let again = store
            .put(release(y, m, Some("e1")), &b"other,content\n"[..])
            .expect("put");
        assert_eq!(
            again,
            PutOutcome::Duplicate {
                existing: first.key.clone(),
                of: DuplicateOf::Etag
            }
        );
    }
    assert_eq!(files(dir.path()), [first.key.relative_path()]);
}

#[test]
fn same_content_under_a_new_etag_lands_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path()).expect("open");
    let first = landed(
        store
            .put(release(2026, 10, Some("e1")), CSV.as_bytes())
            .expect("put"),
    );
    // A server that regenerates the file with a new ETag but the same bytes,
    // and the same content arriving gzipped.
    let again = store
        .put(release(2026, 11, Some("e2")), &gzip(CSV.as_bytes())[..])
        .expect("put");
    assert_eq!(
        again,
        PutOutcome::Duplicate {
            existing: first.key.clone(),
            of: DuplicateOf::Content
        }
    );
    // Another dataset is another namespace.
    let other = NewRelease::new("wasde".parse().expect("valid"), 2026, 11).expect("valid");
    landed(store.put(other, CSV.as_bytes()).expect("put"));
    assert_eq!(files(dir.path()).len(), 2);
}

#[test]
fn reopen_rebuilds_the_index_from_disk_and_ledger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = {
        let store = LandingStore::open(dir.path()).expect("open");
        let a = landed(
            store
                .put(release(2026, 9, Some("a")), CSV.as_bytes())
                .expect("put"),
        );
        let b = landed(
            store
                .put(release(2026, 10, None), &b"x\n"[..])
                .expect("put"),
        );
        (a, b)
    };
    let store = LandingStore::open(dir.path()).expect("reopen");
    assert!(store.contains(&psd(), &"a".parse().expect("valid")));
    assert_eq!(store.release(&a.key), Some(a.clone()));
    assert_eq!(store.latest(&psd()).map(|e| e.key), Some(b.key.clone()));
    let keys: Vec<_> = store.list().into_iter().map(|e| e.key).collect();
    assert_eq!(keys, [a.key, b.key]);
    assert_eq!(store.stats().files, 2);
    assert_eq!(store.stats().bytes, a.file_bytes + b.file_bytes);
    // Content dedup survives the reopen.
    assert!(matches!(
        store.put(release(2026, 12, Some("z")), CSV.as_bytes()),
        Ok(PutOutcome::Duplicate {
            of: DuplicateOf::Content,
            ..
        })
    ));
}

#[test]
fn two_handles_on_one_root_see_each_others_landings() {
    // Two handles hold separate flock descriptions, like two processes.
    let dir = tempfile::tempdir().expect("tempdir");
    let one = LandingStore::open(dir.path()).expect("open");
    let two = LandingStore::open(dir.path()).expect("open");
    let a = landed(
        one.put(release(2026, 11, Some("a")), CSV.as_bytes())
            .expect("put"),
    );
    assert!(matches!(
        two.put(release(2026, 11, Some("a")), CSV.as_bytes()),
        Ok(PutOutcome::Duplicate {
            of: DuplicateOf::Etag,
            ..
        })
    ));
    assert!(matches!(
        two.put(release(2026, 11, Some("b")), CSV.as_bytes()),
        Ok(PutOutcome::Duplicate {
            of: DuplicateOf::Content,
            ..
        })
    ));
    assert_eq!(two.release(&a.key), Some(a));
}

#[test]
fn concurrent_puts_of_one_etag_land_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path()).expect("open");
    let outcomes: Vec<PutOutcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store = &store;
                s.spawn(move || {
                    let body = format!("{CSV}{i}\n");
                    store
                        .put(release(2026, 11, Some("same")), body.as_bytes())
                        .expect("put")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    let landed = outcomes
        .iter()
        .filter(|o| matches!(o, PutOutcome::Landed(_)))
        .count();
    assert_eq!(landed, 1, "{outcomes:?}");
    assert_eq!(
        files(dir.path()).len(),
        1,
        "the losers' temp files are gone"
    );
}

#[test]
fn verify_names_every_corrupt_or_missing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path()).expect("open");
    let big: String = (0..2000)
        .map(|i| format!("0711100,BR,{i},{i}.0000\n"))
        .collect();
    let keys: Vec<LandingKey> = ["flip", "cut", "gone", "fine"]
        .iter()
        .enumerate()
        .map(|(i, tag)| {
            let body = format!("{big}{i}\n");
            landed(
                store
                    .put(release(2026, 11, Some(tag)), body.as_bytes())
                    .expect("put"),
            )
            .key
        })
        .collect();
    assert!(store.verify().expect("verify").is_ok());

    let flip = store.path_of(&keys[0]);
    let mut bytes = fs::read(&flip).expect("landed");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&flip, bytes).expect("corrupt it");
    let cut = store.path_of(&keys[1]);
    let len = fs::metadata(&cut).expect("landed").len();
    fs::File::options()
        .write(true)
        .open(&cut)
        .and_then(|f| f.set_len(len - 3))
        .expect("truncate it");
    fs::remove_file(store.path_of(&keys[2])).expect("delete it");

    let report = store.verify().expect("verify");
    let mut named: Vec<_> = report.bad.iter().map(|b| b.path.clone()).collect();
    named.sort();
    let mut expected: Vec<_> = keys[..3].iter().map(|k| store.path_of(k)).collect();
    expected.sort();
    assert_eq!(named, expected, "{report:#?}");
    assert!(!report.is_ok());
    assert_eq!(report.checked, 3);
}

#[test]
fn verify_catches_a_valid_gzip_swapped_in() {
    // Same size, valid gzip, different content: only the recorded hash catches it.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LandingStore::open(dir.path()).expect("open");
    let r = landed(
        store
            .put(release(2026, 11, Some("t")), &b"a,b\n1,2\n"[..])
            .expect("put"),
    );
    fs::write(store.path_of(&r.key), gzip(b"a,b\n1,3\n")).expect("swap");
    let report = store.verify().expect("verify");
    assert_eq!(report.bad.len(), 1, "{report:#?}");
    assert!(report.bad[0].problem.contains("SHA-256"), "{report:#?}");
}

#[test]
fn open_removes_stale_temps_but_not_live_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let month = dir.path().join("psd/2026/11");
    fs::create_dir_all(&month).expect("mkdir");
    let stale = month.join(".tmp.crashed.partial");
    fs::write(&stale, b"half a file").expect("write");
    let live = month.join(".tmp.live.partial");
    let live_file = fs::File::create(&live).expect("create");
    live_file.lock().expect("lock it like a live writer");
    fs::write(month.join("notes.txt"), b"stray").expect("write");

    let store = LandingStore::open(dir.path()).expect("open");
    assert!(!stale.exists(), "a crashed writer's temp file is removed");
    assert!(live.exists(), "a live writer's temp file is left alone");
    assert!(store.list().is_empty());
    let report = store.verify().expect("verify");
    assert_eq!(report.strays, [month.join("notes.txt")]);
    drop(live_file);
}

#[test]
fn files_and_dirs_are_private_to_the_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("landing");
    let store = LandingStore::open(&root).expect("open");
    let r = landed(
        store
            .put(release(2026, 11, Some("t")), CSV.as_bytes())
            .expect("put"),
    );
    let mode = |p: &Path| fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    // The process umask can only remove bits from these.
    assert_eq!(mode(&store.path_of(&r.key)) & !0o640, 0);
    for dir in ["", "psd", "psd/2026", "psd/2026/11", ".materia"] {
        assert_eq!(mode(&root.join(dir)) & !0o750, 0, "{dir}");
    }
    assert_eq!(mode(&root.join(".materia/ledger.jsonl")) & !0o640, 0);
}

#[test]
fn hostile_etags_land_inside_the_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("landing");
    let store = LandingStore::open(&root).expect("open");
    let long = "a".repeat(10_000);
    let hostile: [&[u8]; 7] = [
        b"\"../../../etc/passwd\"",
        b"/absolute",
        b"..",
        b"a\0b",
        b"\".\"",
        long.as_bytes(),
        "\"\u{202e}gnp.exe\"".as_bytes(),
    ];
    for (i, header) in hostile.iter().enumerate() {
        let etag = Etag::from_header(header).expect("non-empty");
        let body = format!("{CSV}{i}\n");
        let r = landed(
            store
                .put(
                    release(2026, 11, None).with_etag(Some(etag)),
                    body.as_bytes(),
                )
                .expect("put"),
        );
        let path = store.path_of(&r.key);
        assert_eq!(path.parent(), Some(root.join("psd/2026/11").as_path()));
        assert!(path.exists());
    }
    assert_eq!(files(&root).len(), hostile.len());
}

#[test]
fn parallel_compression_is_deterministic_and_round_trips() {
    // Several 2 MiB chunks plus a partial one.
    let body: Vec<u8> = (0..200_000u32)
        .flat_map(|i| {
            format!("0711100,BR,{},{}.0000\r\n", 1960 + i % 67, i * 7 % 90_001).into_bytes()
        })
        .collect();
    assert!(body.len() > 4 << 20);
    let mut stored = Vec::new();
    for threads in [1, 2, 5] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LandingStore::open(dir.path())
            .expect("open")
            .with_threads(threads);
        let r = landed(
            store
                .put(release(2026, 11, Some("t")), &body[..])
                .expect("put"),
        );
        let mut back = Vec::new();
        store
            .get(&r.key)
            .expect("landed")
            .read_to_end(&mut back)
            .expect("gzip");
        assert!(back == body, "{threads} threads: content differs");
        stored.push(fs::read(store.path_of(&r.key)).expect("landed"));
        assert!(store.verify().expect("verify").is_ok());
    }
    assert!(
        stored.windows(2).all(|w| w[0] == w[1]),
        "same bytes for any thread count"
    );
    // One gzip member per chunk: the magic appears at each member start.
    let members = stored[0]
        .windows(3)
        .filter(|w| *w == [0x1f, 0x8b, 0x08])
        .count();
    assert!(members >= body.len().div_ceil(2 << 20), "{members} members");
}

/// Regression tests for the hardening review (issue 12).
mod hardening {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_symlinked_month_directory_is_refused_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("landing");
        let outside = dir.path().join("outside");
        fs::create_dir_all(root.join("psd/2026")).expect("dirs");
        fs::create_dir_all(&outside).expect("outside");
        symlink(&outside, root.join("psd/2026/11")).expect("symlink");
        let store = LandingStore::open(&root).expect("open");
        let err = store
            .put(release(2026, 11, Some("x")), CSV.as_bytes())
            .expect_err("refused");
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(
            fs::read_dir(&outside).expect("outside").count(),
            0,
            "wrote outside the root"
        );
    }

    #[test]
    fn a_symlink_at_a_key_path_is_a_stray_never_a_landed_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("landing");
        let secret = dir.path().join("secret.csv.gzip");
        fs::write(&secret, gzip(b"secret,data\n1,2\n")).expect("secret");
        fs::create_dir_all(root.join("psd/2026/11")).expect("dirs");
        symlink(&secret, root.join("psd/2026/11/evil.csv.gzip")).expect("symlink");
        let store = LandingStore::open(&root).expect("open");
        assert!(store.list().is_empty(), "{:?}", store.list());
        let report = store.verify().expect("verify");
        assert_eq!(report.strays.len(), 1, "{report:?}");
        // Nor can it be read through the store.
        let key: LandingKey = "psd/2026/11/evil.csv.gzip".parse().expect("key");
        assert!(store.get(&key).is_err());
    }

    #[test]
    fn odd_entries_named_like_temp_files_do_not_hang_or_fail_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("landing");
        LandingStore::open(&root).expect("create");
        let month = root.join("psd/2026/11");
        fs::create_dir_all(&month).expect("dirs");
        nix::unistd::mkfifo(&month.join(".tmp.fifo"), nix::sys::stat::Mode::S_IRWXU).expect("fifo");
        fs::create_dir_all(root.join(".materia/spool/.tmp.dir")).expect("dir in spool");
        // A FIFO would block an open forever: run it on a thread with a deadline.
        let (tx, rx) = std::sync::mpsc::channel();
        let r = root.clone();
        std::thread::spawn(move || {
            let _ = tx.send(LandingStore::open(&r).map(|s| s.list().len()));
        });
        let opened = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("open did not hang");
        assert_eq!(opened.expect("open did not fail"), 0);
        assert!(!month.join(".tmp.fifo").exists(), "the FIFO was removed");
        assert!(
            root.join(".materia/spool/.tmp.dir").is_dir(),
            "a directory is left alone"
        );
    }

    #[test]
    fn gzip_that_duckdb_cannot_read_is_refused_at_land() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LandingStore::open(dir.path()).expect("open");
        // FTEXT | FCOMMENT: flate2 reads it, DuckDB refuses "Unsupported GZIP flags".
        let mut gz = gzip(CSV.as_bytes());
        gz[3] |= 0x01;
        let err = store
            .put(release(2026, 11, Some("ftext")), &gz[..])
            .expect_err("refused");
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        assert!(err.to_string().contains("DuckDB"), "{err}");
        let commented = {
            let mut enc = flate2::GzBuilder::new()
                .comment("a comment")
                .write(Vec::new(), Compression::default());
            enc.write_all(CSV.as_bytes()).expect("write");
            enc.finish().expect("finish")
        };
        assert!(
            store
                .put(release(2026, 11, Some("comment")), &commented[..])
                .is_err()
        );
        assert!(files(dir.path()).is_empty());
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_content_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LandingStore::open(dir.path())
            .expect("open")
            .with_max_content_bytes(1 << 20);
        let bomb = gzip(&vec![b'a'; 4 << 20]);
        assert!(bomb.len() < 64 << 10);
        let err = store
            .put(release(2026, 11, Some("bomb")), &bomb[..])
            .expect_err("refused");
        assert!(err.to_string().contains("limit"), "{err}");
        let plain = vec![b'a'; 2 << 20];
        assert!(
            store
                .put(release(2026, 11, Some("big")), &plain[..])
                .is_err()
        );
        assert!(files(dir.path()).is_empty());
    }

    #[test]
    fn csv_checks_refuse_what_transform_would_refuse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LandingStore::open(dir.path()).expect("open");
        let header: Vec<String> = ["Commodity_Code", "Country_Code", "Market_Year", "Value"]
            .map(String::from)
            .to_vec();
        let expect = |etag: &str| release(2026, 11, Some(etag)).with_csv_header(header.clone());
        for (etag, body) in [
            ("wrong", b"a,b\n1,2\n".to_vec()),
            ("nul", format!("{CSV}0711100,\0BR,2025,1\n").into_bytes()),
            ("gzipped-wrong", gzip(b"a,b\n1,2\n")),
        ] {
            let err = store.put(expect(etag), &body[..]).expect_err(etag);
            assert!(matches!(err, Error::InvalidInput { .. }), "{etag}: {err}");
        }
        assert!(files(dir.path()).is_empty());
        store
            .put(expect("good"), CSV.as_bytes())
            .expect("lands")
            .landed()
            .expect("new");
        store
            .put(
                expect("good-gz"),
                &gzip(CSV.replace("63000", "1").as_bytes())[..],
            )
            .expect("lands")
            .landed()
            .expect("new");
    }
}
