//! The request's limits: one meaning per request (repeated parameters),
//! `Vary: Accept`, the time limit covering a queued request, health without
//! a connection, client SQL read-only under memory and byte caps.

use std::thread;
use std::time::{Duration, Instant};

use materia_core::transform::transform;
use serde_json::Value;

use super::{client, get, land, post_sql, serve, serve_alone, serve_with};
use crate::fixture;

fn json_of(r: reqwest::blocking::Response) -> Value {
    serde_json::from_slice(&r.bytes().expect("body")).expect("json")
}

#[test]
fn a_repeated_parameter_is_refused_by_name_and_negotiated_answers_vary_on_accept() {
    let f = fixture();
    land(&f, 1);
    transform(&f.store, &f.options).expect("build");
    let s = serve(&f);
    let table = format!("{}/v1/tables/serving.coffee_balance", s.base);
    // Two orders of the same repeated parameter once shared an ETag and the
    // kept answer: now neither is answered.
    for query in [
        "columns=market_year&columns=production",
        "columns=production&columns=market_year",
        "limit=1&country_code=WORLD&limit=2",
    ] {
        let r = get(&format!("{table}?{query}"));
        assert_eq!(r.status(), 400, "{query}");
        let e = json_of(r);
        let repeated = if query.starts_with("limit") {
            "limit"
        } else {
            "columns"
        };
        assert_eq!(e["parameter"], repeated, "{e}");
        assert!(
            e["error"]
                .as_str()
                .expect("error")
                .contains("more than once"),
            "{e}"
        );
    }

    // The format follows Accept: the answer says so, and so does its 304.
    let url = format!("{table}?country_code=WORLD&columns=market_year,production");
    let json = get(&url);
    assert_eq!(json.headers()["vary"], "Accept");
    let etag = json.headers()["etag"].clone();
    let csv = client()
        .get(&url)
        .header("accept", "text/csv")
        .send()
        .expect("csv");
    assert_eq!(csv.headers()["vary"], "Accept");
    assert_ne!(csv.headers()["etag"], etag, "each format its own ETag");
    let kept = client()
        .get(&url)
        .header("accept", "text/csv")
        .send()
        .expect("kept csv");
    assert_eq!(
        (
            kept.headers()["x-cache"].to_str().ok(),
            kept.headers()["vary"].to_str().ok()
        ),
        (Some("hit"), Some("Accept"))
    );
    let not_modified = client()
        .get(&url)
        .header("if-none-match", etag)
        .send()
        .expect("304");
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["vary"], "Accept");
    for negotiated in [
        format!("{}/v1/releases", s.base),
        format!("{table}?country_code=WORLD"),
    ] {
        assert_eq!(get(&negotiated).headers()["vary"], "Accept", "{negotiated}");
    }
    // A suffix fixes the format whatever Accept says: no Vary, one answer
    // for every client (the form for shared caches).
    let suffixed = client()
        .get(url.replace("coffee_balance?", "coffee_balance.csv?"))
        .header("accept", "application/json")
        .send()
        .expect("suffix");
    assert!(!suffixed.headers().contains_key("vary"));
    assert!(
        suffixed
            .text()
            .expect("csv")
            .starts_with("market_year,production\n")
    );
}

/// CPU time (user + system) the server's threads have used: the threads of
/// this process named `materia-serve` (its runtime's and DuckDB's), from
/// `/proc/self/task/*/stat` (USER_HZ ticks, 100 a second on Linux). Other
/// tests' threads are not counted, and no other server runs meanwhile
/// ([`serve_alone`]).
fn cpu_time() -> Duration {
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let Ok(stat) = std::fs::read_to_string(task.expect("task").path().join("stat")) else {
            continue; // the thread ended
        };
        // The name is in parentheses (it may hold spaces), the fields after.
        let (open, close) = (stat.find('(').expect("("), stat.rfind(')').expect(")"));
        if &stat[open + 1..close] != materia_core::serve::THREAD_NAME {
            continue;
        }
        let fields: Vec<u64> = stat[close + 2..]
            .split(' ')
            .skip(11)
            .take(2)
            .map(|v| v.parse().expect("ticks"))
            .collect();
        ticks += fields[0] + fields[1];
    }
    Duration::from_millis(ticks * 10)
}

/// When, after `since`, this process first used less than a tenth of a core
/// over a 200 ms window (waiting at most `within`).
fn idle_at(since: Instant, within: Duration) -> Option<Duration> {
    while since.elapsed() < within {
        let (t0, c0) = (Instant::now(), cpu_time());
        thread::sleep(Duration::from_millis(200));
        let used = cpu_time().saturating_sub(c0);
        if used * 10 < t0.elapsed() {
            return Some(since.elapsed());
        }
    }
    None
}

