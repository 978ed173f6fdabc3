//! The `materia` binary, run as a user (or systemd) would run it.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use materia_core::landing::{LandingKey, LandingStore, Sha256Digest};
use serde_json::Value;

use crate::materia;

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("materia runs")
}

/// Runs `cmd` with `input` on its standard input.
fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("materia runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("pipe");
    child.wait_with_output().expect("exits")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("valid JSON on stdout")
}

/// A PSD-like CSV of at least `bytes` bytes; `seed` makes each one distinct.
fn csv(bytes: usize, seed: u64) -> Vec<u8> {
    materia_testkit::psd_csv(&materia_testkit::PsdSpec {
        min_bytes: bytes,
        seed,
    })
}

#[test]
fn land_ls_stats_verify_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let input = dir.path().join("psd_coffee.csv");
    fs::write(&input, csv(50_000, 1)).expect("write input");

    let out = json(&run(materia(&landing)
        .args(["land", "--dataset", "psd", "--etag"])
        .arg("W/\"5e2a9f\"")
        .args(["--year", "2026", "--month", "11", "--json"])
        .arg(&input)));
    assert_eq!(out["outcome"], "landed");
    assert_eq!(out["key"], "psd/2026/11/5e2a9f.csv.gzip");
    let path = PathBuf::from(out["path"].as_str().expect("path"));
    assert!(path.starts_with(&landing) && path.exists());

    // The same file again, from stdin, under another etag: a duplicate by content.
    let dup = json(&run_with_stdin(
        materia(&landing).args(["land", "--dataset", "psd", "--etag", "other", "--json", "-"]),
        &fs::read(&input).expect("input"),
    ));
    assert_eq!(dup["outcome"], "duplicate");
    assert_eq!(dup["of"], "content");
    assert_eq!(dup["existing"], "psd/2026/11/5e2a9f.csv.gzip");

    let ls = json(&run(materia(&landing).args(["ls", "--json"])));
    assert_eq!(ls.as_array().map(Vec::len), Some(1));
    assert_eq!(ls[0]["key"], "psd/2026/11/5e2a9f.csv.gzip");
    let stats = json(&run(materia(&landing).args(["stats", "--json"])));
    assert_eq!(stats["files"], 1);
    assert_eq!(stats["datasets"]["psd"]["files"], 1);
    assert_eq!(stats["bytes"], fs::metadata(&path).expect("landed").len());
    let verify = run(materia(&landing).arg("verify"));
    assert!(verify.status.success(), "{verify:?}");
    assert!(stdout(&verify).contains("1 file(s) checked"), "{verify:?}");
}

#[test]
fn land_defaults_to_the_current_utc_month_and_content_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let out = json(&run_with_stdin(
        materia(&landing).args(["land", "--dataset", "notes", "--new-dataset", "--json", "-"]),
        b"a,b\n1,2\n",
    ));
    let (year, month) = materia_core::landing::current_month();
    let sha = Sha256Digest::of(b"a,b\n1,2\n");
    assert_eq!(out["key"], format!("notes/{year}/{month}/{sha}.csv.gzip"));
}

#[test]
fn verify_exits_1_and_names_the_corrupt_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let input = dir.path().join("in.csv");
    fs::write(&input, csv(200_000, 2)).expect("write");
    let landed_a = json(&run(materia(&landing)
        .args(["land", "--dataset", "psd", "--etag", "a", "--json"])
        .arg(&input)));
    fs::write(&input, csv(300_000, 3)).expect("write");
    json(&run(materia(&landing)
        .args(["land", "--dataset", "psd", "--etag", "b"])
        .arg(&input)
        .arg("--json")));

    let path = PathBuf::from(landed_a["path"].as_str().expect("path"));
    let mut bytes = fs::read(&path).expect("landed");
    let i = bytes.len() / 3;
    bytes[i] = bytes[i].wrapping_add(1);
    fs::write(&path, bytes).expect("flip a byte");

    let verify = run(materia(&landing).arg("verify"));
    assert_eq!(verify.status.code(), Some(1), "{verify:?}");
    let text = stdout(&verify);
    assert!(text.contains(&format!("BAD {}", path.display())), "{text}");
    assert!(
        !text.contains("/b.csv.gzip"),
        "only the bad file is named: {text}"
    );
    let out = run(materia(&landing).args(["verify", "--json"]));
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["bad"].as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(report["bad"][0]["key"], landed_a["key"]);
}

