//! `materia transform`, `query` and `run` as processes, including SIGKILL mid-build.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use materia_core::landing::{LandingStore, NewRelease};
use materia_core::transform::Lakehouse;
use serde_json::Value;

use crate::{Env, env};

impl Env {
    /// Lands release `k`: about 12k PSD-shaped rows; the years from 2023 on
    /// differ by `k`, like USDA revising its recent estimates.
    fn land(&self, k: u64) {
        let store = LandingStore::open(&self.landing).expect("open");
        let body = materia_testkit::psd_csv(&materia_testkit::PsdSpec {
            min_bytes: 1_300_000,
            seed: k,
        });
        let release = NewRelease::new("psd".parse().expect("valid"), 2000 + k as i64, 1)
            .expect("valid")
            .with_etag(Some(format!("k{k}").parse().expect("valid")));
        store
            .put(release, &body[..])
            .expect("put")
            .landed()
            .expect("new");
    }

    fn releases_published(&self) -> i64 {
        let lake = Lakehouse::open_read_only(&self.duckdb).expect("the published lakehouse opens");
        lake.connection()
            .query_row("SELECT count(*) FROM raw.releases", [], |r| r.get(0))
            .expect("query")
    }

    /// The history's WAL: it exists while a release is being loaded.
    fn history_wal(&self) -> PathBuf {
        let mut name = self.duckdb.as_os_str().to_owned();
        name.push(".history.wal");
        PathBuf::from(name)
    }

