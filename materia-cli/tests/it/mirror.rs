//! `materia mirror` and `materia restore` as processes against a real
//! S3-compatible server on loopback (moto), including SIGKILL mid-push.
#![cfg(feature = "s3")]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use materia_core::landing::{LandingKey, LandingStore, NewRelease};
use serde_json::Value;

use materia_testkit::proxy;
use materia_testkit::s3;

const BUCKET: &str = "materia-raw";
const SECRET: &str = "sup3r-s3cret-never-printed";

fn materia(landing: &Path, endpoint: &str) -> Command {
    let mut cmd = crate::materia(landing);
    crate::with_s3(
        &mut cmd,
        &format!("s3://{BUCKET}/landing"),
        endpoint,
        SECRET,
    );
    cmd
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn land_many(landing: &Path, n: u64) -> Vec<LandingKey> {
    let store = LandingStore::open(landing).expect("open");
    (0..n)
        .map(|i| {
            materia_testkit::land_psd_release(&store, i, 4_000)
                .expect("put")
                .landed()
                .expect("new")
                .key
        })
        .collect()
}

fn total_bytes(landing: &Path, keys: &[LandingKey]) -> u64 {
    let store = LandingStore::open(landing).expect("open");
    keys.iter()
        .map(|k| fs::metadata(store.path_of(k)).expect("file").len())
        .sum()
}

#[test]
fn mirror_verify_and_restore_with_json_and_no_secret_in_errors() {
    let server = s3::S3Server::start();
    server.create_bucket(BUCKET);
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let keys = land_many(&landing, 12);

    let first = json(
        &materia(&landing, &server.endpoint)
            .args(["mirror", "--json"])
            .output()
            .expect("runs"),
    );
    assert_eq!(first["uploaded"], 12);
    assert_eq!(first["skipped"], 0);
    assert_eq!(first["bytes"], total_bytes(&landing, &keys));
    let again = json(
        &materia(&landing, &server.endpoint)
            .args(["mirror", "--json"])
            .output()
            .expect("runs"),
    );
    assert_eq!(
        (again["uploaded"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(12))
    );
    let verify = materia(&landing, &server.endpoint)
        .args(["mirror", "--verify"])
        .output()
        .expect("runs");
    assert!(verify.status.success(), "{verify:?}");
    assert!(
        String::from_utf8_lossy(&verify.stdout)
            .contains("12 object(s) checked, 0 missing, 0 different")
    );

    let restored = dir.path().join("restored");
    let r = json(
        &materia(&restored, &server.endpoint)
            .args(["restore", "--json"])
            .output()
            .expect("runs"),
    );
    assert_eq!(r["downloaded"], 12);
    assert_eq!(r["bytes"], first["bytes"]);
    let check = materia(&restored, &server.endpoint)
        .args(["verify"])
        .output()
        .expect("runs");
    assert!(check.status.success(), "{check:?}");

    // A server that is not there: one clear error line, no secret in it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let landing_b = dir.path().join("b");
    land_many(&landing_b, 1);
    let failed = materia(&landing_b, &format!("http://{closed}"))
        .args(["mirror"])
        .env("MATERIA_LOG", "debug")
        .output()
        .expect("runs");
    assert_eq!(failed.status.code(), Some(2), "{failed:?}");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&failed.stdout),
        String::from_utf8_lossy(&failed.stderr)
    );
    assert!(all.contains("mirror s3://materia-raw/landing"), "{all}");
    assert!(!all.contains(SECRET), "the secret leaked: {all}");
    assert!(
        !all.contains("Signature=") && !all.to_ascii_lowercase().contains("authorization:"),
        "a signed header leaked: {all}"
    );
}