#[test]
fn bad_arguments_exit_2_naming_the_thing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let cases: [(&[&str], &str); 4] = [
        (&["land", "--dataset", "PSD", "-"], "dataset"),
        (
            &[
                "land",
                "--dataset",
                "psd",
                "--year",
                "2026",
                "--month",
                "13",
                "-",
            ],
            "month",
        ),
        (
            &["land", "--dataset", "psd", "--etag", "\"\"", "-"],
            "--etag",
        ),
        (
            &["land", "--dataset", "psd", "/nonexistent/file.csv"],
            "/nonexistent/file.csv",
        ),
    ];
    for (args, named) in cases {
        let out = run(materia(&landing).args(args).stdin(Stdio::null()));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named), "{args:?}: {err}");
    }
    // Empty input is refused, and leaves nothing behind.
    let out = run(materia(&landing)
        .args(["land", "--dataset", "psd", "-"])
        .stdin(Stdio::null()));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty"));
    assert!(
        LandingStore::open(&landing)
            .expect("open")
            .list()
            .is_empty()
    );
}

/// Paths of the store's temp files under `root`.
fn temp_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp."))
            {
                out.push(path);
            }
        }
    }
    out
}

/// SIGKILL `materia land` at random instants, many times. After each kill the
/// next open must find no partial file under a final name, remove the temp file,
/// and keep every file landed before; at the end `verify` passes.
#[test]
fn sigkill_during_land_never_leaves_a_partial_file() {
    const KILLS: usize = 60;
    let seed: u64 = std::env::var("MATERIA_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    println!("kill test seed {seed} (set MATERIA_KILL_SEED to replay)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let base = csv(6 << 20, seed);

    let land = |i: usize| {
        let mut child = materia(&landing)
            .args([
                "land",
                "--dataset",
                "psd",
                "--level",
                "9",
                "--year",
                "2026",
                "--month",
                "11",
            ])
            .arg("--etag")
            .arg(format!("run-{i}"))
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut stdin = child.stdin.take().expect("stdin");
        // Distinct content for each run: a row of its own after the PSD rows
        // (the header must stay first: `land` checks it).
        let body = [&base[..], format!("{i}\n").as_bytes()].concat();
        let expected = Sha256Digest::of(&body);
        // Writes fail with EPIPE once the child is dead: that is expected.
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        (child, feeder, expected)
    };

    // Calibrate: how long one uninterrupted landing takes here.
    let start = Instant::now();
    let (mut child, feeder, _) = land(usize::MAX);
    assert!(child.wait().expect("exits").success());
    feeder.join().expect("feeder");
    let full = start.elapsed();

    let mut survivors: Vec<(LandingKey, Sha256Digest)> = Vec::new();
    let (mut mid_write, mut completed) = (0, 0);
    for i in 0..KILLS {
        let (mut child, feeder, expected) = land(i);
        let delay = full.mul_f64(rng.f64() * 1.2);
        std::thread::sleep(delay);
        if !temp_files(&landing).is_empty() {
            mid_write += 1;
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reaped");
        feeder.join().expect("feeder");
        if status.success() {
            completed += 1;
        }

        let store = LandingStore::open(&landing).expect("open after a kill");
        assert_eq!(
            temp_files(&landing),
            Vec::<PathBuf>::new(),
            "kill {i}: temp left"
        );
        let etag = format!("run-{i}").parse().expect("valid");
        if let Some(key) = store.find(&"psd".parse().expect("valid"), &etag) {
            // It landed: it must be whole, byte for byte what was sent.
            let mut content = Vec::new();
            store
                .get(&key)
                .expect("landed")
                .read_to_end(&mut content)
                .unwrap_or_else(|e| panic!("kill {i} after {delay:?}: {key} is partial: {e}"));
            assert_eq!(
                Sha256Digest::of(&content),
                expected,
                "kill {i}: {key} differs"
            );
            survivors.push((key, expected));
        }
        for (key, _) in &survivors {
            assert!(store.path_of(key).exists(), "kill {i}: {key} was lost");
        }
    }
    println!(
        "{KILLS} kills: {mid_write} with a write in progress, {completed} after completion, \
         {} landed; one landing takes {full:?}",
        survivors.len()
    );
    assert!(
        mid_write >= KILLS / 4,
        "too few kills hit a write: {mid_write}"
    );
    let store = LandingStore::open(&landing).expect("open");
    let report = store.verify().expect("verify");
    assert!(report.is_ok(), "{report:#?}");
    assert_eq!(report.checked as usize, survivors.len() + 1);
    for (key, expected) in &survivors {
        assert_eq!(
            store.release(key).map(|r| r.content_sha256),
            Some(*expected)
        );
    }
}

use materia_testkit::http;

#[test]
fn extract_reports_landed_unchanged_duplicate_and_fails_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let body = csv(20_000, 7);
    let server = http::Server::start(move |req, _| match req.path.as_str() {
        "/psd.csv" if req.header("If-None-Match") == Some("\"r1\"") => http::Reply::status(304),
        "/psd.csv" => http::Reply::ok(body.clone(), &[("ETag", "\"r1\"")]),
        "/copy.csv" => http::Reply::ok(body.clone(), &[("ETag", "\"r2\"")]),
        _ => http::Reply::ok("<html>oops</html>", &[]),
    });
    let extract = |url: &str| run(materia(&landing).args(["extract", "--json", "--url", url]));
    let first = json(&extract(&server.url("/psd.csv")));
    assert_eq!(first["status"], "landed");
    let (year, month) = materia_core::landing::current_month();
    assert_eq!(first["key"], format!("psd/{year}/{month}/r1.csv.gzip"));
    assert_eq!(
        json(&extract(&server.url("/psd.csv")))["status"],
        "unchanged"
    );
    let dup = json(&extract(&server.url("/copy.csv")));
    assert_eq!(
        (&dup["status"], &dup["of"]),
        (&"duplicate".into(), &"content".into())
    );

    // MATERIA_PSD_URL replaces the built-in URL.
    let env = run(materia(&landing)
        .args(["extract", "--json"])
        .env("MATERIA_PSD_URL", server.url("/psd.csv")));
    assert_eq!(json(&env)["status"], "unchanged");

    let bad = extract(&server.url("/html"));
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    let err = String::from_utf8_lossy(&bad.stderr);
    let last = err.lines().last().expect("an error line");
    assert!(last.starts_with("materia: error: extract http://"), "{err}");
    assert!(last.contains("HTML page"), "{err}");
    assert_eq!(LandingStore::open(&landing).expect("open").list().len(), 1);
}

#[test]
fn extract_archive_backfills_a_range_of_months() {
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let server = http::Server::start(|req, _| match req.path.as_str() {
        "/a/2024/11/p.csv" => http::Reply::ok(csv(5_000, 2411), &[]),
        "/a/2025/01/p.csv" => http::Reply::ok(csv(6_000, 2501), &[]),
        _ => http::Reply::status(404),
    });
    let config = dir.path().join("materia.toml");
    fs::write(
        &config,
        format!(
            "[datasets.psd]\nurl = \"{}\"\narchive_url = \"{}\"\nheader = []\n",
            server.url("/current.csv"),
            server.url("/a/{YYYY}/{MM}/p.csv"),
        ),
    )
    .expect("config");
    let out = run(materia(&landing).arg("--config").arg(&config).args([
        "extract",
        "--json",
        "--archive",
        "2024-11..2025-01",
    ]));
    assert!(out.status.success(), "{out:?}");
    let statuses: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let words: Vec<&str> = statuses
        .iter()
        .map(|s| s["status"].as_str().expect("status"))
        .collect();
    assert_eq!(words, ["landed", "not_published", "landed"]);
    assert!(
        statuses[0]["key"]
            .as_str()
            .expect("key")
            .starts_with("psd/2024/11/")
    );
    assert!(
        statuses[2]["key"]
            .as_str()
            .expect("key")
            .starts_with("psd/2025/01/")
    );

    // A config with an unknown key is refused, naming the key.
    fs::write(&config, "[limits]\nretry = 3\n").expect("config");
    let out = run(materia(&landing)
        .arg("--config")
        .arg(&config)
        .arg("extract"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("retry"),
        "{out:?}"
    );
}

#[test]
fn the_shipped_sample_extracts_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../materia-core/tests/data/psd_coffee_sample.zip")
        .canonicalize()
        .expect("the sample is in the repo");
    let url = format!("file://{}", sample.display());
    let out = json(&run(
        materia(&landing).args(["extract", "--json", "--url", &url])
    ));
    assert_eq!(out["status"], "landed", "{out}");
    let store = LandingStore::open(&landing).expect("open");
    let key: LandingKey = out["key"].as_str().expect("key").parse().expect("valid");
    let mut csv = String::new();
    store
        .get(&key)
        .expect("landed")
        .read_to_string(&mut csv)
        .expect("gzip");
    assert!(
        csv.starts_with("\u{feff}Commodity_Code,"),
        "BOM and header kept as published"
    );
    assert_eq!(csv.matches("\r\n").count(), 3801, "header + 3800 rows");
}

#[test]
fn a_stricter_umask_makes_files_and_dirs_stricter_still() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let input = dir.path().join("in.csv");
    fs::write(&input, csv(10_000, 4)).expect("input");
    // The test's own shell sets the umask, then execs materia (no shell in materia).
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg("umask 077 && exec \"$0\" land --dataset psd --etag u1 --json \"$1\"")
        .arg(env!("CARGO_BIN_EXE_materia"))
        .arg(&input)
        .env("LANDING_DIR", &landing)
        .output()
        .expect("runs");
    let landed = json(&out);
    let file = PathBuf::from(landed["path"].as_str().expect("path"));
    let mode = |p: &Path| fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600, "0640 under umask 077");
    assert_eq!(mode(&landing.join(".materia/ledger.jsonl")), 0o600);
    for d in ["", "psd", ".materia", ".materia/spool"] {
        assert_eq!(mode(&landing.join(d)), 0o700, "{d:?}: 0750 under umask 077");
    }
    assert_eq!(mode(file.parent().expect("month dir")), 0o700);
}

