//! `materia publish` against moto on loopback: a cycle that publishes, an
//! independent reader (Polars) through `latest.json`, and SIGKILLs.

use std::process::Command;
use std::time::{Duration, Instant};

use materia_core::landing::LandingStore;
use materia_testkit::s3::S3Server;
use serde_json::Value;

use crate::{Env, env};

const BUCKET: &str = "materia-lake";

fn with_publish(cmd: &mut Command, server: &S3Server, prefix: &str) {
    crate::with_s3(cmd, "s3://unused/landing", &server.endpoint, "test-secret");
    cmd.env("MATERIA_PUBLISH_URL", format!("s3://{BUCKET}/{prefix}"));
}

fn land(env: &Env, k: u64, bytes: usize) {
    let store = LandingStore::open(&env.landing).expect("open");
    let _ = materia_testkit::land_psd_release(&store, k, bytes).expect("land");
}

fn transform(env: &Env) {
    let out = env.run(&["transform"]);
    assert!(out.status.success(), "{out:?}");
}

/// `latest.json` under `prefix`, if any.
fn latest(server: &S3Server, prefix: &str) -> Option<Value> {
    let bytes = server.get_raw(BUCKET, &format!("{prefix}/latest.json"))?;
    Some(serde_json::from_slice(&bytes).expect("latest.json is a manifest"))
}

/// Every file `manifest` names is in the bucket.
fn assert_complete(server: &S3Server, prefix: &str, manifest: &Value, what: &str) {
    let objects: std::collections::BTreeSet<String> =
        server.list_raw(BUCKET, prefix).into_iter().collect();
    let tables = manifest["tables"].as_object().expect("tables");
    assert!(!tables.is_empty(), "{what}");
    for (name, table) in tables {
        for file in table["files"].as_array().expect("files") {
            let path = file["path"].as_str().expect("path");
            assert!(
                objects.contains(&format!("{prefix}/{path}")),
                "{what}: latest.json names {path} of {name}, which is not in the bucket"
            );
        }
    }
}

/// A Python with Polars 1.35.2 and boto3.
fn python_polars() -> String {
    crate::python_with("boto3", "1.40.61");
    crate::python_with("polars", "1.35.2")
}

/// Reads `latest.json` (boto3), then every table's files with Polars'
/// `scan_parquet` (its own S3 client), and compares them row for row with
/// `{expected}/{table}.json` (what `materia query` printed; date and time
/// columns as epoch microseconds). Prints `table rows` per table.
const PY_READER: &str = r#"
import datetime, json, math, sys
import boto3, polars as pl
endpoint, bucket, prefix, expected = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test",
                  aws_secret_access_key="test-secret", region_name="us-east-1")
