//! `materia_core::serve`: the read API on loopback, against real builds.

use std::sync::mpsc;
use std::thread;

use materia_core::serve::{ServeOptions, Server};
use materia_core::transform::transform;
use serde_json::Value;

use crate::{Fixture, fixture};

mod limits;
#[cfg(feature = "http")]
mod page;
mod paging;

/// A server on a free loopback port, stopped when dropped.
struct Running {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
    /// Released after the server stopped.
    _hold: Hold,
}

/// Servers of these tests run side by side, except a test measuring the
/// server's CPU: it runs alone (its server's threads are the only ones
/// named `materia-serve` while it runs).
static SERVERS: std::sync::RwLock<()> = std::sync::RwLock::new(());

enum Hold {
    Shared(#[allow(dead_code)] std::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] std::sync::RwLockWriteGuard<'static, ()>),
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread");
        }
    }
}

fn serve(f: &Fixture) -> Running {
    serve_with(f, |_| ())
}

fn serve_with(f: &Fixture, set: impl FnOnce(&mut ServeOptions)) -> Running {
    let hold = Hold::Shared(
        SERVERS
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    start(f, set, hold)
}

/// [`serve_with`], the only server of these tests while it runs.
fn serve_alone(f: &Fixture, set: impl FnOnce(&mut ServeOptions)) -> Running {
    let hold = Hold::Alone(
        SERVERS
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    start(f, set, hold)
}

fn start(f: &Fixture, set: impl FnOnce(&mut ServeOptions), hold: Hold) -> Running {
    let mut options = ServeOptions::new(&f.options.duckdb_path);
    options.bind = "127.0.0.1:0".parse().expect("addr");
    set(&mut options);
    let server = Server::bind(&options).expect("bind");
    let base = format!("http://{}", server.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (started, ready) = mpsc::channel();
    let thread = thread::spawn(move || {
        started.send(()).expect("started");
        server
            .run(async {
                let _ = rx.await;
            })
            .expect("serves");
    });
    ready.recv().expect("thread up");
    Running {
        base,
        stop: Some(tx),
        thread: Some(thread),
        _hold: hold,
    }
}

fn land(f: &Fixture, k: u64) {
    let body = materia_testkit::psd_csv(&materia_testkit::PsdSpec {
        min_bytes: 60_000,
        seed: k,
    });
    f.put_release("psd", (2026, k as i64), &format!("s{k}"), &body);
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::new()
}

fn get(url: &str) -> reqwest::blocking::Response {
    client().get(url).send().expect(url)
}

/// The smallest `market_year` of a JSON answer.
fn rows_json_min_year(url: &str) -> i64 {
    let body: Value = serde_json::from_slice(&get(url).bytes().expect("body")).expect("json");
    body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["market_year"].as_i64().expect("year"))
        .min()
        .expect("a row")
}

#[test]
fn every_endpoint_answers_with_caching_and_named_errors() {
    let f = fixture();
    land(&f, 1);
    transform(&f.store, &f.options).expect("build");
    let s = serve(&f);

    let health: Value = get(&format!("{}/v1/health", s.base))
        .bytes()
        .map(|b| serde_json::from_slice::<Value>(&b).expect("json"))
        .expect("body");
    assert!(
        health["build"].as_str().expect("build").starts_with("1-"),
        "{health}"
    );

    let tables: Value = get(&format!("{}/v1/tables", s.base))
        .bytes()
        .map(|b| serde_json::from_slice::<Value>(&b).expect("json"))
        .expect("body");
    let list = tables["tables"].as_array().expect("tables");
    let balance = list
        .iter()
        .find(|t| t["name"] == "serving.coffee_balance")
        .expect("coffee_balance listed");
    assert!(balance["rows"].as_i64().expect("rows") > 0);
    assert!(
        balance["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .any(|c| c["name"] == "stocks_to_use" && c["type"] == "DOUBLE")
    );
    assert!(
        list.iter()
            .any(|t| t["name"] == "serving.psd_history" && t["kind"] == "view")
    );

    // Filters: equality, a range, columns, limit; JSON and CSV.
    let first: Value = get(&format!("{}/v1/tables/serving.psd_latest?limit=1", s.base))
        .bytes()
        .map(|b| serde_json::from_slice::<Value>(&b).expect("json"))
        .expect("body");
    let (country, year) = (
        first["rows"][0]["country_code"]
            .as_str()
            .expect("country")
            .to_owned(),
        first["rows"][0]["market_year"].as_i64().expect("year"),
    );
    let url = format!(
        "{}/v1/tables/serving.psd_latest?country_code={country}&market_year={year}..{}&columns=market_year,attribute_id,value&limit=5",
        s.base,
        year + 1
    );
    let r = get(&url);
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().expect("etag").to_owned();
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .expect("cc")
            .contains("max-age")
    );
    assert!(r.headers().contains_key("last-modified"));
    assert_eq!(r.headers()["x-cache"], "miss");
    let first_body = r.bytes().expect("body");
    // The same request again is answered from memory, byte for byte; with
    // `Cache-Control: no-cache` it is computed anew, to the same bytes.
    let kept = get(&url);
    assert_eq!(
        (
            kept.headers()["x-cache"].to_str().ok(),
            kept.headers()["etag"].to_str().ok()
        ),
        (Some("hit"), Some(etag.as_str()))
    );
    assert_eq!(kept.bytes().expect("body"), first_body);
    let fresh = client()
        .get(&url)
        .header("cache-control", "no-cache")
        .send()
        .expect("no-cache");
    assert_eq!(fresh.headers()["x-cache"], "miss");
    assert_eq!(fresh.bytes().expect("body"), first_body);
    let body: Value = serde_json::from_slice(&first_body).expect("json");
    let rows = body["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 5);
    for row in rows {
        let y = row["market_year"].as_i64().expect("year");
        assert!((year..=year + 1).contains(&y), "{row}");
        assert_eq!(
            row.as_object().expect("object").len(),
            3,
            "only the asked columns"
        );
    }
    let csv = client()
        .get(&url)
        .header("accept", "text/csv")
        .send()
        .expect("csv")
        .text()
        .expect("text");
    assert_eq!(csv.lines().next(), Some("market_year,attribute_id,value"));
    assert_eq!(csv.lines().count(), 6);
    let suffix = get(&url.replace("psd_latest?", "psd_latest.csv?"))
        .text()
        .expect("text");
    assert_eq!(suffix, csv);

    // Arrow IPC and Parquet: the same rows, read back by real readers.
    let arrow = client()
        .get(&url)
        .header("accept", "application/vnd.apache.arrow.stream")
        .send()
        .expect("arrow");
    assert_eq!(
        arrow.headers()["content-type"],
        "application/vnd.apache.arrow.stream"
    );
    let reader = arrow_ipc::reader::StreamReader::try_new(
        std::io::Cursor::new(arrow.bytes().expect("bytes").to_vec()),
        None,
    )
    .expect("an Arrow stream");
    let names: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["market_year", "attribute_id", "value"]);
    let n: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(n, 5);
    let parquet = get(&url.replace("psd_latest?", "psd_latest.parquet?"))
        .bytes()
        .expect("parquet");
    let file = f.dir.path().join("answer.parquet");
    std::fs::write(&file, &parquet).expect("write");
    let duck = materia_core::transform::duckdb::Connection::open_in_memory().expect("duckdb");
    let (rows, min_year): (i64, i64) = duck
        .query_row(
            "SELECT count(*), min(market_year) FROM read_parquet(?)",
            [file.to_string_lossy()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("DuckDB reads it");
    assert_eq!((rows, min_year), (5, rows_json_min_year(&url)));

    // The client holding the ETag: 304, no body.
    let again = client()
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .expect("304");
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().expect("etag"), etag);
    assert!(again.bytes().expect("body").is_empty());

    // Errors: JSON naming the parameter; unknown table 404.
    for (query, param) in [
        ("market_year=abc", "market_year"),
        ("limit=100000", "limit"),
        ("columns=nope", "columns"),
        ("drop_table=1", "drop_table"),
    ] {
        let r = get(&format!("{}/v1/tables/serving.psd_latest?{query}", s.base));
        assert_eq!(r.status(), 400, "{query}");
        let e: Value = r
            .bytes()
            .map(|b| serde_json::from_slice::<Value>(&b).expect("json"))
            .expect("body");
        assert_eq!(e["parameter"], param, "{e}");
    }
    assert_eq!(
        get(&format!("{}/v1/tables/serving.nope", s.base)).status(),
        404
    );
    assert_eq!(get(&format!("{}/v2/anything", s.base)).status(), 404);
    // A value is data, never SQL.
    let r = get(&format!(
        "{}/v1/tables/serving.psd_latest?country_code=BR'%20OR%20'1'='1",
        s.base
    ));
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes()
            .map(|b| serde_json::from_slice::<Value>(&b).expect("json"))
            .expect("body")["rows"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );

    // A new build: the same request is answered from it, with a new ETag.
    land(&f, 2);
    transform(&f.store, &f.options).expect("second build");
    let r = client()
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .expect("new");
    assert_eq!(r.status(), 200);
    assert_ne!(r.headers()["etag"].to_str().expect("etag"), etag);
    assert_eq!(
        r.headers()["x-cache"],
        "miss",
        "nothing kept from the old build"
    );
    let releases: Value = get(&format!("{}/v1/releases", s.base))
        .bytes()
        .map(|b| serde_json::from_slice::<Value>(&b).expect("json"))
        .expect("body");
    assert_eq!(releases["rows"].as_array().map(Vec::len), Some(2));
}

#[test]
fn a_publish_under_eight_clients_fails_no_request_and_mixes_no_builds() {
    let f = fixture();
    land(&f, 1);
    transform(&f.store, &f.options).expect("build");
    let s = serve(&f);
    let url = format!("{}/v1/releases", s.base);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (url, stop) = (url.clone(), stop.clone());
            thread::spawn(move || {
                let c = client();
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = c.get(&url).send().expect("request");
                    assert_eq!(r.status(), 200, "a request failed during a publish");
                    let etag = r.headers()["etag"].to_str().expect("etag").to_owned();
                    let body: Value = r
                        .bytes()
                        .map(|b| serde_json::from_slice::<Value>(&b).expect("json"))
                        .expect("body");
                    seen.push((etag, body["rows"].as_array().map_or(0, Vec::len)));
                }
                seen
            })
        })
        .collect();
    for k in 2..=3 {
        land(&f, k);
        transform(&f.store, &f.options).expect("publish under load");
    }
    // One more round after the last publish, then stop.
    thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut by_build = std::collections::BTreeMap::new();
    let mut total = 0;
    for c in clients {
        for (etag, n) in c.join().expect("client") {
            total += 1;
            let build = etag.split('.').next().expect("build").to_owned();
            // Each answer wholly from one build: its ETag's build says how
            // many releases it holds.
            assert_eq!(*by_build.entry(build).or_insert(n), n);
        }
    }
    assert!(total > 8, "{total}");
    let counts: std::collections::BTreeSet<usize> = by_build.values().copied().collect();
    assert!(counts.contains(&3), "{by_build:?}");
    assert!(counts.iter().all(|n| (1..=3).contains(n)), "{by_build:?}");
}