#[test]
fn under_umask_000_every_file_is_0640_and_every_dir_0750() {
    // Regression: locks, state, the lakehouse and its lock took the umask's
    // modes (0666/0777 under umask 000).
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let lake = dir.path().join("lake/lakehouse.duckdb");
    let textfile_dir = dir.path().join("textfile");
    fs::create_dir_all(&textfile_dir).expect("textfile dir");
    let input = dir.path().join("in.csv");
    fs::write(&input, csv(10_000, 5)).expect("input");
    let script = "umask 000 && \"$0\" land --dataset psd --etag u0 \"$1\" && \
                  \"$0\" run --steps transform --textfile \"$2\"";
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_materia"))
        .arg(&input)
        .arg(textfile_dir.join("materia.prom"))
        .env("LANDING_DIR", &landing)
        .env("DUCKDB_PATH", &lake)
        .env("MATERIA_DUCKDB_MEMORY", "512MB")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let mode = |p: &Path| {
        fs::symlink_metadata(p)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    };
    let mut seen = 0;
    let mut stack = vec![
        landing.clone(),
        lake.parent().expect("lake dir").to_path_buf(),
    ];
    while let Some(d) = stack.pop() {
        assert_eq!(mode(&d), 0o750, "{}", d.display());
        for entry in fs::read_dir(&d).expect("dir") {
            let p = entry.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                seen += 1;
                assert_eq!(mode(&p), 0o640, "{}", p.display());
            }
        }
    }
    // ledger, lock, state.json, run.lock, the landed file, lakehouse and its lock
    assert!(seen >= 7, "only {seen} files");
    for entry in fs::read_dir(landing.join(".materia")).expect("meta dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(
            materia_core::landing::MetaDir::ENTRIES.contains(&name.as_str()),
            "undocumented .materia/{name}"
        );
    }
    assert_eq!(
        mode(&textfile_dir.join("materia.prom")),
        0o644,
        "node_exporter reads it"
    );
}