latest = json.load(s3.get_object(Bucket=bucket, Key=f"{prefix}/latest.json")["Body"])
opts = {"aws_endpoint_url": endpoint, "aws_access_key_id": "test",
        "aws_secret_access_key": "test-secret", "aws_region": "us-east-1",
        "aws_allow_http": "true"}
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
def norm(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return (v - EPOCH) // datetime.timedelta(microseconds=1)
    if isinstance(v, datetime.date):
        return (v - datetime.date(1970, 1, 1)).days * 86_400_000_000
    return v
def key(row):
    return [("" if v is None else repr(v)) for v in row]
def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return a == b
for name, table in latest["tables"].items():
    urls = [f["url"] for f in table["files"]]
    assert all(u.startswith(f"s3://{bucket}/{prefix}/data/") for u in urls), urls
    df = pl.scan_parquet(urls, storage_options=opts).collect()
    cols = [c["name"] for c in table["columns"]]
    assert df.columns == cols, (name, df.columns, cols)
    got = sorted(([norm(v) for v in r] for r in df.iter_rows()), key=key)
    want = sorted(([r[c] for c in cols] for r in json.load(open(f"{expected}/{name}.json"))), key=key)
    assert len(got) == len(want) == table["rows"], (name, len(got), len(want), table["rows"])
    for g, w in zip(got, want):
        assert all(same(a, b) for a, b in zip(g, w)), (name, g, w)
    print(name, len(got))
"#;

#[test]
fn a_cycle_publishes_and_polars_reads_every_table_through_latest_json() {
    let python = python_polars();
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let env = env();
    land(&env, 1, 200_000);
    land(&env, 2, 200_000);
    // The supervisor runs publish as a step after transform.
    let mut run = env.materia();
    with_publish(&mut run, &server, "v1");
    let out = run
        .args(["run", "--steps", "transform,publish"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let manifest = latest(&server, "v1").expect("the cycle published");
    assert_complete(&server, "v1", &manifest, "after the cycle");
    let status = env.json(&["status", "--json"]);
    assert!(status.to_string().contains("publish"), "{status}");

    // What `materia query` says each table holds, temporal columns as epoch µs.
    let expected = env.dir.path().join("expected");
    std::fs::create_dir_all(&expected).expect("dir");
    let tables = manifest["tables"].as_object().expect("tables");
    for (name, table) in tables {
        let replace: Vec<String> = table["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .filter(|c| {
                let ty = c["type"].as_str().unwrap_or("");
                ty == "DATE" || ty.starts_with("TIMESTAMP")
            })
            .map(|c| {
                let n = c["name"].as_str().expect("name");
                format!("epoch_us(\"{n}\") AS \"{n}\"")
            })
            .collect();
        let select = if replace.is_empty() {
            "*".to_owned()
        } else {
            format!("* REPLACE ({})", replace.join(", "))
        };
        let out = env.run(&[
            "query",
            "--format",
            "json",
            &format!("SELECT {select} FROM {name}"),
        ]);
        assert!(out.status.success(), "{name}: {out:?}");
        std::fs::write(expected.join(format!("{name}.json")), &out.stdout).expect("write");
    }
    let read = Command::new(&python)
        .args(["-c", PY_READER, &server.endpoint, BUCKET, "v1"])
        .arg(&expected)
        .output()
        .expect("python runs");
    assert!(
        read.status.success(),
        "Polars: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    let printed = String::from_utf8_lossy(&read.stdout);
    assert_eq!(printed.lines().count(), tables.len(), "{printed}");
    assert!(
        printed
            .lines()
            .any(|l| l.starts_with("serving.psd_latest ") && !l.ends_with(" 0")),
        "{printed}"
    );

    // Nothing new: nothing written (the build is already the latest).
    let mut again = env.materia();
    with_publish(&mut again, &server, "v1");
    let out = again.args(["publish", "--json"]).output().expect("runs");
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (&report["unchanged"], &report["uploaded"]),
        (&Value::Bool(true), &Value::from(0))
    );
}

#[test]
fn publish_killed_12_times_never_leaves_latest_json_naming_a_missing_file() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let mut rng = crate::crash::seed("publish");
    let env = env();
    let tmp = env.dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).expect("tmp");
    let publish = |prefix: &str| {
        let mut cmd = env.materia();
        with_publish(&mut cmd, &server, prefix);
        cmd.env("TMPDIR", &tmp).arg("publish");
        cmd
    };
    land(&env, 1, 2_000_000);
    transform(&env);
    // Calibrate on a scratch prefix: a whole publish of this lakehouse.
    let started = Instant::now();
    assert!(publish("scratch").status().expect("runs").success());
    let whole = started.elapsed();
    let mut mid = 0;
    for i in 0..12u64 {
        // Something new to publish each time.
        land(&env, 2 + i, 300_000);
        transform(&env);
        mid += usize::from(crate::crash::kill_after(
            &mut publish("v1"),
            &mut rng,
            whole.mul_f64(1.5).max(Duration::from_millis(200)),
        ));
        if let Some(m) = latest(&server, "v1") {
            assert_complete(&server, "v1", &m, &format!("publish kill {i}"));
        }
    }
    println!("publish: 12 kills, {mid} mid-publish");
    assert!(mid > 0, "no kill landed mid-publish");
    assert!(publish("v1").status().expect("runs").success());
    let m = latest(&server, "v1").expect("published");
    assert_complete(&server, "v1", &m, "after the clean run");
    assert_eq!(
        m["releases"].as_array().map(Vec::len),
        Some(13),
        "the latest build holds every release"
    );
}

/// Regression: `publish` with a URL and no keys failed at the EC2
/// instance-metadata endpoint (`169.254.169.254 … 403`), after exporting.
#[test]
fn publish_without_keys_names_them_before_any_request() {
    let proxy = materia_testkit::proxy::FaultProxy::start("http://127.0.0.1:9");
    let e = env();
    land(&e, 1, 20_000);
    transform(&e);
    let mut cmd = e.materia();
    let out = crate::mirror::without_keys(&mut cmd, &proxy.endpoint)
        .env("MATERIA_PUBLISH_URL", format!("s3://{BUCKET}/v1"))
        .arg("publish")
        .output()
        .expect("runs");
    crate::mirror::assert_no_keys_named(&out, "publish");
    assert_eq!(proxy.requests(), Vec::<String>::new(), "no request made");
}
