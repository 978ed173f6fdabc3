//! `infra/bootstrap.sh` as an upgrade: a staged install, a real cycle holding
//! the run lock, and a stand-in `systemctl` that logs what it is asked.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use materia_testkit::http::{Reply, Server};

fn bootstrap(stage: &Path) -> Command {
    let mut cmd = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/bootstrap.sh"
    ));
    cmd.env("ROOT", stage)
        .env("MATERIA_BIN", env!("CARGO_BIN_EXE_materia"));
    cmd
}

/// Milliseconds since the epoch.
fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[test]
fn an_upgrade_while_a_cycle_runs_waits_for_it_to_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stage = dir.path().join("stage");
    let out = bootstrap(&stage).arg("--no-start").output().expect("runs");
    assert!(out.status.success(), "first install: {out:?}");
    // The operator keeps the landing zone elsewhere (regression, issue 24:
    // the upgrade waited on /data/materia/landing's lock whatever LANDING_DIR
    // said, and restarted the supervisor mid-cycle).
    let env_file = stage.join("etc/materia/materia.env");
    let settings = std::fs::read_to_string(&env_file).expect("materia.env");
    std::fs::write(
        &env_file,
        format!("{settings}LANDING_DIR=\"/srv/materia-landing\"\n"),
    )
    .expect("write");
    let landing = stage.join("srv/materia-landing");

    // A systemctl that logs each call with the time.
    let log = dir.path().join("systemctl.log");
    let fake = dir.path().join("systemctl");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$(date +%s%3N) $*\" >> '{}'\n",
            log.display()
        ),
    )
    .expect("write");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");

    // A real cycle: extract from a server that takes 3 s to answer.
    let body = materia_testkit::psd_csv(&materia_testkit::PsdSpec {
        min_bytes: 2_000,
        seed: 1,
    });
    let server = Server::start(move |_, _| Reply::Paused {
        body: body.clone(),
        split: 10,
        pause: Duration::from_secs(3),
    });
    let mut cycle = crate::materia(&landing)
        .env("DUCKDB_PATH", stage.join("data/materia/lakehouse.duckdb"))
        .args([
            "run",
            "--steps",
            "extract",
            "--url",
            &server.url("/psd.csv"),
        ])
        .spawn()
        .expect("a cycle");
    // Wait until the cycle holds the run lock.
    let lock = landing.join(".materia/run.lock");
    let started = Instant::now();
    while lock.exists().then(|| {
        Command::new("flock")
            .args(["-n"])
            .arg(&lock)
            .arg("true")
            .status()
            .expect("flock runs")
            .success()
    }) != Some(false)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the cycle never took the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The upgrade, while the cycle runs.
    let upgrade_started = now_ms();
    let upgrade = bootstrap(&stage)
        .env("SYSTEMCTL", &fake)
        .output()
        .expect("upgrade runs");
    assert!(upgrade.status.success(), "upgrade: {upgrade:?}");
    let status = cycle.wait().expect("cycle ends");
    assert!(status.success(), "the cycle finished well: {status:?}");

    // When the cycle ended, per its own record.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(landing.join(".materia/state.json")).expect("state"))
            .expect("json");
    let cycle_started: jiff::Timestamp = state["last_cycle"]["started_at"]
        .as_str()
        .expect("started_at")
        .parse()
        .expect("timestamp");
    let cycle_end =
        cycle_started.as_millisecond() + state["last_cycle"]["millis"].as_i64().expect("millis");
    assert!(
        upgrade_started < cycle_end - 1000,
        "the upgrade began while the cycle ran ({upgrade_started} vs {cycle_end})"
    );
    let calls = std::fs::read_to_string(&log).expect("systemctl was called");
    let restart = calls
        .lines()
        .find(|l| l.ends_with("restart materia-supervisor.service"))
        .unwrap_or_else(|| panic!("no supervisor restart: {calls}"));
    let restarted_at: i64 = restart
        .split(' ')
        .next()
        .and_then(|t| t.parse().ok())
        .expect("time");
    assert!(
        restarted_at >= cycle_end,
        "restarted at {restarted_at}, before the cycle ended at {cycle_end}: {calls}"
    );
    assert!(
        calls
            .lines()
            .next()
            .is_some_and(|l| l.ends_with("daemon-reload")),
        "{calls}"
    );
    assert!(calls.contains("restart materia-serve.service"), "{calls}");
    // No bucket set (the example's placeholders): the backup and drill
    // timers are not enabled, and both bootstrap and `status` say so.
    assert!(!calls.contains("enable materia-backup.timer"), "{calls}");
    assert!(!calls.contains("start materia-backup.timer"), "{calls}");
    let said = String::from_utf8_lossy(&upgrade.stderr);
    assert!(
        said.contains("timers are NOT enabled") && said.contains("MATERIA_MIRROR_URL"),
        "{said}"
    );
    // `status` names the version the cycle ran (the supervisor's).
    let status = crate::materia(&landing)
        .arg("status")
        .output()
        .expect("status runs");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l == format!("supervisor: materia {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(
        text.contains("backup: none yet") && text.contains("MATERIA_MIRROR_URL"),
        "{text}"
    );
    // The binary was replaced, the R2 keys file stayed root-only.
    assert!(stage.join("usr/local/bin/materia").exists());
    let mode = std::fs::metadata(stage.join("etc/materia/r2.env"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .expect("r2.env");
    assert_eq!(mode, 0o600);
}

/// With the bucket given (as cloud-init's install.env passes it) and the keys
/// in r2.env, a first install writes the bucket into materia.env and enables
/// the backup and drill timers.
#[test]
fn the_backup_timers_are_enabled_once_the_bucket_is_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stage = dir.path().join("stage");
    let log = dir.path().join("systemctl.log");
    let fake = dir.path().join("systemctl");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n", log.display()),
    )
    .expect("write");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    // The keys, as the operator (or cloud-init) writes them first.
    std::fs::create_dir_all(stage.join("etc/materia")).expect("dir");
    std::fs::write(
        stage.join("etc/materia/r2.env"),
        "AWS_ACCESS_KEY_ID=abc\nAWS_SECRET_ACCESS_KEY=def\n",
    )
    .expect("keys");
    let out = bootstrap(&stage)
        .env("SYSTEMCTL", &fake)
        .env("MATERIA_MIRROR_URL", "s3://materia-raw/landing")
        .env("AWS_ENDPOINT", "https://acct.r2.cloudflarestorage.com")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let settings = std::fs::read_to_string(stage.join("etc/materia/materia.env")).expect("env");
    assert!(
        settings.contains("\nMATERIA_MIRROR_URL=s3://materia-raw/landing\n")
            && settings.contains("\nAWS_ENDPOINT=https://acct.r2.cloudflarestorage.com\n"),
        "{settings}"
    );
    let calls = std::fs::read_to_string(&log).expect("calls");
    assert!(
        calls.contains("enable materia-backup.timer materia-drill.timer"),
        "{calls}"
    );
    // A value that would break the file is refused, named.
    let out = bootstrap(&dir.path().join("stage2"))
        .arg("--no-start")
        .env("AWS_ENDPOINT", "https://x|evil")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("AWS_ENDPOINT"));
}
