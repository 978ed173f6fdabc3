//! The supervisor with real child processes: timeouts that kill whole process
//! groups, skipped dependents, the run lock, stopping, and no shell.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use materia_core::Error;
use materia_core::landing::MetaDir;
use materia_core::supervise::{Outcome, State, Step, Supervisor, SupervisorOptions};

fn sh(name: &str, script: &str, timeout: Duration) -> Step {
    Step::new(name, ["-c", script], timeout)
}

fn options(dir: &Path, steps: Vec<Step>) -> SupervisorOptions {
    SupervisorOptions {
        steps,
        grace: Duration::from_millis(700),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        ..SupervisorOptions::new("/bin/sh", dir.join("landing"))
    }
}

/// Whether `pid` is still a live (non-zombie) process.
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

fn read_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_step_past_its_timeout_is_killed_with_its_children_and_the_next_cycle_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    // The step ignores SIGTERM (so SIGKILL after the grace period is needed) and
    // leaves a grandchild that would outlive it.
    let script = format!(
        "trap '' TERM; sleep 60 & echo $! > {p}.bg; echo $$ > {p}.sh; wait",
        p = pids.display()
    );
    let timeout = Duration::from_millis(800);
    let mut opts = options(
        dir.path(),
        vec![
            sh("extract", &script, timeout),
            sh("transform", "exit 0", timeout).needs("extract"),
        ],
    );
    let supervisor = Supervisor::new(opts.clone());
    let started = Instant::now();
    let cycle = supervisor.run_cycle().expect("cycle");
    let took = started.elapsed();
    let (bg, shell) = (
        read_pid(&pids.with_extension("bg")),
        read_pid(&pids.with_extension("sh")),
    );
    assert!(
        took >= timeout + opts.grace,
        "SIGTERM was ignored, so only SIGKILL ended it: {took:?}"
    );
    assert!(
        took < timeout + opts.grace + Duration::from_secs(3),
        "{took:?}"
    );
    assert!(!alive(shell), "the step is gone");
    assert!(!alive(bg), "its child is gone too");
    assert_eq!(cycle.steps[0].outcome, Outcome::TimedOut);
    assert_eq!(cycle.steps[0].exit_code, Some(124));
    assert_eq!(cycle.steps[1].outcome, Outcome::Skipped);
    assert_eq!(cycle.exit_code(), 124);

    // The next cycle runs normally.
    opts.steps = vec![sh("extract", "exit 0", timeout)];
    let next = Supervisor::new(opts.clone())
        .run_cycle()
        .expect("next cycle");
    assert_eq!(next.steps[0].outcome, Outcome::Ok);
    let state = State::load(&opts.landing_dir).expect("state");
    assert_eq!(state.steps["extract"].outcome, Outcome::Ok);
    assert_eq!(
        state.steps["transform"].outcome,
        Outcome::Skipped,
        "the last run of each step is kept"
    );
}

#[test]
fn a_failing_step_skips_what_needs_it_and_the_state_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("transform-ran");
    let opts = options(
        dir.path(),
        vec![
            sh(
                "extract",
                "echo 'noise' >&2; echo 'extract https://x: 503 Service Unavailable' >&2; exit 3",
                Duration::from_secs(30),
            ),
            sh(
                "transform",
                &format!("touch {}", marker.display()),
                Duration::from_secs(30),
            )
            .needs("extract"),
            sh("mirror", "exit 0", Duration::from_secs(30)),
        ],
    );
    let cycle = Supervisor::new(opts.clone()).run_cycle().expect("cycle");
    assert_eq!(cycle.exit_code(), 3);
    assert!(!marker.exists(), "transform did not run");
    let outcomes: Vec<Outcome> = cycle.steps.iter().map(|s| s.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Failed, Outcome::Skipped, Outcome::Ok],
        "a step that does not need extract still runs"
    );
    let state = State::load(&opts.landing_dir).expect("state");
    assert_eq!(
        state.steps["extract"].error.as_deref(),
        Some("extract https://x: 503 Service Unavailable"),
        "the last stderr line"
    );
    assert!(
        state.steps["transform"]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("extract")),
        "{:?}",
        state.steps["transform"]
    );
    assert_eq!(state.last_cycle.as_ref(), Some(&cycle));
}

