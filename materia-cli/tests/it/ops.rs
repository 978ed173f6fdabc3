//! Operations: `materia check` (freshness, also as a supervisor step that
//! alerts), `materia drill` and the sampled `mirror --verify` against moto.

use std::fs;

use materia_core::landing::{LandingStore, NewRelease};
use materia_testkit::http;
use materia_testkit::{PsdSpec, psd_csv};
use serde_json::Value;

use crate::env;

/// Lands a PSD release that landed `days_ago` days ago; returns its key.
fn land_aged(landing: &std::path::Path, seed: u64, days_ago: i64) -> String {
    let store = LandingStore::open(landing).expect("open");
    let at = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days_ago);
    let release = NewRelease::new("psd".parse().expect("name"), 2026, 1 + seed as i64 % 12)
        .expect("release")
        .with_landed_at(at);
    let body = psd_csv(&PsdSpec {
        min_bytes: 20_000,
        seed,
    });
    store
        .put(release, &body[..])
        .expect("put")
        .landed()
        .expect("new")
        .key
        .to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_flags_a_dataset_past_its_cadence_and_a_stale_lakehouse() {
    let e = env();
    let old = land_aged(&e.landing, 1, 50);

    // 50 days old (monthly allows 45) and never built.
    let out = e.run(&["check", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let psd = &report["datasets"][0];
    assert_eq!(
        (&psd["dataset"], &psd["stale"]),
        (&"psd".into(), &true.into())
    );
    assert_eq!(psd["newest"], old.as_str());
    let age = psd["age_seconds"].as_u64().expect("age");
    assert!((50 * 86_400..50 * 86_400 + 600).contains(&age), "{age}");
    assert_eq!(report["lakehouse"]["stale"], true);
    assert_eq!(report["lakehouse"]["exists"], false);
    assert_eq!(report["lakehouse"]["behind"][0], old.as_str());
    let err = stderr(&out);
    assert!(err.contains("dataset psd") && err.contains(&old), "{err}");
    assert!(
        err.contains("lakehouse") && err.contains("(missing)"),
        "{err}"
    );

    // Built: the lakehouse is fresh, the dataset still is not.
    assert!(e.run(&["transform"]).status.success());
    let out = e.run(&["check"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("STALE dataset psd"), "{text}");
    assert!(text.contains("ok    lakehouse"), "{text}");
    assert!(!stderr(&out).contains("lakehouse"), "{}", stderr(&out));

    // A release landed today, built: everything is fresh.
    land_aged(&e.landing, 2, 0);
    assert!(e.run(&["transform"]).status.success());
    assert_eq!(e.run(&["check"]).status.code(), Some(0));
    // Landed, not built, but within the grace: still fresh; past a zero grace: stale.
    land_aged(&e.landing, 3, 0);
    assert_eq!(e.run(&["check"]).status.code(), Some(0));
    let config = e.dir.path().join("materia.toml");
    fs::write(
        &config,
        "[freshness]\nlakehouse_grace = \"0s\"\n\
         [datasets.cot]\nurl = \"file:///nonexistent.zip\"\ncadence = \"weekly\"\n",
    )
    .expect("config");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = e
        .materia()
        .arg("--config")
        .arg(&config)
        .args(["check", "--json"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let cot = report["datasets"]
        .as_array()
        .expect("datasets")
        .iter()
        .find(|d| d["dataset"] == "cot")
        .expect("cot is reported");
    assert_eq!(cot["stale"], true, "a weekly dataset with nothing landed");
    assert_eq!(cot["max_age_seconds"], 10 * 86_400);
    assert_eq!(
        report["lakehouse"]["behind"].as_array().map(Vec::len),
        Some(1)
    );
    assert!(stderr(&out).contains("dataset cot: nothing has landed"));

    // A bad cadence is a config error naming the key.
    fs::write(
        &config,
        "[datasets.cot]\nurl = \"file:///x\"\ncadence = \"hourly\"\n",
    )
    .expect("config");
    let out = e
        .materia()
        .arg("--config")
        .arg(&config)
        .arg("check")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("datasets.cot.cadence"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_supervisor_runs_check_each_cycle_and_alerts_once_on_a_breach() {
    let receiver = http::Server::start(|_, _| http::Reply::status(200));
    let e = env();
    land_aged(&e.landing, 1, 60);
    let hook = receiver.url("/hook");
    for _ in 0..2 {
        let out = e.run(&["run", "--steps", "transform,check", "--alert-url", &hook]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
    }
    let status = e.json(&["status", "--json"]);
    assert_eq!(status["steps"]["check"]["outcome"], "failed");
    assert_eq!(status["steps"]["transform"]["outcome"], "ok");
    let seen = receiver.requests();
    assert_eq!(seen.len(), 1, "one alert per failure streak");
    let body: Value = serde_json::from_slice(&seen[0].body).expect("JSON");
    assert_eq!(body["step"], "check");
    let error = body["error"].as_str().expect("error line");
    assert!(
        error.contains("dataset psd") && error.contains("60d"),
        "{error}"
    );

    // A fresh release: the next cycle recovers and says so.
    land_aged(&e.landing, 2, 0);
    let out = e.run(&["run", "--steps", "transform,check", "--alert-url", &hook]);
    assert!(out.status.success(), "{out:?}");
    let seen = receiver.requests();
    assert_eq!(seen.len(), 2);
    let body: Value = serde_json::from_slice(&seen[1].body).expect("JSON");
    assert_eq!(body["kind"], "recovery");
}

#[cfg(feature = "s3")]
mod bucket {
    use std::io::Write;

    use materia_testkit::s3;
    use serde_json::Value;

    use crate::env;

    const BUCKET: &str = "materia-drill";

    /// An [`crate::Env`] with `n` releases landed, built and mirrored.
    fn mirrored(server: &s3::S3Server, n: u64) -> (crate::Env, Vec<String>) {
        server.create_bucket(BUCKET);
        let e = env();
        let store = materia_core::landing::LandingStore::open(&e.landing).expect("open");
        let keys = (0..n)
            .map(|k| {
                materia_testkit::land_psd_release(&store, k, 8_000)
                    .expect("put")
                    .landed()
                    .expect("new")
                    .key
                    .to_string()
            })
            .collect();
        assert!(e.run(&["transform"]).status.success());
        assert!(run(&e, server, &["mirror"]).status.success());
        (e, keys)
    }

    fn run(e: &crate::Env, server: &s3::S3Server, args: &[&str]) -> std::process::Output {
        let mut cmd = e.materia();
        crate::with_s3(
            &mut cmd,
            &format!("s3://{BUCKET}/landing"),
            &server.endpoint,
            "drill-secret",
        );
        cmd.env("MATERIA_DRILL_DIR", e.dir.path());
        cmd.args(args).output().expect("runs")
    }

    /// Replaces an object behind the mirror's back with other valid gzip.
    fn alter(server: &s3::S3Server, key: &str) {
        let body = materia_testkit::psd_csv(&materia_testkit::PsdSpec {
            min_bytes: 8_000,
            seed: 999,
        });
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).expect("gzip");
        let object = format!("landing/{key}");
        assert!(server.get_raw(BUCKET, &object).is_some(), "{object} exists");
        server.put_raw(BUCKET, &object, gz.finish().expect("gzip"));
    }

    /// Whatever the drill left in its work directory.
    fn drill_leftovers(e: &crate::Env) -> Vec<String> {
        std::fs::read_dir(e.dir.path())
            .expect("dir")
            .map(|d| d.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("materia-drill-"))
            .collect()
    }

    #[test]
    fn drill_passes_on_a_healthy_bucket_and_names_an_altered_object() {
        let server = s3::S3Server::start();
        let (e, keys) = mirrored(&server, 3);

        let out = run(&e, &server, &["drill", "--json"]);
        assert!(out.status.success(), "{out:?}");
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(report["restored"], 3);
        assert_eq!(report["releases"], 3);
        assert_eq!(report["differences"].as_array().map(Vec::len), Some(0));
        let tables = report["tables"].as_array().expect("tables");
        for name in [
            "serving.psd_history",
            "raw.releases",
            "serving.psd_latest",
            "serving.psd_revisions",
        ] {
            let t = tables.iter().find(|t| t["table"] == name).expect(name);
            assert_eq!(t["same"], true, "{t}");
            assert!(t["rows"].as_u64().expect("rows") > 0, "{t}");
        }
        assert!(
            drill_leftovers(&e).is_empty(),
            "the temporary copy is removed"
        );
        let status = e.json(&["status", "--json"]);
        assert_eq!(status["last_drill"]["ok"], true);
        assert_eq!(status["last_drill"]["restored"], 3);

        alter(&server, &keys[1]);
        let out = run(&e, &server, &["drill"]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let named = format!("DIFFERENT {}: the bucket's copy has SHA-256", keys[1]);
        assert!(text.contains(&named), "{text}");
        assert!(
            text.contains("DIFFERENT table serving.psd_history"),
            "{text}"
        );
        assert!(!text.contains(&format!("DIFFERENT {}:", keys[0])), "{text}");
        assert!(drill_leftovers(&e).is_empty());
        let status = e.run(&["status"]);
        let text = String::from_utf8_lossy(&status.stdout);
        assert!(
            text.contains("last drill:") && text.contains("FAILED"),
            "{text}"
        );
        assert!(text.contains(&keys[1]), "{text}");

        // The landing zone and the published lakehouse are untouched by a drill.
        let verify = e.run(&["verify"]);
        assert!(verify.status.success(), "{verify:?}");
    }

    /// Lands a file whose rows DuckDB cannot read: `transform` quarantines it
    /// (exit 1) with DuckDB's error text.
    fn land_unreadable(e: &crate::Env) -> String {
        let store = materia_core::landing::LandingStore::open(&e.landing).expect("open");
        let mut body = materia_testkit::psd_csv(&materia_testkit::PsdSpec {
            min_bytes: 8_000,
            seed: 9,
        });
        body.extend_from_slice(
            b"0711100,Coffee,BR,Brazil,notayear,2020,00,028,Production,02,(1000 60 KG BAGS),1.0\n",
        );
        let release = materia_core::landing::NewRelease::new("psd".parse().expect("name"), 2001, 3)
            .expect("release")
            .with_etag(Some("badrows".parse().expect("etag")));
        let key = store
            .put(release, &body[..])
            .expect("put")
            .landed()
            .expect("new")
            .key;
        key.to_string()
    }

    #[test]
    fn a_file_duckdb_quarantined_does_not_fail_every_drill() {
        let server = s3::S3Server::start();
        server.create_bucket(BUCKET);
        let e = env();
        let store = materia_core::landing::LandingStore::open(&e.landing).expect("open");
        for k in 0..2 {
            let _ = materia_testkit::land_psd_release(&store, k, 8_000).expect("put");
        }
        let bad = land_unreadable(&e);
        let out = e.run(&["transform"]);
        assert_eq!(out.status.code(), Some(1), "quarantined: {out:?}");
        // The premise: the reason quotes DuckDB, which names the file's path.
        let lake = materia_core::transform::Lakehouse::open_read_only(&e.duckdb).expect("lake");
        let rejected = lake.rejected().expect("rejected");
        drop(lake);
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert_eq!(rejected[0].landing_key, bad);
        let landing = e.landing.display().to_string();
        assert!(rejected[0].reason.contains(&landing), "{rejected:?}");
        assert!(run(&e, &server, &["mirror"]).status.success());

        let out = run(&e, &server, &["drill", "--json"]);
        assert!(out.status.success(), "{out:?}");
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(report["differences"], serde_json::json!([]), "{report}");
        let tables = report["tables"].as_array().expect("tables");
        let quarantine = tables
            .iter()
            .find(|t| t["table"] == "raw.rejected")
            .expect("raw.rejected compared");
        assert_eq!(
            (&quarantine["same"], &quarantine["rows"]),
            (&true.into(), &1.into())
        );
    }

    /// Sets the modification time of `path` to `ago` in the past.
    fn age(path: &std::path::Path, ago: std::time::Duration) {
        let at = std::time::SystemTime::now() - ago;
        std::fs::File::open(path)
            .expect("open")
            .set_times(std::fs::FileTimes::new().set_modified(at))
            .expect("set mtime");
    }

    #[test]
    fn a_drill_sweeps_what_killed_drills_left_and_nothing_else() {
        let server = s3::S3Server::start();
        let (e, _) = mirrored(&server, 1);
        let dir = e.dir.path();
        let hour = std::time::Duration::from_secs(3600);
        let make = |name: &str, lock: bool, ago: std::time::Duration| {
            let d = dir.join(name);
            std::fs::create_dir_all(d.join("landing/psd")).expect("mkdir");
            std::fs::write(d.join("landing/psd/x.csv.gzip"), b"copy").expect("file");
            let lock = lock
                .then(|| std::fs::File::create(d.join(".materia-drill.lock")).expect("lock file"));
            age(&d, ago);
            lock
        };
        // Killed: its lock free, untouched for an hour.
        make("materia-drill-killed", true, hour);
        // Killed, from a version without the lock: two days old.
        make("materia-drill-before", false, 48 * hour);
        // Running: its lock held (here, by this process), however old.
        let running = make("materia-drill-running", true, 48 * hour).expect("lock");
        running.try_lock().expect("held");
        // Lockless but recent (a drill between making its directory and locking it).
        make("materia-drill-young", false, std::time::Duration::ZERO);
        // Not Materia's: a symlink to a directory elsewhere, a plain file, another name.
        let elsewhere = tempfile::tempdir().expect("tempdir");
        std::fs::write(elsewhere.path().join("precious"), b"keep").expect("file");
        std::os::unix::fs::symlink(elsewhere.path(), dir.join("materia-drill-link")).expect("ln");
        std::fs::write(dir.join("materia-drill-file"), b"keep").expect("file");
        make("other-killed", true, 48 * hour);

        let out = run(&e, &server, &["drill"]);
        assert!(out.status.success(), "{out:?}");
        let mut left = drill_leftovers(&e);
        left.sort();
        assert_eq!(
            left,
            [
                "materia-drill-file",
                "materia-drill-link",
                "materia-drill-running",
                "materia-drill-young"
            ]
        );
        assert!(dir.join("other-killed/landing/psd/x.csv.gzip").exists());
        assert!(
            dir.join("materia-drill-running/landing/psd/x.csv.gzip")
                .exists()
        );
        assert_eq!(
            std::fs::read(elsewhere.path().join("precious")).expect("untouched"),
            b"keep"
        );
        drop(running);
    }

    #[test]
    fn sampled_verify_covers_every_object_over_a_round_and_finds_an_altered_one() {
        let server = s3::S3Server::start();
        let (e, keys) = mirrored(&server, 5);
        alter(&server, &keys[3]);
        let mut different = Vec::new();
        let mut completed = Vec::new();
        for _ in 0..3 {
            let out = run(
                &e,
                &server,
                &["mirror", "--verify", "--sample", "2", "--json"],
            );
            let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
            assert_eq!(report["checked"], 2, "{report}");
            assert_eq!(report["missing"].as_array().map(Vec::len), Some(0));
            let found: Vec<String> = report["different"]
                .as_array()
                .expect("different")
                .iter()
                .map(|v| v.as_str().expect("key").to_owned())
                .collect();
            assert_eq!(
                out.status.code(),
                Some(if found.is_empty() { 0 } else { 1 })
            );
            different.extend(found);
            completed.push(report.get("round_completed_at").is_some());
        }
        assert_eq!(different, [keys[3].clone()], "found once, in its turn");
        assert_eq!(completed, [false, false, true], "5 objects, 2 a run");
        let out = run(&e, &server, &["mirror", "--verify", "--sample", "0"]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("0 object(s) checked"));
    }
}