/// Regression (issue 24): Ctrl-C during a transform left DuckDB's WAL with the
/// umask's mode (0644 under 022; 0666 under 000), not the promised 0640.
#[test]
fn an_interrupted_transform_leaves_no_file_wider_than_0640() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let lake_dir = dir.path().join("lake");
    {
        let store = LandingStore::open(&landing).expect("open");
        for k in 0..8 {
            let _ = materia_testkit::land_psd_release(&store, k, 6 << 20).expect("put");
        }
    }
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" transform")
        .arg(env!("CARGO_BIN_EXE_materia"))
        .env("LANDING_DIR", &landing)
        .env("DUCKDB_PATH", lake_dir.join("lakehouse.duckdb"))
        .env("MATERIA_DUCKDB_MEMORY", "512MB")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs");
    let wal = |d: &Path| {
        fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".wal"))
    };
    let started = Instant::now();
    while !wal(&lake_dir) {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the transform ended before it wrote a WAL"
        );
        assert!(started.elapsed().as_secs() < 120, "no WAL within 120 s");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("Ctrl-C");
    let _ = child.wait().expect("ends");
    let mut seen = 0;
    for entry in fs::read_dir(&lake_dir).expect("lake dir") {
        let entry = entry.expect("entry");
        let mode = entry.metadata().expect("meta").permissions().mode() & 0o777;
        let allowed = if entry.path().is_dir() { 0o750 } else { 0o640 };
        assert_eq!(mode & !allowed, 0, "{} is {mode:o}", entry.path().display());
        seen += 1;
    }
    assert!(seen >= 1, "nothing left to check");
}