#[test]
fn a_second_cycle_refuses_or_waits_while_one_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = dir.path().join("started");
    let slow = format!("touch {}; sleep 1.5", started.display());
    let first = Supervisor::new(options(
        dir.path(),
        vec![sh("extract", &slow, Duration::from_secs(30))],
    ));
    std::thread::scope(|scope| {
        let running = scope.spawn(|| first.run_cycle());
        read_pid_file_exists(&started);
        let refused = Supervisor::new(options(
            dir.path(),
            vec![sh("extract", "exit 0", Duration::from_secs(30))],
        ))
        .run_cycle()
        .expect_err("busy");
        assert!(matches!(refused, Error::Busy { .. }), "{refused:?}");
        let msg = refused.to_string();
        assert!(
            msg.contains("already running") && msg.contains("run.lock"),
            "{msg}"
        );

        let mut waiting = options(
            dir.path(),
            vec![sh("extract", "exit 0", Duration::from_secs(30))],
        );
        waiting.wait_for_lock = true;
        let t = Instant::now();
        let second = Supervisor::new(waiting).run_cycle().expect("waited");
        assert_eq!(second.steps[0].outcome, Outcome::Ok);
        let first_done = running.join().expect("thread").expect("first cycle");
        assert_eq!(first_done.steps[0].outcome, Outcome::Ok);
        assert!(t.elapsed() >= Duration::from_millis(500), "it waited");
    });
}

fn read_pid_file_exists(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stopping_terminates_the_running_step_and_skips_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let opts = options(
        dir.path(),
        vec![
            sh(
                "extract",
                &format!("echo $$ > {}; sleep 60", pid_file.display()),
                Duration::from_secs(60),
            ),
            sh("transform", "exit 0", Duration::from_secs(60)),
        ],
    );
    let supervisor = Supervisor::new(opts.clone());
    let stop = supervisor.stop_flag();
    let pid_path = pid_file.clone();
    let stopper = std::thread::spawn(move || {
        let pid = read_pid(&pid_path);
        stop.store(true, Ordering::SeqCst);
        pid
    });
    let started = Instant::now();
    let cycle = supervisor.run_cycle().expect("cycle");
    let pid = stopper.join().expect("stopper");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!alive(pid));
    assert_eq!(cycle.steps[0].outcome, Outcome::Interrupted);
    assert_eq!(cycle.steps[1].outcome, Outcome::Skipped);
    let state = State::load(&opts.landing_dir).expect("state written");
    assert_eq!(state.steps["extract"].outcome, Outcome::Interrupted);
}

#[test]
fn arguments_are_passed_literally_and_the_environment_is_only_what_is_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let canary = dir.path().join("canary");
    fs::write(&canary, b"still here").expect("canary");
    // Through a shell this would delete the canary; run directly, it is one
    // path (whose directories exist), and touch creates that file.
    let hostile = format!("{}/x; rm -rf {}", dir.path().display(), canary.display());
    fs::create_dir_all(Path::new(&hostile).parent().expect("parent")).expect("dirs");
    let out = dir.path().join("env");
    let mut opts = SupervisorOptions {
        steps: vec![Step::new(
            "touch",
            [hostile.clone()],
            Duration::from_secs(10),
        )],
        env: vec![("MATERIA_ONLY".into(), "1".into())],
        ..SupervisorOptions::new("/usr/bin/touch", dir.path().join("landing"))
    };
    let cycle = Supervisor::new(opts.clone()).run_cycle().expect("cycle");
    assert_eq!(cycle.exit_code(), 0);
    assert!(canary.exists(), "nothing was run through a shell");
    assert!(
        Path::new(&hostile).is_file(),
        "the argument was one literal file name"
    );

    opts.exe = PathBuf::from("/bin/sh");
    opts.steps = vec![sh(
        "env",
        &format!("/usr/bin/env > {}", out.display()),
        Duration::from_secs(10),
    )];
    Supervisor::new(opts).run_cycle().expect("cycle");
    let seen = fs::read_to_string(&out).expect("env output");
    let names: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .filter(|k| *k != "PWD" && *k != "SHLVL" && *k != "_")
        .collect();
    assert_eq!(names, ["MATERIA_ONLY"], "{seen}");
}

