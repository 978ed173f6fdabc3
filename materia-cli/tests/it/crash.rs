//! The crash harness: `materia extract`, `transform`, `mirror` and `restore` as
//! child processes, killed with SIGKILL at random instants (seeded by
//! `MATERIA_KILL_SEED`, printed), 210 kills in all. After every kill and after a
//! clean rerun: no partial file under a final name, no landed file lost or
//! changed, `verify` passes, the published lakehouse opens and holds the old or
//! the new build, and what is in the bucket equals the landing zone.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use materia_core::landing::{LandingStore, Sha256Digest};
use materia_core::transform::Lakehouse;

mod crashfs;
use materia_testkit::http;
mod powercut;
#[cfg(feature = "s3")]
use materia_testkit::s3;

pub(crate) fn seed(step: &str) -> fastrand::Rng {
    let seed: u64 = std::env::var("MATERIA_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xc4a5);
    println!("{step} kill seed {seed}");
    fastrand::Rng::with_seed(seed ^ step.len() as u64)
}

/// `materia` with its output discarded (the harness kills it mid-write).
fn materia(landing: &Path) -> Command {
    let mut cmd = crate::materia(landing);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

/// Spawns `cmd`, sleeps up to `max`, SIGKILLs it; returns whether it was still
/// running (a kill mid-run rather than after the end).
pub(crate) fn kill_after(cmd: &mut Command, rng: &mut fastrand::Rng, max: Duration) -> bool {
    let mut child = cmd.spawn().expect("spawn");
    std::thread::sleep(max.mul_f64(rng.f64()));
    let running = child.try_wait().expect("wait").is_none();
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    running
}

/// Every landed file (relative key) and the SHA-256 of its bytes.
fn snapshot(landing: &Path) -> BTreeMap<String, Sha256Digest> {
    let mut out = BTreeMap::new();
    let mut stack = vec![landing.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(landing).expect("under").to_path_buf();
            if rel.starts_with(".materia") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if !rel.to_string_lossy().contains("/.tmp.") {
                let bytes = fs::read(&p).expect("readable");
                out.insert(rel.to_string_lossy().into_owned(), Sha256Digest::of(&bytes));
            }
        }
    }
    out
}

/// The invariants of a landing zone after a kill: nothing landed before is lost
/// or changed, and every visible file verifies end to end.
fn check_landing(landing: &Path, before: &BTreeMap<String, Sha256Digest>, what: &str) {
    let now = snapshot(landing);
    for (key, sha) in before {
        assert_eq!(now.get(key), Some(sha), "{what}: {key} lost or changed");
    }
    let store = LandingStore::open(landing).expect("open");
    let report = store.verify().expect("verify");
    assert!(report.is_ok(), "{what}: {report:?}");
    // Every landed file has its ledger record: the record is written (and
    // fsynced) before the file gets its name.
    assert!(
        report.unrecorded.is_empty(),
        "{what}: files without a record: {report:?}"
    );
    assert_eq!(store.list().len(), now.len(), "{what}: every file is a key");
}

#[test]
fn extract_killed_60_times() {
    let mut rng = seed("extract");
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    // Every request is a new release (new ETag, new content), ~4 MB of CSV.
    let server = http::Server::start(|_, n| {
        let body = materia_testkit::psd_csv(&materia_testkit::PsdSpec {
            min_bytes: 4 << 20,
            seed: n as u64,
        });
        let etag = format!("\"r{n}\"");
        http::Reply::ok(body, &[("ETag", etag.as_str())])
    });
    let url = server.url("/psd.csv");
    let started = Instant::now();
    let calibrate = materia(&landing)
        .args(["extract", "--url", &url])
        .status()
        .expect("runs");
    assert!(calibrate.success());
    let one = started.elapsed();
    let mut before = snapshot(&landing);
    let mut mid = 0;
    for i in 0..60 {
        let mut cmd = materia(&landing);
        cmd.args(["extract", "--url", &url]);
        mid += usize::from(kill_after(&mut cmd, &mut rng, one.mul_f64(1.3)));
        check_landing(&landing, &before, &format!("extract kill {i}"));
        before = snapshot(&landing);
    }
    println!(
        "extract: 60 kills, {mid} mid-run, {} files landed",
        before.len()
    );
    assert!(mid > 0, "some kills hit a running extract");
    let rerun = materia(&landing)
        .args(["extract", "--url", &url])
        .status()
        .expect("runs");
    assert!(rerun.success());
    check_landing(&landing, &before, "after the clean rerun");
}

fn land_release(landing: &Path, k: u64) {
    let store = LandingStore::open(landing).expect("open");
    let _ = materia_testkit::land_psd_release(&store, k, 1_300_000).expect("put");
}

fn releases_published(db: &Path) -> i64 {
    if !db.exists() {
        return 0;
    }
    Lakehouse::open_read_only(db)
        .expect("the published lakehouse opens")
        .connection()
        .query_row("SELECT count(*) FROM raw.releases", [], |r| r.get(0))
        .expect("count")
}

#[test]
fn transform_killed_40_times_mid_build() {
    let mut rng = seed("transform");
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let db = dir.path().join("lakehouse.duckdb");
    let transform = || {
        let mut cmd = materia(&landing);
        cmd.env("DUCKDB_PATH", &db).arg("transform");
        cmd
    };
    let mut next = 1;
    for _ in 0..4 {
        land_release(&landing, next);
        next += 1;
    }
    assert!(transform().status().expect("runs").success());
    // Calibrate on what each kill interrupts: one more release on the history.
    land_release(&landing, next);
    next += 1;
    let started = Instant::now();
    assert!(transform().status().expect("runs").success());
    let one = started.elapsed();
    let mut published = releases_published(&db);
    let (mut mid, mut kills) = (0, 0);
    // Kills until 40 of them hit a running build (at most 120).
    while mid < 40 && kills < 120 {
        if published == next as i64 - 1 {
            land_release(&landing, next);
            next += 1;
        }
        mid += usize::from(kill_after(&mut transform(), &mut rng, one.mul_f64(1.1)));
        kills += 1;
        // Readers open the old build or the new one, never anything else.
        let now = releases_published(&db);
        let landed = next as i64 - 1;
        assert!(
            now == published || now == landed,
            "kill {kills}: {now} releases published; old {published}, new {landed}"
        );
        published = now;
    }
    println!(
        "transform: {kills} kills, {mid} mid-build, {} releases",
        next - 1
    );
    assert!(mid >= 40, "only {mid} of {kills} kills hit a running build");
    // No release is lost: a clean run publishes every one.
    assert!(transform().status().expect("runs").success());
    assert_eq!(releases_published(&db), next as i64 - 1);
    let stale: Vec<PathBuf> = fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".build-"))
        .collect();
    assert!(stale.is_empty(), "killed builds swept: {stale:?}");
}