/// Regression (issue 24): `ls --landing-dir /typo/path` and `status` in an
/// empty directory created the landing zone.
#[test]
fn commands_that_only_read_never_create_the_landing_zone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let typo = dir.path().join("typo/landing");
    for args in [
        &["ls"][..],
        &["verify"],
        &["stats"],
        &["status"],
        &["check"],
        &["query", "SELECT 1"],
    ] {
        let out = materia(&typo)
            .env("DUCKDB_PATH", dir.path().join("typo/lakehouse.duckdb"))
            .args(args)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("typo/"), "{args:?} names the path: {err}");
        assert!(!dir.path().join("typo").exists(), "{args:?} created it");
    }
    // With the defaults (./data/landing), in an empty directory.
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).expect("dir");
    let out = materia(&typo)
        .env_remove("LANDING_DIR")
        .env_remove("DUCKDB_PATH")
        .current_dir(&empty)
        .arg("status")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("data/landing") && err.contains("LANDING_DIR"),
        "{err}"
    );
    assert_eq!(
        fs::read_dir(&empty).expect("dir").count(),
        0,
        "nothing created"
    );
}

/// Issue 27: `land --dataset icoprices` (a typo of the declared `ico-prices`)
/// landed forever, and `check` then watched "icoprices".
#[test]
fn a_dataset_nobody_declared_is_refused_unless_new_dataset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let config = dir.path().join("materia.toml");
    fs::write(
        &config,
        "[datasets.ico-prices]\nurl = \"https://example.org/ico.csv\"\n",
    )
    .expect("config");
    let input = dir.path().join("prices.csv");
    fs::write(&input, b"day,price\n2026-12-01,3.21\n").expect("input");
    let land = |args: &[&str]| {
        run(materia(&landing)
            .arg("--config")
            .arg(&config)
            .args(["land", "--json"])
            .args(args)
            .arg(&input))
    };

    let typo = land(&["--dataset", "icoprices"]);
    assert_eq!(typo.status.code(), Some(2), "{typo:?}");
    let err = String::from_utf8_lossy(&typo.stderr);
    for named in [
        "\"icoprices\"",
        "did you mean \"ico-prices\"",
        "declared: cot, ico-prices, psd",
        "--new-dataset",
    ] {
        assert!(err.contains(named), "{named} not in: {err}");
    }
    assert!(!landing.exists(), "nothing landed, no landing zone made");

    let new = json(&land(&["--dataset", "icoprices", "--new-dataset"]));
    assert!(
        new["key"].as_str().expect("key").starts_with("icoprices/"),
        "{new}"
    );
    let declared = json(&land(&["--dataset", "ico-prices", "--etag", "r1"]));
    assert!(
        declared["key"]
            .as_str()
            .expect("key")
            .starts_with("ico-prices/")
    );

    // The built-ins are declared without a config.
    let psd = dir.path().join("psd.csv");
    fs::write(&psd, csv(5_000, 27)).expect("psd");
    let builtin = json(&run(materia(&landing)
        .args(["land", "--json", "--dataset", "psd"])
        .arg(&psd)));
    assert!(builtin["key"].as_str().expect("key").starts_with("psd/"));

    // extract refuses the same way, and fetches a new dataset when asked.
    let url = format!("file://{}", input.display());
    let extract = |args: &[&str]| {
        run(materia(&landing)
            .arg("--config")
            .arg(&config)
            .args(["extract", "--json", "--url", &url])
            .args(args))
    };
    let typo = extract(&["--dataset", "icoprices"]);
    assert_eq!(typo.status.code(), Some(2), "{typo:?}");
    let err = String::from_utf8_lossy(&typo.stderr);
    assert!(
        err.contains("did you mean \"ico-prices\"") && err.contains("--new-dataset"),
        "{err}"
    );
    let new = json(&extract(&["--dataset", "weather", "--new-dataset"]));
    assert_eq!(new["status"], "landed", "{new}");
    assert!(new["key"].as_str().expect("key").starts_with("weather/"));
}