#[test]
fn a_damaged_state_file_does_not_stop_the_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(
        dir.path(),
        vec![sh("extract", "exit 0", Duration::from_secs(10))],
    );
    let path = State::path(&opts.landing_dir);
    fs::create_dir_all(path.parent().expect("dir")).expect("dirs");
    fs::write(&path, b"{\"last_cycle\": {\"started_at\"").expect("torn");
    let err = State::load(&opts.landing_dir).expect_err("damaged");
    assert!(err.to_string().contains("state.json"), "{err}");
    let cycle = Supervisor::new(opts.clone())
        .run_cycle()
        .expect("runs anyway");
    assert_eq!(cycle.steps[0].outcome, Outcome::Ok);
    assert_eq!(
        State::load(&opts.landing_dir).expect("replaced").steps["extract"].outcome,
        Outcome::Ok
    );
}

#[test]
fn a_last_cycle_in_the_future_does_not_stop_scheduling() {
    // Regression: after the clock jumped back, `last_cycle.started_at` lay in the
    // future and the next cycle was scheduled from it — years away.
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(
        dir.path(),
        vec![sh("extract", "exit 0", Duration::from_secs(10))],
    );
    let path = State::path(&opts.landing_dir);
    fs::create_dir_all(path.parent().expect("dir")).expect("dirs");
    let future =
        r#"{"last_cycle":{"started_at":"2100-01-01T00:00:00Z","millis":0,"steps":[]},"steps":{}}"#;
    fs::write(&path, future).expect("state");
    let supervisor = Supervisor::new(opts.clone());
    let stop = supervisor.stop_flag();
    let schedule = "every 1s".parse().expect("schedule");
    let runner = std::thread::spawn(move || supervisor.run_forever(&schedule));
    let deadline = Instant::now() + Duration::from_secs(20);
    let ran = loop {
        let state = State::load(&opts.landing_dir).expect("state");
        if state.steps.contains_key("extract") {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    stop.store(true, Ordering::SeqCst);
    runner.join().expect("thread").expect("stopped cleanly");
    assert!(ran, "no cycle ran within 20 s of a last cycle dated 2100");
}

#[test]
fn stderr_with_invalid_utf8_and_an_endless_line_is_relayed_to_the_end() {
    // Regression: the relay stopped at the first invalid UTF-8 byte (losing the
    // real last line) and buffered a line of any length.
    let dir = tempfile::tempdir().expect("tempdir");
    let script = "printf 'bad \\377\\376 bytes\\n' >&2; \
                  head -c 3000000 /dev/zero | tr '\\0' x >&2; printf '\\n' >&2; \
                  echo 'the real last words' >&2; exit 3";
    let opts = options(
        dir.path(),
        vec![sh("extract", script, Duration::from_secs(30))],
    );
    let cycle = Supervisor::new(opts).run_cycle().expect("cycle");
    let run = &cycle.steps[0];
    assert_eq!(run.exit_code, Some(3));
    assert_eq!(run.error.as_deref(), Some("the real last words"), "{run:?}");
}

#[test]
fn only_steps_marked_with_secrets_see_the_bucket_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("env");
    let dump = |name: &str| format!("env | sort > {}/{name}.txt", out.display());
    fs::create_dir_all(&out).expect("dir");
    let mut opts = options(
        dir.path(),
        vec![
            sh("extract", &dump("extract"), Duration::from_secs(10)),
            sh("mirror", &dump("mirror"), Duration::from_secs(10)).with_secrets(),
        ],
    );
    opts.env
        .push(("AWS_SECRET_ACCESS_KEY".into(), "s3cr3t".into()));
    opts.env
        .push(("MATERIA_MIRROR_URL".into(), "s3://b/p".into()));
    Supervisor::new(opts).run_cycle().expect("cycle");
    let extract = fs::read_to_string(out.join("extract.txt")).expect("extract env");
    let mirror = fs::read_to_string(out.join("mirror.txt")).expect("mirror env");
    assert!(!extract.contains("s3cr3t"), "{extract}");
    assert!(extract.contains("MATERIA_MIRROR_URL"), "{extract}");
    assert!(mirror.contains("AWS_SECRET_ACCESS_KEY=s3cr3t"), "{mirror}");
}

#[test]
fn the_dead_mans_ping_says_start_then_success_or_the_exit_code() {
    use materia_testkit::http::{Reply, Server};
    let server = Server::start(|_, _| Reply::status(200));
    let dir = tempfile::tempdir().expect("tempdir");
    let cycle = |script: &str| {
        let mut opts = options(
            dir.path(),
            vec![sh("extract", script, Duration::from_secs(10))],
        );
        opts.healthcheck_url = Some(server.url("/hc/abc-uuid/"));
        Supervisor::new(opts).run_cycle().expect("cycle")
    };
    cycle("exit 0");
    cycle("exit 3");
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/hc/abc-uuid/start",
            "/hc/abc-uuid",
            "/hc/abc-uuid/start",
            "/hc/abc-uuid/3"
        ]
    );
    // Nobody listening: the cycle neither fails nor waits on it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let mut opts = options(
        dir.path(),
        vec![sh("extract", "exit 0", Duration::from_secs(10))],
    );
    opts.healthcheck_url = Some(format!("http://{closed}/hc"));
    let started = Instant::now();
    let done = Supervisor::new(opts)
        .run_cycle()
        .expect("the cycle runs anyway");
    assert_eq!(done.exit_code(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn one_alert_per_failure_streak_and_one_on_recovery() {
    use materia_testkit::http::{Reply, Server};
    let server = Server::start(|_, _| Reply::status(200));
    let dir = tempfile::tempdir().expect("tempdir");
    let flag = dir.path().join("failing");
    fs::write(&flag, "").expect("flag");
    let script = format!(
        "if [ -e {} ]; then echo 'upstream answered 503' >&2; exit 7; fi",
        flag.display()
    );
    let cycle = |url: String| {
        let mut opts = options(
            dir.path(),
            vec![sh("extract", &script, Duration::from_secs(10))],
        );
        opts.alert_url = Some(url);
        Supervisor::new(opts).run_cycle().expect("cycle")
    };
    for _ in 0..3 {
        assert_eq!(cycle(server.url("/hook")).exit_code(), 7);
    }
    fs::remove_file(&flag).expect("recover");
    for _ in 0..2 {
        assert_eq!(cycle(server.url("/hook")).exit_code(), 0);
    }
    let sent: Vec<serde_json::Value> = server
        .requests()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("a JSON alert"))
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0]["kind"], "failure");
    assert_eq!(sent[0]["step"], "extract");
    assert_eq!(sent[0]["exit_code"], 7);
    assert_eq!(sent[0]["error"], "upstream answered 503");
    assert_eq!(sent[1]["kind"], "recovery");
    assert_eq!(sent[1]["streak"], 3);
    let state = State::load(dir.path().join("landing")).expect("state");
    assert_eq!(state.alert.streak, 0);

    // A receiver that is down neither fails nor holds up the cycle; the
    // failure is alerted once it answers again.
    fs::write(&flag, "").expect("flag");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let started = Instant::now();
    assert_eq!(cycle(format!("http://{closed}/hook")).exit_code(), 7);
    assert!(started.elapsed() < Duration::from_secs(30));
    cycle(server.url("/hook"));
    let kinds: Vec<serde_json::Value> = server
        .requests()
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.body).expect("JSON")["kind"].clone()
        })
        .collect();
    assert_eq!(kinds, ["failure", "recovery", "failure"]);
}