#[cfg(feature = "s3")]
mod bucket {
    use super::*;

    const BUCKET: &str = "materia-raw";

    fn with_s3(cmd: &mut Command, server: &s3::S3Server) {
        let url = format!("s3://{BUCKET}/landing");
        crate::with_s3(cmd, &url, &server.endpoint, "test-secret");
    }

    fn land_small(landing: &Path, from: u64, n: u64) {
        let store = LandingStore::open(landing).expect("open");
        for k in from..from + n {
            let _ = materia_testkit::land_psd_release(&store, k, 20_000).expect("put");
        }
    }

    /// Every object under the prefix equals its landing file (objects are
    /// immutable: each is read once, then remembered in `seen`).
    fn check_bucket(
        server: &s3::S3Server,
        landing: &Path,
        seen: &mut std::collections::HashSet<String>,
        what: &str,
    ) -> usize {
        let local = snapshot(landing);
        let objects = server.list_raw(BUCKET, "landing");
        for key in &objects {
            if !seen.insert(key.clone()) {
                continue;
            }
            let rel = key.strip_prefix("landing/").expect("under the prefix");
            let body = server.get_raw(BUCKET, key).expect("object");
            assert_eq!(
                local.get(rel),
                Some(&Sha256Digest::of(&body)),
                "{what}: {key} is not its landing file"
            );
        }
        objects.len()
    }