/// Issue 27: `extract --json` printed nothing for a dataset that failed.
#[test]
fn extract_json_prints_a_failed_object_for_a_dataset_that_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let server = http::Server::start(|_, _| http::Reply::ok("<html>oops</html>", &[]));
    let cot = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../materia-core/tests/data/cot_disagg_sample.zip")
        .canonicalize()
        .expect("sample");
    let out = run(materia(&landing)
        .args(["extract", "--json", "--dataset", "psd,cot"])
        .env("MATERIA_PSD_URL", server.url("/psd.zip?token=s3cr3t"))
        .env("MATERIA_COT_URL", format!("file://{}", cot.display())));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let failed = &lines[0];
    assert_eq!(
        (&failed["dataset"], &failed["status"]),
        (&"psd".into(), &"failed".into())
    );
    let error = failed["error"].as_str().expect("error");
    assert!(
        error.contains("HTML page") && !error.contains("s3cr3t"),
        "{error}"
    );
    assert!(!failed["url"].as_str().expect("url").contains("s3cr3t"));
    assert_eq!(
        (&lines[1]["dataset"], &lines[1]["status"]),
        (&"cot".into(), &"landed".into())
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("materia: error: dataset psd: "), "{err}");

    // Alone, its failure is also the command's error.
    let out = run(materia(&landing)
        .args(["extract", "--json", "--url"])
        .arg(server.url("/psd.zip")));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let line: Value = serde_json::from_str(stdout(&out).trim()).expect("one object");
    assert_eq!(
        (&line["dataset"], &line["status"]),
        (&"psd".into(), &"failed".into())
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().expect("an error line");
    assert!(last.starts_with("materia: error: extract http://"), "{err}");
    assert!(
        last.starts_with(materia_core::supervise::ERROR_PREFIX),
        "the supervisor recognises the binary's error line: {last}"
    );
}

/// Issue 27: failures are told by their real error.
mod failures {
    use std::fs;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Output, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    use materia_core::landing::LandingStore;