#[test]
fn ntfy_and_slack_receivers_get_their_own_formats() {
    use materia_core::supervise::{Alert, AlertFormat, AlertKind, Alerter};
    use materia_testkit::http::{Reply, Server};
    let server = Server::start(|_, _| Reply::status(200));
    let alert = Alert {
        kind: AlertKind::Failure,
        step: Some("transform".into()),
        exit_code: Some(2),
        error: Some("audit failed".into()),
        streak: 1,
        host: "box".into(),
        at: jiff::Timestamp::UNIX_EPOCH,
    };
    let ntfy = Alerter::new(&server.url("/ntfy"), Some(AlertFormat::Ntfy)).expect("alerter");
    ntfy.send(&alert).expect("sent");
    let slack = Alerter::new(&server.url("/slack"), Some(AlertFormat::Slack)).expect("alerter");
    slack.send(&alert).expect("sent");
    let seen = server.requests();
    let text = String::from_utf8_lossy(&seen[0].body).into_owned();
    assert!(
        text.contains("transform") && text.contains("audit failed"),
        "{text}"
    );
    assert_eq!(seen[0].header("priority"), Some("high"));
    assert!(seen[0].header("title").is_some());
    let slack_body: serde_json::Value = serde_json::from_slice(&seen[1].body).expect("JSON");
    assert!(
        slack_body["text"]
            .as_str()
            .expect("text")
            .contains("audit failed")
    );
}