#[test]
fn a_queued_request_keeps_its_time_limit_and_health_needs_no_connection() {
    let f = fixture();
    land(&f, 1);
    transform(&f.store, &f.options).expect("build");
    let limit = Duration::from_secs(1);
    let s = serve_alone(&f, |o| {
        o.allow_sql = true;
        o.connections = 2;
        o.timeout = limit;
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let health = {
        let (url, stop) = (format!("{}/v1/health", s.base), stop.clone());
        thread::spawn(move || {
            let c = client();
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let status = c.get(&url).send().expect("health").status().as_u16();
                answers.push((status, t.elapsed()));
                thread::sleep(Duration::from_millis(50));
            }
            answers
        })
    };
    let (start, cpu_before) = (Instant::now(), cpu_time());
    let heavy: Vec<_> = (0..8)
        .map(|_| {
            let base = s.base.clone();
            thread::spawn(move || {
                let t = Instant::now();
                let (status, body) = post_sql(
                    &base,
                    "SELECT sum(hash(i)) AS h FROM range(100000000000000) AS t(i)",
                );
                (status, body, t.elapsed())
            })
        })
        .collect();
    let answered: Vec<(u16, Value, Duration)> = heavy
        .into_iter()
        .map(|h| h.join().expect("client"))
        .collect();
    let busy = cpu_time().saturating_sub(cpu_before);
    let idle = idle_at(start, 4 * limit);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let health = health.join().expect("health");

    // Each 503 names why: still waiting for one of the 2 connections, or
    // running (a waiter may get a connection freed just before its own
    // deadline: its query then starts and is stopped at once).
    let waited = answered
        .iter()
        .filter(|(_, body, _)| {
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("no connection was free"))
        })
        .count();
    for (status, body, took) in &answered {
        assert_eq!(*status, 503, "{body}");
        let error = body["error"].as_str().expect("error");
        assert!(
            error.contains("no connection was free") || error.contains("took longer than 1 s"),
            "{error}"
        );
        assert!(
            *took < limit + Duration::from_millis(600),
            "answered after {took:?} ({body})"
        );
    }
    // The measure sees the server's threads (busy while the queries ran).
    assert!(busy >= limit / 5, "the server's threads used only {busy:?}");
    // Only the two running queries ever ran, and they were stopped: no query
    // runs on after its client got its 503.
    let idle = idle.expect("the server's CPU never went idle within 4 s");
    assert!(
        idle <= 2 * limit,
        "the CPU went idle {idle:?} after the requests"
    );
    assert!(health.len() >= 5, "{health:?}");
    assert!(
        health.iter().all(|(status, _)| *status == 200),
        "health failed while the connections were busy: {health:?}"
    );
    let slowest = health.iter().map(|(_, t)| *t).max().expect("one");
    let last = answered.iter().map(|(_, _, t)| *t).max().expect("one");
    eprintln!(
        "8 heavy queries, 2 connections, 1 s limit: last client answered after {last:?}, \
         server CPU {busy:?} while they ran, idle {idle:?} after they started; \
         health {} times, slowest {slowest:?}; {waited} of 8 never got a connection",
        health.len()
    );
    assert!(
        slowest < Duration::from_millis(500),
        "health took {slowest:?}"
    );
    // The connections serve again, no interrupt left behind on them.
    for _ in 0..4 {
        let (status, body) = post_sql(&s.base, "SELECT count(*) AS n FROM raw.releases");
        assert_eq!(
            (status, &body["rows"][0]["n"]),
            (200, &Value::from(1)),
            "{body}"
        );
    }
}

#[test]
fn client_sql_is_one_read_only_query_within_the_memory_and_byte_caps() {
    let f = fixture();
    land(&f, 1);
    transform(&f.store, &f.options).expect("build");
    let s = serve_with(&f, |o| {
        o.allow_sql = true;
        o.connections = 2;
        o.timeout = Duration::from_secs(30);
        o.memory_limit_bytes = 64 << 20;
        o.max_answer_bytes = 100 << 10;
    });
    let refused = |sql: &str, words: &str| {
        let (status, body) = post_sql(&s.base, sql);
        assert_eq!(
            (status, &body["parameter"]),
            (400, &Value::from("sql")),
            "{sql}: {body}"
        );
        let error = body["error"].as_str().expect("error");
        assert!(error.contains(words), "{sql}: {error}");
    };
    let not_read_only = "only one read-only query";
    for sql in [
        "CREATE TEMP TABLE kept AS SELECT * FROM range(5)",
        "SELECT 1; CREATE TEMP TABLE kept AS SELECT 1",
        "CREATE TEMP MACRO m() AS 1",
        "INSERT INTO raw.releases SELECT * FROM raw.releases",
        "COPY (SELECT 1) TO 'x.csv'",
        "PRAGMA threads=1",
        "SET threads = 1",
        "SET VARIABLE v = 1",
        "ATTACH ':memory:' AS other",
        "CALL pragma_version()",
        "SELECT 1; SELECT 2",
    ] {
        refused(sql, not_read_only);
    }
    // Nothing was created on any pooled connection.
    for _ in 0..4 {
        refused("SELECT * FROM kept", "kept");
    }
    // Every read-only form runs.
    for sql in [
        "FROM raw.releases SELECT count(*) AS n",
        "WITH a AS (SELECT 1 AS n) SELECT n FROM a",
        "VALUES (1)",
        "SELECT 'it''s' AS s",
        "DESCRIBE serving.coffee_balance",
    ] {
        let (status, body) = post_sql(&s.base, sql);
        assert_eq!(status, 200, "{sql}: {body}");
    }
    // A 10 GB answer: refused by its rows before it is built.
    refused("SELECT * FROM range(1300000000)", "add a LIMIT");
    // A query needing more than the readers' memory.
    let (status, body) = post_sql(
        &s.base,
        // ~500 MB of hash table: answered without the limit.
        "SELECT count(DISTINCT i) AS n FROM range(30000000) AS t(i)",
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("--memory-limit"),
        "{body}"
    );
    // Over the byte cap (100 KiB here): a query's answer and a table's.
    refused(
        "SELECT repeat('x', 10000) AS s FROM range(5000)",
        "--max-answer-mib",
    );
    let r = get(&format!(
        "{}/v1/tables/serving.psd_latest?limit=10000",
        s.base
    ));
    assert_eq!(r.status(), 400);
    let e = json_of(r);
    assert_eq!(e["parameter"], "limit", "{e}");
    assert!(
        e["error"]
            .as_str()
            .expect("error")
            .contains("--max-answer-mib"),
        "{e}"
    );
    // The server still answers.
    let (status, _) = post_sql(&s.base, "SELECT 42 AS n");
    assert_eq!(status, 200);
}