    /// A fresh landing zone and lakehouse with `releases` small PSD releases.
    fn landed(releases: u64) -> crate::Env {
        let e = crate::env();
        let store = LandingStore::open(&e.landing).expect("open");
        for k in 1..=releases {
            let _ = materia_testkit::land_psd_release(&store, k, 20_000).expect("put");
        }
        e
    }

    fn stderr(out: &Output) -> String {
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Regression: `materia mirror` without a URL said only "the following
    /// required arguments were not provided: --to", and a supervised publish
    /// step's failure then read "For more information, try '--help'".
    #[cfg(feature = "s3")]
    #[test]
    fn a_bucket_command_without_a_url_names_the_flag_and_the_variable() {
        let e = landed(0);
        for (args, flag, variable) in [
            (&["mirror"][..], "--to", "MATERIA_MIRROR_URL"),
            (&["mirror", "--verify"], "--to", "MATERIA_MIRROR_URL"),
            (&["restore"], "--from", "MATERIA_MIRROR_URL"),
            (&["drill"], "--from", "MATERIA_MIRROR_URL"),
            (&["publish"], "--to", "MATERIA_PUBLISH_URL"),
        ] {
            let out = e.run(args);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
            let err = stderr(&out);
            assert!(
                err.starts_with("materia: error: no bucket URL")
                    && err.contains(flag)
                    && err.contains(variable),
                "{args:?}: {err}"
            );
            // A blank variable (an env file's `MATERIA_MIRROR_URL=`) is no URL either.
            let out = e
                .materia()
                .env(variable, " ")
                .args(args)
                .output()
                .expect("runs");
            assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
            assert!(stderr(&out).contains(variable), "{args:?}: {out:?}");
        }
    }

    /// Regression: a second transform waited for the first without a word.
    #[test]
    fn a_second_transform_says_whose_lock_it_waits_for() {
        let e = landed(1);
        fs::create_dir_all(e.duckdb.parent().expect("dir")).expect("dir");
        // The lock as a running transform holds it: `flock`ed, its pid inside.
        let lock_path = e.duckdb.with_file_name("lakehouse.duckdb.lock");
        let lock = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&lock_path)
            .expect("lock file");
        lock.lock().expect("flock");
        fs::write(&lock_path, format!("{}\n", std::process::id())).expect("pid");
        let mut child = e
            .materia()
            .arg("transform")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs");
        let lines = BufReader::new(child.stderr.take().expect("stderr"));
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in lines.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Not a timing: a bound on a hang, so a regression fails instead.
        let waiting = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(300))
                .expect("a line while it waits");
            if line.contains("waiting") {
                break line;
            }
        };
        assert!(
            waiting.contains("waiting for the lock held by another transform of this lakehouse")
                && waiting.contains(&format!("(pid {})", std::process::id()))
                && waiting.contains("lakehouse.duckdb.lock"),
            "{waiting}"
        );
        drop(lock);
        let status = child.wait().expect("ends");
        reader.join().expect("reader");
        let rest: Vec<String> = rx.try_iter().collect();
        assert!(status.success(), "{status:?}: {rest:?}");
        assert_eq!(
            rest.iter().filter(|l| l.contains("waiting")).count(),
            0,
            "said once: {rest:?}"
        );
        // The transform recorded its own pid while it held the lock.
        assert_eq!(
            fs::read_to_string(&lock_path).expect("lock").trim(),
            child.id().to_string()
        );
    }

    /// Regression: a long transform printed nothing at the default level.
    #[test]
    fn a_transform_logs_a_line_per_release_at_the_default_level() {
        let e = landed(3);
        let out = e.run(&["transform"]);
        assert!(out.status.success(), "{out:?}");
        let err = stderr(&out);
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("loaded release"))
            .collect();
        assert_eq!(lines.len(), 3, "{err}");
        for (n, key) in [
            "psd/2000/02/r0001",
            "psd/2000/03/r0002",
            "psd/2000/04/r0003",
        ]
        .iter()
        .enumerate()
        {
            let line = lines[n];
            assert!(
                line.contains(&format!("loaded release {} of 3", n + 1))
                    && line.contains("dataset=psd")
                    && line.contains(key)
                    && line.contains("rows="),
                "{line}"
            );
        }
        // One by one (a release after the first build) too.
        let store = LandingStore::open(&e.landing).expect("open");
        let _ = materia_testkit::land_psd_release(&store, 4, 20_000).expect("put");
        let out = e.run(&["transform"]);
        assert!(out.status.success(), "{out:?}");
        assert!(
            stderr(&out).contains("loaded release 1 of 1"),
            "{}",
            stderr(&out)
        );
    }

    /// `materia args…` on a pseudo-terminal (`script`), as a user at a
    /// terminal runs it: what it wrote there.
    fn on_a_terminal(e: &crate::Env, args: &str, no_color: Option<&str>) -> Vec<u8> {
        let mut cmd = Command::new("script");
        cmd.args(["-q", "-e", "-c"])
            .arg(format!("\"$MATERIA_BIN\" {args}"))
            .arg("/dev/null")
            .env("MATERIA_BIN", env!("CARGO_BIN_EXE_materia"))
            .env("LANDING_DIR", &e.landing)
            .env("DUCKDB_PATH", &e.duckdb)
            .env("MATERIA_DUCKDB_MEMORY", "512MB")
            .env("SHELL", "/bin/sh")
            .env("TERM", "xterm-256color")
            .env_remove("MATERIA_LOG")
            .env_remove("CLICOLOR_FORCE")
            .stdin(Stdio::null());
        match no_color {
            Some(v) => cmd.env("NO_COLOR", v),
            None => cmd.env_remove("NO_COLOR"),
        };
        let out = cmd
            .output()
            .expect("`script` (util-linux) runs: the test needs a pseudo-terminal");
        out.stdout
    }

    /// Regression: on a terminal, the logs were coloured whatever `NO_COLOR` said.
    #[test]
    fn no_color_leaves_out_every_escape_even_on_a_terminal() {
        let e = landed(2);
        let esc = |bytes: &[u8]| bytes.contains(&0x1b);
        // The test sees colour where there is some: logs and clap's errors.
        let coloured = on_a_terminal(&e, "transform", Some(""));
        assert!(
            esc(&coloured) && String::from_utf8_lossy(&coloured).contains("loaded release"),
            "{}",
            String::from_utf8_lossy(&coloured)
        );
        assert!(esc(&on_a_terminal(&e, "--no-such-flag", None)));
        for args in ["transform", "--no-such-flag", "query 'SELEC 1'"] {
            let plain = on_a_terminal(&e, args, Some("1"));
            let text = String::from_utf8_lossy(&plain);
            assert!(!esc(&plain), "{args}: {text:?}");
            assert!(!text.trim().is_empty(), "{args}: said something");
        }
    }

    /// Regression: DuckDB's errors ended "Error code 1: Unknown error code".
    #[test]
    fn duckdb_errors_carry_no_unknown_error_code() {
        let e = landed(1);
        let built = e.run(&["transform"]);
        assert!(built.status.success(), "{built:?}");
        let out = e.run(&["query", "SELEC 1"]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = stderr(&out);
        assert!(err.contains("syntax error"), "{err}");
        assert!(!err.contains("Error code"), "{err}");
        // A model with a syntax error (in a first build): named, with
        // DuckDB's message only.
        let e = landed(1);
        let models = e.dir.path().join("models");
        fs::create_dir(&models).expect("dir");
        fs::write(
            models.join("broken.sql"),
            "-- model: serving.broken\n-- kind: table\n-- depends: serving.psd_latest\n\
             CREATE OR REPLACE TABLE serving.broken AS SELEC 1;\n",
        )
        .expect("model");
        let out = e
            .materia()
            .args(["transform", "--models"])
            .arg(&models)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = stderr(&out);
        assert!(
            err.contains("broken.sql") && err.contains("syntax error"),
            "{err}"
        );
        assert!(!err.contains("Error code"), "{err}");
    }
}