/// An extract-like step: writes `report` where the supervisor asks, says its
/// error, logs after it, and exits 2.
fn reporting_extract(report: &str) -> Step {
    let script = format!(
        "printf '{report}' > \"$MATERIA_STEP_REPORT\"; \
         echo 'materia: error: dataset psd: HTTP 500' >&2; \
         echo ' INFO landed key=cot/2026/12/a.csv.gzip' >&2; exit 2"
    );
    sh("extract", &script, Duration::from_secs(30)).with_report()
}

/// Issue 27: psd's extract failed while cot's landed, and transform was
/// skipped for every dataset.
#[test]
fn a_step_that_failed_for_some_datasets_is_partial_and_what_needs_it_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("transform-ran");
    let transform = sh(
        "transform",
        &format!("touch {}", marker.display()),
        Duration::from_secs(30),
    )
    .needs("extract");
    let partial = "{\"dataset\":\"psd\",\"status\":\"failed\",\"error\":\"HTTP 500\"}\\n\
                   {\"dataset\":\"cot\",\"status\":\"landed\",\"key\":\"cot/2026/12/a.csv.gzip\"}\\n";
    let opts = options(
        dir.path(),
        vec![reporting_extract(partial), transform.clone()],
    );
    let cycle = Supervisor::new(opts.clone()).run_cycle().expect("cycle");
    let extract = &cycle.steps[0];
    assert_eq!(extract.outcome, Outcome::Partial, "{extract:?}");
    assert_eq!(extract.failed_datasets, ["psd"]);
    assert_eq!(extract.error.as_deref(), Some("dataset psd: HTTP 500"));
    assert_eq!(cycle.steps[1].outcome, Outcome::Ok);
    assert!(marker.exists(), "transform ran");
    assert_eq!(cycle.exit_code(), 2, "the cycle still fails");
    assert!(
        !MetaDir::of(&opts.landing_dir).step_report().exists(),
        "the report is not left for the next step"
    );

    // Every dataset failed: nothing to load, transform is skipped.
    fs::remove_file(&marker).expect("marker");
    let all_failed = "{\"dataset\":\"psd\",\"status\":\"failed\",\"error\":\"HTTP 500\"}\\n";
    let opts = options(dir.path(), vec![reporting_extract(all_failed), transform]);
    let cycle = Supervisor::new(opts).run_cycle().expect("cycle");
    assert_eq!(cycle.steps[0].outcome, Outcome::Failed);
    assert_eq!(cycle.steps[0].failed_datasets, ["psd"]);
    assert_eq!(cycle.steps[1].outcome, Outcome::Skipped);
    assert!(!marker.exists(), "transform did not run");
}

/// Issue 27: the state quoted the last stderr line — a log line, or clap's
/// "For more information, try '--help'." — instead of the error.
#[test]
fn a_failed_step_s_error_is_its_error_line_not_its_last_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(
        dir.path(),
        vec![
            sh(
                "check",
                "echo ' INFO checking' >&2; echo 'materia: error: the landing zone is gone' >&2; \
                 echo ' INFO done' >&2; exit 2",
                Duration::from_secs(30),
            ),
            sh(
                "publish",
                "printf 'error: the following required arguments were not provided:\\n  \
                 --to <URL>\\n\\nUsage: materia publish --to <URL>\\n\\n\
                 For more information, try '\\''--help'\\''.\\n' >&2; exit 2",
                Duration::from_secs(30),
            ),
        ],
    );
    let cycle = Supervisor::new(opts).run_cycle().expect("cycle");
    let errors: Vec<Option<&str>> = cycle.steps.iter().map(|s| s.error.as_deref()).collect();
    assert_eq!(
        errors,
        [
            Some("materia: error: the landing zone is gone"),
            Some("error: the following required arguments were not provided: --to <URL>"),
        ]
    );
}