#[test]
fn sigkill_mid_push_then_one_clean_run_leaves_the_bucket_equal_to_the_landing_zone() {
    let server = s3::S3Server::start();
    server.create_bucket(BUCKET);
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let keys = land_many(&landing, 120);
    let seed: u64 = std::env::var("MATERIA_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    println!("mirror kill seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut killed_mid_push = 0;
    for _ in 0..10 {
        let mut child = materia(&landing, &server.endpoint)
            .args(["mirror", "--concurrency", "4"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(rng.u64(20..600)));
        if child.try_wait().expect("wait").is_none() {
            killed_mid_push += 1;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }
    println!("killed {killed_mid_push} of 10 pushes mid-run");
    let last = json(
        &materia(&landing, &server.endpoint)
            .args(["mirror", "--json"])
            .output()
            .expect("runs"),
    );
    assert_eq!(last["conflicts"], Value::Array(vec![]), "{last}");
    let verify = materia(&landing, &server.endpoint)
        .args(["mirror", "--verify", "--json"])
        .output()
        .expect("runs");
    let report = json(&verify);
    assert_eq!(report["checked"], 120, "{report}");
    let full = json(
        &materia(&landing, &server.endpoint)
            .args(["mirror", "--full", "--json"])
            .output()
            .expect("runs"),
    );
    assert_eq!(full["uploaded"], 0, "nothing was missing: {full}");
    let local = materia(&landing, &server.endpoint)
        .args(["verify"])
        .output()
        .expect("runs");
    assert!(local.status.success(), "landed files untouched: {local:?}");
    assert_eq!(keys.len(), 120);
}

#[test]
fn a_multipart_upload_killed_mid_way_is_aborted_by_the_next_push() {
    let server = s3::S3Server::start();
    server.create_bucket(BUCKET);
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let store = LandingStore::open(&landing).expect("open");
    let mut rng = fastrand::Rng::with_seed(9);
    let body: Vec<u8> = (0..12 << 20).map(|_| rng.u8(..)).collect();
    let release = NewRelease::new("psd".parse().expect("valid"), 2026, 1)
        .expect("valid")
        .with_etag(Some("big".parse().expect("valid")));
    let key = store
        .put(release, &body[..])
        .expect("put")
        .landed()
        .expect("new")
        .key;
    let proxy = proxy::FaultProxy::start(&server.endpoint);
    proxy.inject("PUT", "partNumber=2", proxy::Fault::Hang, 1);
    let sizes = ["--multipart-threshold-mib", "6", "--part-size-mib", "5"];
    let mut child = materia(&landing, &proxy.endpoint)
        .args(["mirror"])
        .args(sizes)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pending_dir = || -> Option<PathBuf> {
        fs::read_dir(landing.join(".materia/mirror"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "pending"))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while proxy.injected() == 0 {
        assert!(Instant::now() < deadline, "the hung part never came");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let pending = pending_dir().expect("the upload was recorded before its parts");
    assert_eq!(fs::read_dir(&pending).expect("dir").count(), 1);
    assert_eq!(server.multipart_uploads(BUCKET), 1, "left open by the kill");

    let next = json(
        &materia(&landing, &proxy.endpoint)
            .args(["mirror", "--json"])
            .args(sizes)
            .output()
            .expect("runs"),
    );
    assert_eq!(next["aborted"], 1, "{next}");
    assert_eq!(next["uploaded"], 1, "{next}");
    assert_eq!(server.multipart_uploads(BUCKET), 0, "no orphan upload");
    assert_eq!(fs::read_dir(&pending).expect("dir").count(), 0);
    assert_eq!(
        server.get_raw(BUCKET, &format!("landing/{key}")),
        Some(fs::read(store.path_of(&key)).expect("local"))
    );
}

#[test]
fn under_umask_000_every_file_under_materia_is_0640_and_documented() {
    use std::os::unix::fs::PermissionsExt;
    let server = s3::S3Server::start();
    server.create_bucket(BUCKET);
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    land_many(&landing, 2);
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("umask 000 && exec \"$0\" mirror --multipart-threshold-mib 0 --part-size-mib 5 --json")
        .arg(env!("CARGO_BIN_EXE_materia"));
    crate::with_s3(
        &mut cmd,
        &format!("s3://{BUCKET}/landing"),
        &server.endpoint,
        SECRET,
    );
    let out = cmd.env("LANDING_DIR", &landing).output().expect("runs");
    assert!(out.status.success(), "{out:?}");
    let meta = materia_core::landing::MetaDir::of(&landing);
    for entry in std::fs::read_dir(meta.path()).expect("meta dir") {
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
    let mode = |p: &Path| {
        std::fs::symlink_metadata(p)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    };
    let mut stack = vec![meta.path().to_path_buf()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        assert_eq!(mode(&d), 0o750, "{}", d.display());
        for e in std::fs::read_dir(&d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                assert_eq!(mode(&p), 0o640, "{}", p.display());
            }
        }
    }
    // ledger, lock, the mirror's record, its .full and its lock
    assert!(files >= 5, "only {files} files");
}

/// The R2 keys as systemd passes them (`LoadCredential=r2:…`): a file `r2`
/// under `$CREDENTIALS_DIRECTORY`, no key in the environment.
#[test]
fn the_r2_credential_reaches_the_bucket_commands_and_the_mirror_step_only() {
    let server = s3::S3Server::start();
    server.create_bucket(BUCKET);
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let keys = land_many(&landing, 3);
    let creds = dir.path().join("credentials");
    fs::create_dir_all(&creds).expect("dir");
    let keyless = |args: &[&str]| {
        let mut cmd = materia(&landing, &server.endpoint);
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("DUCKDB_PATH", dir.path().join("lakehouse.duckdb"))
            .args(args);
        cmd
    };
    // No keys anywhere: the S3 client has nothing to sign with.
    let out = keyless(&["mirror"]).output().expect("runs");
    assert!(!out.status.success(), "{out:?}");

    fs::write(
        creds.join("r2"),
        format!("# the R2 token\nAWS_ACCESS_KEY_ID=test\nAWS_SECRET_ACCESS_KEY={SECRET}\n"),
    )
    .expect("write");
    let report = json(
        &keyless(&["mirror", "--json"])
            .env("CREDENTIALS_DIRECTORY", &creds)
            .output()
            .expect("runs"),
    );
    assert_eq!(report["uploaded"], keys.len() as u64, "{report}");

    // The supervisor reads it and hands the keys to its mirror step (which
    // never sees CREDENTIALS_DIRECTORY itself).
    land_many_from(&landing, 100, 2);
    let out = keyless(&["run", "--steps", "mirror,check"])
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .expect("runs");
    let state: Value =
        serde_json::from_slice(&fs::read(landing.join(".materia/state.json")).expect("state"))
            .expect("json");
    assert_eq!(state["steps"]["mirror"]["outcome"], "ok", "{out:?}");
    assert_eq!(server.list_raw(BUCKET, "landing").len(), keys.len() + 2);

    // A credential holding anything but AWS_* settings is refused, named.
    fs::write(
        creds.join("r2"),
        "AWS_ACCESS_KEY_ID=test\nLD_PRELOAD=/tmp/evil.so\n",
    )
    .expect("write");
    let out = keyless(&["mirror"])
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2") && err.contains("LD_PRELOAD"),
        "{err}"
    );
    assert!(!err.contains("evil"), "no value echoed: {err}");
}

/// Regression (issue 24): an `AWS_*` variable set to the empty string (old
/// `materia.env` files shipped `AWS_ACCESS_KEY_ID=`) hid the r2 credential,
/// and the requests were signed with an empty key.
#[test]
fn an_empty_aws_variable_does_not_hide_the_r2_credential() {
    let server = s3::S3Server::start();
    server.create_bucket(BUCKET);
    let proxy = proxy::FaultProxy::start(&server.endpoint);
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let keys = land_many(&landing, 2);
    let creds = dir.path().join("credentials");
    fs::create_dir_all(&creds).expect("dir");
    fs::write(
        creds.join("r2"),
        format!("AWS_ACCESS_KEY_ID=from-credential\nAWS_SECRET_ACCESS_KEY={SECRET}\n"),
    )
    .expect("write");
    let empty_keys = |args: &[&str]| {
        let mut cmd = materia(&landing, &proxy.endpoint);
        cmd.env("AWS_ACCESS_KEY_ID", "")
            .env("AWS_SECRET_ACCESS_KEY", "")
            .env("CREDENTIALS_DIRECTORY", &creds)
            .env("DUCKDB_PATH", dir.path().join("lakehouse.duckdb"))
            .args(args);
        cmd
    };
    let out = empty_keys(&["mirror", "--json"]).output().expect("runs");
    let report = json(&out);
    assert_eq!(report["uploaded"], keys.len() as u64, "{report}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AWS_ACCESS_KEY_ID is set but empty"),
        "the empty line is named: {err}"
    );
    // And through the supervisor's mirror step (blank counts as empty).
    land_many_from(&landing, 100, 1);
    let out = empty_keys(&["run", "--steps", "mirror"])
        .env("AWS_ACCESS_KEY_ID", " ")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let signed = proxy.authorizations();
    assert!(!signed.is_empty());
    for auth in &signed {
        assert!(
            auth.contains("Credential=from-credential/"),
            "signed with another key: {auth:?}"
        );
    }
    assert_eq!(server.list_raw(BUCKET, "landing").len(), keys.len() + 1);
    // An endpoint that is no URL is an error naming it (object_store panicked).
    let out = empty_keys(&["mirror"])
        .env("AWS_ENDPOINT", "notaurl")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AWS_ENDPOINT") && err.contains("notaurl"),
        "{err}"
    );
}

fn land_many_from(landing: &Path, from: u64, n: u64) {
    let store = LandingStore::open(landing).expect("open");
    for i in from..from + n {
        let _ = materia_testkit::land_psd_release(&store, i, 4_000).expect("put");
    }
}

/// `cmd` with S3 settings for `endpoint` and no credentials at all: every
/// `AWS_*` this process has removed, no `r2` credential, no opt-in to the
/// instance's role.
pub(crate) fn without_keys<'a>(cmd: &'a mut Command, endpoint: &str) -> &'a mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(name);
        }
    }
    cmd.env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("MATERIA_S3_INSTANCE_METADATA")
        .env("AWS_ENDPOINT", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
}