fn post_sql(base: &str, sql: &str) -> (u16, Value) {
    let r = client()
        .post(format!("{base}/v1/sql"))
        .body(sql.to_owned())
        .send()
        .expect("post");
    let status = r.status().as_u16();
    let body = serde_json::from_slice(&r.bytes().expect("body")).unwrap_or(Value::Null);
    (status, body)
}

#[test]
fn sql_is_off_by_default_and_when_on_cannot_escape() {
    let f = fixture();
    land(&f, 1);
    transform(&f.store, &f.options).expect("build");
    let off = serve(&f);
    let (status, body) = post_sql(&off.base, "SELECT 1");
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("--allow-sql")
    );
    drop(off);

    let on = serve_with(&f, |o| o.allow_sql = true);
    let (status, body) = post_sql(&on.base, "SELECT count(*) AS n FROM raw.releases");
    assert_eq!(
        (status, &body["rows"][0]["n"]),
        (200, &Value::from(1)),
        "{body}"
    );
    let written = f.dir.path().join("escaped.csv");
    let escapes = [
        format!("COPY (SELECT 1) TO '{}'", written.display()),
        "SELECT * FROM read_csv('/etc/passwd')".to_owned(),
        "SELECT * FROM read_text('/proc/self/environ')".to_owned(),
        format!(
            "ATTACH '{}' AS other",
            f.dir.path().join("other.duckdb").display()
        ),
        "INSTALL httpfs".to_owned(),
        "SET enable_external_access = true".to_owned(),
        "CREATE TABLE serving.x AS SELECT 1".to_owned(),
    ];
    for sql in &escapes {
        let (status, body) = post_sql(&on.base, sql);
        assert_eq!(status, 400, "{sql}: {body}");
        assert_eq!(body["parameter"], "sql", "{body}");
    }
    assert!(!written.exists(), "COPY wrote a file");
    assert!(
        !f.dir.path().join("other.duckdb").exists(),
        "ATTACH created a file"
    );
    let (status, body) = post_sql(&on.base, "SELECT * FROM range(20000)");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("add a LIMIT")
    );
}

#[test]
fn a_query_past_the_time_limit_is_interrupted_and_frees_its_connection() {
    let f = fixture();
    land(&f, 1);
    transform(&f.store, &f.options).expect("build");
    // One connection: a query left running would hold it for hours, and every
    // later request would time out too.
    let s = serve_with(&f, |o| {
        o.allow_sql = true;
        o.connections = 1;
        o.timeout = std::time::Duration::from_secs(1);
    });
    let (status, body) = post_sql(
        &s.base,
        "SELECT sum(hash(i)) AS h FROM range(100000000000000) AS t(i)",
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("longer than 1 s"),
        "{body}"
    );
    // The next request gets the connection (a try or two while DuckDB notices
    // the interrupt).
    let ok = (0..3).any(|_| {
        let (status, _) = post_sql(&s.base, "SELECT count(*) AS n FROM raw.releases");
        status == 200 || {
            thread::sleep(std::time::Duration::from_millis(500));
            false
        }
    });
    assert!(ok, "the timed-out query still holds the only connection");
}