    #[test]
    fn mirror_killed_60_times() {
        let server = s3::S3Server::start();
        server.create_bucket(BUCKET);
        let mut rng = seed("mirror");
        let dir = tempfile::tempdir().expect("tempdir");
        let landing = dir.path().join("landing");
        land_small(&landing, 0, 100);
        let mirror = |args: &[&str]| {
            let mut cmd = materia(&landing);
            with_s3(&mut cmd, &server);
            cmd.arg("mirror").args(args);
            cmd
        };
        // Calibrate: a first push of 100 files, killed at once so that it does
        // not finish, gives no figure; time a push of 20 to a scratch prefix.
        let scratch = dir.path().join("scratch");
        land_small(&scratch, 10_000, 20);
        let started = Instant::now();
        let mut probe = materia(&scratch);
        with_s3(&mut probe, &server);
        probe.env("MATERIA_MIRROR_URL", format!("s3://{BUCKET}/scratch"));
        assert!(
            probe
                .args(["mirror", "--concurrency", "4"])
                .status()
                .expect("runs")
                .success()
        );
        let twenty = started.elapsed();
        let mut mid = 0;
        let mut next = 100;
        let mut seen = std::collections::HashSet::new();
        for i in 0..60 {
            // The first kill meets 100 files to push; later ones 20 new ones.
            mid += usize::from(kill_after(
                &mut mirror(&["--concurrency", "4"]),
                &mut rng,
                twenty.mul_f64(2.5),
            ));
            check_bucket(&server, &landing, &mut seen, &format!("mirror kill {i}"));
            land_small(&landing, next, 20);
            next += 20;
        }
        println!("mirror: 60 kills, {mid} mid-push");
        assert!(mid > 0);
        assert!(mirror(&[]).status().expect("runs").success());
        let verify = mirror(&["--verify"]).status().expect("runs");
        assert!(verify.success(), "the bucket holds every landed file");
        seen.clear();
        assert_eq!(
            check_bucket(&server, &landing, &mut seen, "after the clean run"),
            snapshot(&landing).len()
        );
    }

    #[test]
    fn restore_killed_50_times() {
        let server = s3::S3Server::start();
        server.create_bucket(BUCKET);
        let mut rng = seed("restore");
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("source");
        land_small(&source, 0, 80);
        let mut push = materia(&source);
        with_s3(&mut push, &server);
        assert!(push.arg("mirror").status().expect("runs").success());
        let expected = snapshot(&source);

        let target = dir.path().join("target");
        let restore = || {
            let mut cmd = materia(&target);
            with_s3(&mut cmd, &server);
            cmd.args(["restore", "--concurrency", "4"]);
            cmd
        };
        let mut before = BTreeMap::new();
        let mut mid = 0;
        for i in 0..50 {
            mid += usize::from(kill_after(
                &mut restore(),
                &mut rng,
                Duration::from_millis(700),
            ));
            check_landing(&target, &before, &format!("restore kill {i}"));
            before = snapshot(&target);
            for (key, sha) in &before {
                assert_eq!(expected.get(key), Some(sha), "restore kill {i}: {key}");
            }
            if before.len() == expected.len() {
                // Start over so that later kills land mid-restore again.
                fs::remove_dir_all(&target).expect("reset");
                before.clear();
            }
        }
        println!("restore: 50 kills, {mid} mid-restore");
        assert!(mid > 0);
        assert!(restore().status().expect("runs").success());
        assert_eq!(snapshot(&target), expected, "the whole zone, byte for byte");
    }
}