/// Asserts `out` is the refusal of a bucket command without keys: exit 2,
/// naming the variables and the r2 credential, never the instance-metadata
/// endpoint `object_store` falls back to.
pub(crate) fn assert_no_keys_named(out: &Output, what: &str) {
    assert_eq!(out.status.code(), Some(2), "{what}: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for named in [
        "no credentials",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "r2",
    ] {
        assert!(err.contains(named), "{what}: {named} in {err}");
    }
    assert!(!err.contains("169.254"), "{what}: {err}");
}

/// Regression: with a URL and no keys, the S3 client asked the EC2
/// instance-metadata endpoint and failed with `Error performing PUT
/// http://169.254.169.254/latest/api/token … 403`.
#[test]
fn without_keys_the_bucket_commands_name_them_before_any_request() {
    // Whatever reaches the "server" is recorded; nothing may.
    let proxy = proxy::FaultProxy::start("http://127.0.0.1:9");
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    let _ = land_many(&landing, 1);
    for args in [
        &["mirror"][..],
        &["mirror", "--verify"],
        &["restore"],
        &["drill"],
    ] {
        let mut cmd = crate::materia(&landing);
        let out = without_keys(&mut cmd, &proxy.endpoint)
            .env("MATERIA_MIRROR_URL", format!("s3://{BUCKET}/landing"))
            .env("DUCKDB_PATH", dir.path().join("lakehouse.duckdb"))
            .env("MATERIA_DRILL_DIR", dir.path())
            .args(args)
            .output()
            .expect("runs");
        assert_no_keys_named(&out, &format!("{args:?}"));
    }
    assert_eq!(proxy.requests(), Vec::<String>::new(), "no request made");
}
