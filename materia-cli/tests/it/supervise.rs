//! `materia run`, `materia supervise` and `materia status` as an operator (or
//! systemd) runs them: real child steps, a stalled HTTP source, signals.

use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use materia_testkit::http;

use crate::{Env, env};

impl Env {
    fn spawn(&self, args: &[&str]) -> Child {
        self.materia()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("materia starts")
    }

    fn status(&self) -> Value {
        self.json(&["status", "--json"])
    }
}

/// A server whose `/slow.csv` sends a header line and then nothing for a minute.
fn stalled_source() -> http::Server {
    http::Server::start(|req, _| match req.path.as_str() {
        "/slow.csv" => http::Reply::Stall {
            prefix: b"Commodity_Code,".to_vec(),
            stall: Duration::from_secs(60),
        },
        _ => http::Reply::status(404),
    })
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Live (non-zombie) processes whose parent is `ppid`.
fn children_of(ppid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1) == Some(&ppid.to_string().as_str()) && fields[0] != "Z" {
            out.push(pid);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X")
    })
}

#[test]
fn a_step_past_its_timeout_fails_the_run_with_124_and_transform_is_skipped() {
    let e = env();
    let server = stalled_source();
    let started = Instant::now();
    let out = e.run(&[
        "run",
        "--url",
        &server.url("/slow.csv"),
        "--timeout",
        "extract=1s",
        "--grace",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    let status = e.status();
    assert_eq!(status["steps"]["extract"]["outcome"], "timed_out");
    assert_eq!(status["steps"]["extract"]["exit_code"], 124);
    assert_eq!(status["steps"]["transform"]["outcome"], "skipped");
    assert_eq!(status["lakehouse"], Value::Null, "nothing published");
    let human = String::from_utf8_lossy(&e.run(&["status"]).stdout).into_owned();
    assert!(
        human.contains("timed_out") && human.contains("timeout"),
        "{human}"
    );
}

#[test]
fn a_second_run_refuses_clearly_while_the_first_holds_the_lock() {
    let e = env();
    let server = stalled_source();
    let mut first = e.spawn(&[
        "run",
        "--url",
        &server.url("/slow.csv"),
        "--timeout",
        "extract=3s",
        "--grace",
        "1s",
    ]);
    wait_for("the first run's extract", || !server.requests().is_empty());
    let second = e.run(&["run", "--url", &server.url("/slow.csv")]);
    assert_eq!(second.status.code(), Some(2), "{second:?}");
    let err = String::from_utf8_lossy(&second.stderr).into_owned();
    assert!(
        err.contains("already running") && err.contains("run.lock") && err.contains("--wait"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1, "the second run fetched nothing");
    let first = first.wait().expect("first ends");
    assert_eq!(first.code(), Some(124));
}

#[test]
fn sigterm_stops_the_supervisor_cleanly_mid_step() {
    let e = env();
    let server = stalled_source();
    let mut supervisor = e.spawn(&[
        "supervise",
        "--schedule",
        "every 1h",
        "--url",
        &server.url("/slow.csv"),
        "--grace",
        "2s",
    ]);
    let pid = supervisor.id();
    // A fresh supervisor with no state runs a cycle at once.
    wait_for("the extract step", || !server.requests().is_empty());
    let steps = children_of(pid);
    assert_eq!(steps.len(), 1, "one step runs: {steps:?}");
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("SIGTERM");
    let started = Instant::now();
    let status = supervisor.wait().expect("exits");
    assert!(status.success(), "clean exit: {status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!alive(steps[0]), "no orphan step");
    let state = e.status();
    assert_eq!(state["steps"]["extract"]["outcome"], "interrupted");
    assert_eq!(state["steps"]["transform"]["outcome"], "skipped");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut supervisor.stderr.take().expect("stderr"), &mut stderr)
        .expect("read");
    assert!(stderr.contains("supervisor stopped"), "{stderr}");
}

#[test]
fn a_hostile_url_reaches_extract_as_one_argument() {
    let e = env();
    let canary = e.dir.path().join("canary");
    fs::write(&canary, b"here").expect("canary");
    let hostile = format!("file:///nonexistent.csv; rm -rf {}", canary.display());
    let out = e.run(&["run", "--url", &hostile]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(canary.exists(), "no shell ran the argument");
    let status = e.status();
    let line = status["steps"]["extract"]["error"]
        .as_str()
        .expect("error line");
    assert!(
        line.contains("nonexistent.csv; rm -rf"),
        "the whole argument is the URL: {line}"
    );
    assert_eq!(status["steps"]["transform"]["outcome"], "skipped");
}

#[test]
fn run_then_status_reports_the_published_lakehouse_and_newest_release() {
    let e = env();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../materia-core/tests/data/psd_coffee_sample.zip")
        .canonicalize()
        .expect("sample");
    let textfile = e.dir.path().join("materia.prom");
    let out = e.run(&[
        "run",
        "--url",
        &format!("file://{}", sample.display()),
        "--textfile",
        textfile.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{out:?}");
    let status = e.status();
    assert_eq!(status["last_cycle"]["steps"][0]["outcome"], "ok");
    assert_eq!(status["last_cycle"]["steps"][1]["outcome"], "ok");
    assert_eq!(status["landing"]["files"], 1);
    assert!(status["newest"]["psd"]["key"].is_string(), "{status}");
    assert!(status["lakehouse"]["age_seconds"].as_u64().expect("age") < 600);
    let prom = fs::read_to_string(&textfile).expect("textfile written");
    assert!(
        prom.contains("materia_step_success{step=\"transform\"} 1"),
        "{prom}"
    );
}

#[test]
fn run_pings_the_healthcheck_url_at_start_and_with_the_exit_code() {
    let server = http::Server::start(|_, _| http::Reply::status(200));
    let e = env();
    let out = e
        .materia()
        .args(["run", "--url", "file:///nonexistent/psd.zip"])
        .env("MATERIA_HEALTHCHECK_URL", server.url("/ping/xyz"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/ping/xyz/start", "/ping/xyz/2"]);
}

#[test]
fn notify_test_sends_one_alert_and_fails_clearly_when_it_cannot() {
    let server = http::Server::start(|_, _| http::Reply::status(200));
    let e = env();
    let out = e
        .materia()
        .args(["notify", "--test", "--alert-url"])
        .arg(server.url("/hook?token=s3cr3t"))
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    let body: Value = serde_json::from_slice(&seen[0].body).expect("JSON");
    assert_eq!(body["kind"], "test");
    // The units' OnFailure= backstop: materia-alert@%n.service.
    let out = e
        .materia()
        .args([
            "notify",
            "--failed-unit",
            "materia-backup.service",
            "--alert-url",
        ])
        .arg(server.url("/hook"))
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let body: Value = serde_json::from_slice(&server.requests()[1].body).expect("JSON");
    assert_eq!(
        (&body["kind"], &body["step"]),
        (&"failure".into(), &"materia-backup.service".into())
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let out = e
        .materia()
        .args(["notify", "--test", "--alert-url"])
        .arg(format!("http://{closed}/hook?token=s3cr3t"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("alert") && !err.contains("s3cr3t"), "{err}");
}

/// Regression (issue 24): Slack webhooks, healthchecks.io pings and ntfy
/// topics carry their secret in the path, which the log showed.
#[test]
fn alert_and_ping_urls_are_logged_as_scheme_and_host_only() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let e = env();
    let out = e
        .materia()
        .args(["notify", "--test", "--alert-url"])
        .arg(format!(
            "http://{closed}/services/T0001/B0001/SUPERSECRETTOKEN"
        ))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("http://{closed}/")), "{err}");
    for secret in ["SUPERSECRETTOKEN", "B0001", "services"] {
        assert!(!err.contains(secret), "{secret} shown: {err}");
    }

    let out = e
        .materia()
        .args(["run", "--url", "file:///nonexistent/psd.zip"])
        .env(
            "MATERIA_HEALTHCHECK_URL",
            format!("http://{closed}/ping/0b1c2d3e-secret-uuid"),
        )
        .env(
            "MATERIA_ALERT_URL",
            format!("http://{closed}/services/T0001/B0001/SUPERSECRETTOKEN"),
        )
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dead-man's ping failed"), "{err}");
    assert!(err.contains("alert could not be sent"), "{err}");
    for secret in ["0b1c2d3e-secret-uuid", "SUPERSECRETTOKEN"] {
        assert!(!err.contains(secret), "{secret} shown: {err}");
    }
}

/// A shipped sample's `file://` URL.
fn sample_url(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../materia-core/tests/data")
        .join(name)
        .canonicalize()
        .expect("sample");
    format!("file://{}", path.display())
}

/// The one alert `receiver` got, as JSON.
fn the_alert(receiver: &http::Server) -> Value {
    let seen = receiver.requests();
    assert_eq!(seen.len(), 1, "one alert");
    serde_json::from_slice(&seen[0].body).expect("JSON alert")
}

/// Issue 27: a publish step that failed for lack of a bucket URL was told by
/// clap's last line, "For more information, try '--help'.".
#[cfg(feature = "s3")]
#[test]
fn a_failed_step_is_told_by_its_error_line_not_the_help_hint() {
    let receiver = http::Server::start(|_, _| http::Reply::status(200));
    let e = env();
    let hook = receiver.url("/hook");
    let out = e.run(&["run", "--steps", "publish", "--alert-url", &hook]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let status = e.status();
    let line = status["steps"]["publish"]["error"]
        .as_str()
        .expect("error line");
    assert!(
        line.contains("error:") && !line.contains("For more information"),
        "{line}"
    );
    assert!(
        line.starts_with("materia: error: no bucket URL") && line.contains("MATERIA_PUBLISH_URL"),
        "the line names what is missing: {line}"
    );
    assert_eq!(status["last_cycle"]["steps"][0]["error"], line);
    let alert = the_alert(&receiver);
    assert_eq!(
        (&alert["step"], &alert["error"]),
        (&"publish".into(), &line.into())
    );
    let human = String::from_utf8_lossy(&e.run(&["status"]).stdout).into_owned();
    assert!(human.contains(line), "{human}");
}

/// Issue 27: psd's extract failed while cot's landed; transform was skipped
/// for every dataset and status quoted an unrelated INFO line.
#[test]
fn one_dataset_failing_to_extract_still_lets_transform_load_the_others() {
    let source =
        http::Server::start(|_, _| http::Reply::ok("<html>down for maintenance</html>", &[]));
    let receiver = http::Server::start(|_, _| http::Reply::status(200));
    let e = env();
    let out = e
        .materia()
        .args(["run", "--steps", "extract,transform", "--alert-url"])
        .arg(receiver.url("/hook"))
        .env("MATERIA_DATASETS", "psd,cot")
        .env("MATERIA_PSD_URL", source.url("/psd_coffee_csv.zip"))
        .env("MATERIA_COT_URL", sample_url("cot_disagg_sample.zip"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "the cycle still fails: {out:?}");
    let coffee = e.json(&[
        "query",
        "SELECT count(*) AS weeks FROM serving.cot_coffee",
        "--format",
        "json",
    ]);
    assert_eq!(coffee[0]["weeks"], 12, "cot's release was loaded");

    let status = e.status();
    let steps = &status["last_cycle"]["steps"];
    assert_eq!(steps[0]["outcome"], "partial", "{status}");
    assert_eq!(steps[0]["failed_datasets"], serde_json::json!(["psd"]));
    let line = steps[0]["error"].as_str().expect("error line");
    assert!(
        line.starts_with("dataset psd: ") && line.contains("HTML") && !line.contains("cot"),
        "{line}"
    );
    assert_eq!(steps[1]["outcome"], "ok", "{status}");
    let alert = the_alert(&receiver);
    assert_eq!(
        (&alert["step"], &alert["error"]),
        (&"extract".into(), &line.into())
    );
    let human = String::from_utf8_lossy(&e.run(&["status"]).stdout).into_owned();
    assert!(human.contains("partial") && human.contains(line), "{human}");
}

/// The text of `materia status`, as (heading, the first word of each of its
/// indented lines).
fn status_blocks(text: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        match (line.strip_prefix("  "), blocks.last_mut()) {
            (Some(item), Some((_, items))) => {
                items.push(item.split_whitespace().next().unwrap_or("").to_owned())
            }
            _ => {
                let heading = line.split(':').next().unwrap_or(line);
                blocks.push((heading.to_owned(), Vec::new()));
            }
        }
    }
    blocks
}

/// Issue 27: after a new cycle, `status` listed the steps of older cycles
/// under "last cycle".
#[test]
fn status_lists_only_the_last_cycle_s_steps_under_last_cycle() {
    let e = env();
    let out = e.run(&["run", "--url", "file:///nonexistent/psd.zip"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = e.run(&["run", "--steps", "check"]);
    assert_eq!(out.status.code(), Some(1), "nothing landed: {out:?}");

    let status = e.status();
    let last: Vec<&str> = status["last_cycle"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["step"].as_str().expect("name"))
        .collect();
    assert_eq!(last, ["check"]);
    let human = String::from_utf8_lossy(&e.run(&["status"]).stdout).into_owned();
    let blocks = status_blocks(&human);
    let block = |heading: &str| {
        blocks
            .iter()
            .find(|(h, _)| h == heading)
            .map(|(_, items)| items.clone())
            .unwrap_or_else(|| panic!("no {heading:?} in {human}"))
    };
    assert_eq!(block("last cycle"), ["check"], "{human}");
    assert_eq!(
        block("earlier cycles (steps the last cycle did not run)"),
        ["extract", "transform"],
        "{human}"
    );
}