    fn build_files(&self) -> Vec<PathBuf> {
        let dir = self.duckdb.parent().expect("dir");
        fs::read_dir(dir)
            .map(|rd| {
                rd.map(|e| e.expect("entry").path())
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().contains(".build-"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[test]
fn transform_json_then_query_in_every_format() {
    let e = env();
    e.land(1);
    e.land(2);
    let report = e.json(&["transform", "--json"]);
    assert_eq!(report["releases_loaded"], 2);
    assert!(report["rows_loaded"].as_u64().expect("rows") > 10_000);
    assert_eq!(report["published"], e.duckdb.to_string_lossy().as_ref());
    let again = e.json(&["transform", "--json"]);
    assert_eq!(
        (&again["releases_loaded"], &again["rows_loaded"]),
        (&0.into(), &0.into())
    );

    let sql = "SELECT etag, rows > 0 AS has_rows, year FROM raw.releases ORDER BY etag";
    let rows = e.json(&["query", sql, "--format", "json"]);
    assert_eq!(rows[0]["etag"], "k1");
    assert_eq!(rows[0]["has_rows"], true);
    assert_eq!(rows[1]["year"], 2002);
    let csv = e.run(&["query", sql, "--format", "csv"]);
    assert_eq!(
        String::from_utf8_lossy(&csv.stdout),
        "etag,has_rows,year\nk1,true,2001\nk2,true,2002\n"
    );
    let table = e.run(&["query", "SELECT 1 AS n, DATE '2026-11-25' AS d"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("2026-11-25") && text.contains("(1 row)"),
        "{text}"
    );
    // Read-only: writes are refused.
    let write = e.run(&["query", "CREATE TABLE x (a INT)"]);
    assert_eq!(write.status.code(), Some(2));
}

#[test]
fn run_extracts_then_transforms_the_shipped_sample() {
    let e = env();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../materia-core/tests/data/psd_coffee_sample.zip")
        .canonicalize()
        .expect("sample");
    let url = format!("file://{}", sample.display());
    let out = e.run(&["run", "--json", "--url", &url]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines[0]["status"], "landed");
    assert_eq!(lines[1]["releases_loaded"], 1);
    assert_eq!(
        lines[1]["rows_loaded"], 3800,
        "10 countries × 20 years × 19 attributes"
    );
    assert_eq!(
        lines[1]["warnings"],
        Value::Array(vec![]),
        "the sample balances"
    );
    let world = e.json(&[
        "query",
        "SELECT count(*) AS years FROM serving.coffee_balance WHERE country_code = 'WORLD'",
        "--format",
        "json",
    ]);
    assert_eq!(world[0]["years"], 20, "2004–2023");
}

#[test]
fn a_cycle_fetches_psd_and_cot_and_serves_both() {
    let e = env();
    let sample = |name: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../materia-core/tests/data")
            .join(name)
            .canonicalize()
            .expect("sample");
        format!("file://{}", path.display())
    };
    let out = e
        .materia()
        .args(["run", "--json"])
        .env("MATERIA_DATASETS", "psd,cot")
        .env("MATERIA_PSD_URL", sample("psd_coffee_sample.zip"))
        .env("MATERIA_COT_URL", sample("cot_disagg_sample.zip"))
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(
        (&lines[0]["dataset"], &lines[0]["status"]),
        (&"psd".into(), &"landed".into())
    );
    assert_eq!(
        (&lines[1]["dataset"], &lines[1]["status"]),
        (&"cot".into(), &"landed".into())
    );
    assert_eq!(lines[2]["releases_loaded"], 2, "{lines:?}");
    let check = &lines[3];
    let checked: Vec<&str> = check["datasets"]
        .as_array()
        .expect("datasets")
        .iter()
        .map(|d| d["dataset"].as_str().expect("name"))
        .collect();
    assert_eq!(checked, ["psd", "cot"], "{check}");
    let coffee = e.json(&[
        "query",
        "SELECT count(*) AS weeks, min(managed_money_net = managed_money_long - managed_money_short) AS net_ok \
         FROM serving.cot_coffee",
        "--format",
        "json",
    ]);
    assert_eq!(
        (&coffee[0]["weeks"], &coffee[0]["net_ok"]),
        (&12.into(), &true.into())
    );

    // Without MATERIA_DATASETS only psd is fetched and expected: cot, never
    // asked for, is not stale; an unknown name is an error naming it.
    let check = e.json(&["check", "--json"]);
    assert_eq!(
        check["datasets"].as_array().map(Vec::len),
        Some(2),
        "landed cot is checked too"
    );
    let unknown = e.run(&["extract", "--dataset", "psd,weather"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no dataset named \"weather\""));
}

#[test]
fn sigkill_mid_transform_leaves_the_published_lakehouse_intact() {
    let e = env();
    let seed: u64 = std::env::var("MATERIA_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x7a5f);
    println!("transform kill seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut next = 1;
    for _ in 0..3 {
        e.land(next);
        next += 1;
    }
    assert!(e.run(&["transform"]).status.success());
    let mut published = e.releases_published();
    for _ in 0..8 {
        e.land(next);
        next += 1;
    }
    // Calibrate one build of that size.
    let probe = env();
    for k in 1..=11 {
        probe.land(k);
    }
    let start = Instant::now();
    assert!(probe.run(&["transform"]).status.success());
    let full = start.elapsed();

    let (mut mid_build, mut kills) = (0, 0);
    for i in 0..20 {
        let mut child = e
            .materia()
            .arg("transform")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(full.mul_f64(rng.f64() * 0.7));
        // Mid-build: the transform was still running when it was killed.
        if child.try_wait().expect("wait").is_none() {
            mid_build += 1;
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reaped");
        kills += 1;
        let now = e.releases_published();
        let landed = (next - 1) as i64;
        if status.success() {
            assert_eq!(now, landed, "kill {i}: a finished build holds everything");
        } else {
            assert!(
                now == published || now == landed,
                "kill {i}: {now} releases"
            );
        }
        if now == landed {
            // Give the next run something to do.
            e.land(next);
            next += 1;
        }
        published = now;
    }
    println!("{kills} kills, {mid_build} during a build; one build takes {full:?}");
    assert!(mid_build >= 5, "too few kills hit a build: {mid_build}");
    // A clean run finishes the job and sweeps up the killed builds.
    let report = e.json(&["transform", "--json"]);
    assert_eq!(e.releases_published(), (next - 1) as i64, "{report}");
    assert_eq!(e.build_files(), Vec::<PathBuf>::new());
    assert!(
        !e.history_wal().exists(),
        "a finished build checkpoints its history"
    );
}

/// Regression tests for the hardening review (issue 12), one per defect.
mod hardening {
    use super::*;

    fn fails_naming(e: &Env, sql: &str, says: &str) {
        let out = e.run(&["query", sql]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{sql} ran: {out:?}");
        assert!(
            err.to_lowercase().contains(&says.to_lowercase()),
            "{sql}: {err}"
        );
    }

    #[test]
    fn query_cannot_touch_files_settings_or_extensions() {
        let e = env();
        e.land(1);
        e.json(&["transform", "--json"]);
        let before = fs::read(&e.duckdb).expect("lakehouse");
        let target = e.duckdb.to_string_lossy().into_owned();
        let outside = e.duckdb.with_file_name("written.csv");
        let refused = [
            format!("COPY (SELECT 'garbage' AS a) TO '{target}' (FORMAT csv)"),
            format!(
                "COPY (SELECT 1 AS a) TO '{}' (FORMAT csv)",
                outside.display()
            ),
            "SELECT * FROM read_text('/etc/passwd')".to_owned(),
            "SELECT * FROM read_csv('/proc/self/environ')".to_owned(),
            format!(
                "ATTACH '{}' AS other",
                e.duckdb.with_file_name("other.duckdb").display()
            ),
            "SET enable_external_access = true".to_owned(),
            "SET memory_limit = '1TB'".to_owned(),
            "INSTALL httpfs".to_owned(),
            // A built-in extension loads as a no-op; one from a file is refused.
            format!(
                "LOAD '{}'",
                e.duckdb.with_file_name("evil.duckdb_extension").display()
            ),
        ];
        for sql in &refused {
            let out = e.run(&["query", sql]);
            assert_eq!(out.status.code(), Some(2), "{sql} ran: {out:?}");
        }
        fails_naming(&e, "SET threads = 1", "configuration");
        assert_eq!(
            fs::read(&e.duckdb).expect("lakehouse"),
            before,
            "the lakehouse changed"
        );
        assert!(!outside.exists(), "a query wrote {}", outside.display());
        // Still readable, and later builds still work.
        assert_eq!(e.releases_published(), 1);
        e.land(2);
        assert_eq!(e.json(&["transform", "--json"])["releases_loaded"], 1);
    }

    #[test]
    fn query_runs_once_and_renders_every_type_from_that_run() {
        let e = env();
        e.land(1);
        e.json(&["transform", "--json"]);
        // A random filter: a second execution would pick other rows.
        let sql = "SELECT i, DATE '2020-01-01' + i::INTEGER AS d, i::DECIMAL(10,2) + 0.5 AS q, \
                   (i::HUGEINT * 1000000000000000000000) AS h, \
                   TIMESTAMP '2020-01-01 00:00:00' + to_seconds(i) AS ts, [i, i + 1] AS l \
                   FROM range(200) t(i) WHERE random() < 0.5;  -- trailing comment";
        let rows = e.json(&["query", sql, "--format", "json"]);
        let rows = rows.as_array().expect("array");
        assert!(rows.len() > 20 && rows.len() < 180, "{}", rows.len());
        for row in rows {
            let i = row["i"].as_i64().expect("i is a number");
            let date = jiff::civil::date(2020, 1, 1)
                .checked_add(jiff::Span::new().days(i))
                .expect("date");
            assert_eq!(row["d"], date.to_string(), "{row}");
            assert_eq!(row["q"], format!("{i}.50").as_str(), "{row}");
            let h = if i == 0 {
                "0".to_owned()
            } else {
                format!("{i}{}", "0".repeat(21))
            };
            assert_eq!(row["h"], h.as_str(), "{row}");
            let ts = jiff::civil::date(2020, 1, 1)
                .at(0, 0, 0, 0)
                .checked_add(jiff::Span::new().seconds(i))
                .expect("ts");
            assert_eq!(
                row["ts"],
                ts.strftime("%Y-%m-%d %H:%M:%S").to_string(),
                "{row}"
            );
            assert_eq!(row["l"], format!("[{i}, {}]", i + 1), "{row}");
        }
        // TIMESTAMPTZ comes from DuckDB in a named zone ("UTC"): the ledger's
        // landing times render, in every format.
        for format in ["json", "table", "csv"] {
            let out = e.run(&[
                "query",
                "SELECT landed_at FROM serving.releases",
                "--format",
                format,
            ]);
            assert!(out.status.success(), "{format}: {out:?}");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains(":00+00:00") || text.contains("+00:00"),
                "{text}"
            );
        }
        // Duplicate names stay distinct in JSON.
        let dup = e.json(&["query", "SELECT 1 AS a, 2 AS a", "--format", "json"]);
        assert_eq!(dup[0]["a"], 1);
        assert_eq!(dup[0]["a_1"], 2);
    }

    #[test]
    fn a_bad_file_is_refused_at_land_and_one_already_landed_is_quarantined() {
        let e = env();
        // At land time: not the PSD header.
        let mut land = e.materia();
        land.args(["land", "--dataset", "psd", "--etag", "typo", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = land.spawn().expect("spawn");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(b"a,b\n1,2\n").expect("write");
        }
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("missing Commodity_Code"), "{err}");
        assert!(
            LandingStore::open(&e.landing)
                .expect("open")
                .list()
                .is_empty()
        );

        // Already landed (by an older version, or through the library without a
        // header check): a wrong header, and rows DuckDB cannot read.
        e.land(1);
        let store = LandingStore::open(&e.landing).expect("open");
        let psd = "psd".parse().expect("valid");
        let bad_header = NewRelease::new(psd, 2001, 2)
            .expect("valid")
            .with_etag(Some("badheader".parse().expect("valid")));
        let _ = store.put(bad_header, &b"a,b\n1,2\n"[..]).expect("put");
        let mut unreadable = materia_testkit::psd_csv(&materia_testkit::PsdSpec {
            min_bytes: 10_000,
            seed: 9,
        });
        unreadable.extend_from_slice(
            b"0711100,Coffee,BR,Brazil,notayear,2020,00,028,Production,02,(1000 60 KG BAGS),1.0\n",
        );
        let rows = NewRelease::new("psd".parse().expect("valid"), 2001, 3)
            .expect("valid")
            .with_etag(Some("badrows".parse().expect("valid")));
        let _ = store.put(rows, &unreadable[..]).expect("put");
        e.land(4);

        let out = e.run(&["transform", "--json"]);
        assert_eq!(out.status.code(), Some(1), "rejections exit 1: {out:?}");
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(report["releases_loaded"], 2, "{report}");
        let rejected: Vec<&str> = report["rejected"]
            .as_array()
            .expect("rejected")
            .iter()
            .map(|r| r["landing_key"].as_str().expect("key"))
            .collect();
        assert_eq!(rejected.len(), 2, "{report}");
        assert!(
            rejected.contains(&"psd/2001/02/badheader.csv.gzip"),
            "{report}"
        );
        assert!(
            rejected.contains(&"psd/2001/03/badrows.csv.gzip"),
            "{report}"
        );
        // Later builds skip them quietly; status names them.
        e.land(5);
        let next = e.json(&["transform", "--json"]);
        assert_eq!(next["releases_loaded"], 1, "{next}");
        assert_eq!(next["rejected"].as_array().map(Vec::len), Some(0), "{next}");
        let status = e.json(&["status", "--json"]);
        let quarantined = status["lakehouse"]["rejected"]
            .as_array()
            .expect("status lists them");
        assert_eq!(quarantined.len(), 2, "{status}");
    }

    #[test]
    fn a_spill_directory_left_by_a_killed_build_does_not_wedge_transform() {
        let e = env();
        e.land(1);
        e.json(&["transform", "--json"]);
        let dir = e.duckdb.parent().expect("dir");
        let spill = dir.join(".lakehouse.duckdb.build-1-2.tmp");
        fs::create_dir_all(spill.join("nested")).expect("spill dir");
        fs::write(spill.join("nested/duckdb_temp_block-1.block"), b"x").expect("block");
        e.land(2);
        assert_eq!(e.json(&["transform", "--json"])["releases_loaded"], 1);
        assert!(
            !spill.exists(),
            "the killed build's spill directory is gone"
        );
    }
}

#[test]
fn transform_runs_the_models_in_materia_models() {
    let e = env();
    e.land(1);
    let dir = e.dir.path().join("models");
    fs::create_dir(&dir).expect("dir");
    fs::write(
        dir.join("latest_count.sql"),
        "-- model: serving.latest_count\n-- kind: table\n-- depends: serving.psd_latest\n\
         CREATE OR REPLACE TABLE serving.latest_count AS SELECT count(*) AS n FROM serving.psd_latest;\n",
    )
    .expect("model");
    let out = e
        .materia()
        .env("MATERIA_MODELS", &dir)
        .args(["transform", "--json"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let rows = e.json(&[
        "query",
        "SELECT n FROM serving.latest_count",
        "--format",
        "json",
    ]);
    assert!(rows[0]["n"].as_i64().expect("n") > 0, "{rows}");
    // A model that is not SQL Materia can run: exit 2, naming the file.
    fs::write(
        dir.join("bad.sql"),
        "-- model: x\n-- kind: load\nSELECT 1;\n",
    )
    .expect("model");
    let out = e
        .materia()
        .args(["transform", "--models"])
        .arg(&dir)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.sql"),
        "{out:?}"
    );
}

/// `python -c script lakehouse`, its stdin and stdout piped to the test.
fn spawn_reader(python: &str, script: &str, lakehouse: &std::path::Path) -> std::process::Child {
    std::process::Command::new(python)
        .args(["-c", script])
        .arg(lakehouse)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python reader")
}

/// A Python with `duckdb==1.5.6` (a 1.x client, as most web apps use).
fn python_duckdb_1x() -> String {
    crate::python_with("duckdb", "1.5.6")
}

/// Reads the lakehouse in a loop until stdin closes (and one round after):
/// each round a new read-only connection, the releases it sees and queries
/// over the views and a macro, closed again; prints `ROUND releases rows` or
/// `ERROR …`.
const PY_READER: &str = r#"
import sys, threading, duckdb
path = sys.argv[1]
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
last = False
while not last:
    last = stop.is_set()
    try:
        con = duckdb.connect(path, read_only=True)
        n = con.execute("SELECT count(*) FROM raw.releases").fetchone()[0]
        rows = con.execute("SELECT count(*) FROM serving.psd_revisions").fetchone()[0]
        con.execute("SELECT count(*) FROM serving.psd_as_of(2001, 1)").fetchone()
        con.close()
        print("ROUND", n, rows, flush=True)
    except Exception as e:
        print("ERROR", repr(e), flush=True)
"#;

#[test]
fn duckdb_1x_clients_read_the_lakehouse_while_transform_publishes() {
    let python = python_duckdb_1x();
    let e = env();
    e.land(1);
    assert!(e.run(&["transform"]).status.success());
    let mut reader = spawn_reader(&python, PY_READER, &e.duckdb);
    // Three more builds while it reads: fresh files, then a slot in place.
    for k in 2..=4 {
        e.land(k);
        let out = e.run(&["transform"]);
        assert!(out.status.success(), "{out:?}");
    }
    drop(reader.stdin.take());
    let out = reader.wait_with_output().expect("reader ends");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let rounds: Vec<(u64, u64)> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f[0], "ROUND", "a read failed: {l}");
            (f[1].parse().expect("n"), f[2].parse().expect("rows"))
        })
        .collect();
    assert!(rounds.len() > 3, "{text}");
    // Each round saw one whole build: releases only go up, and a build's
    // revisions count always goes with its release count.
    let mut seen = std::collections::BTreeMap::new();
    for (n, rows) in &rounds {
        assert!((1..=4).contains(n), "{n}");
        assert_eq!(*seen.entry(*n).or_insert(*rows), *rows, "{text}");
    }
    assert!(rounds.windows(2).all(|w| w[0].0 <= w[1].0), "{text}");
    assert_eq!(rounds.last().map(|r| r.0), Some(4), "{text}");
}

/// A long-lived reader: one connection held, a new build published.
const PY_PICKUP: &str = r#"
import sys, duckdb
path = sys.argv[1]
count = lambda c: c.execute("SELECT count(*) FROM raw.releases").fetchone()[0]
held = duckdb.connect(path, read_only=True)
print("HELD", count(held), flush=True)
sys.stdin.readline()  # the test publishes a new build
again = duckdb.connect(path, read_only=True)
print("NEW_CONNECTION_WHILE_HELD", count(again), flush=True)
again.close(); held.close()
fresh = duckdb.connect(path, read_only=True)
print("AFTER_CLOSING_ALL", count(fresh), flush=True)
"#;

#[test]
fn a_long_lived_1x_reader_sees_a_new_build_once_it_closes_every_connection() {
    let python = python_duckdb_1x();
    let e = env();
    e.land(1);
    assert!(e.run(&["transform"]).status.success());
    let mut reader = spawn_reader(&python, PY_PICKUP, &e.duckdb);
    let mut out = std::io::BufReader::new(reader.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("held");
    assert_eq!(line.trim(), "HELD 1");
    e.land(2);
    assert!(e.run(&["transform"]).status.success());
    std::io::Write::write_all(&mut reader.stdin.take().expect("stdin"), b"go\n").expect("go");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).expect("rest");
    assert!(reader.wait().expect("ends").success(), "{rest}");
    // DuckDB's client caches the database by path while a connection is open:
    // a new connection still sees the old build; closing every one picks up
    // the new one (the README says so).
    assert_eq!(
        rest.lines().collect::<Vec<_>>(),
        ["NEW_CONNECTION_WHILE_HELD 1", "AFTER_CLOSING_ALL 2"]
    );
}
