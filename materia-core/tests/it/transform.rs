//! Transform on the real DuckDB: revisions, incrementality, atomic publishing.
#![cfg(feature = "duckdb")]

use std::fs;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use materia_core::Error;
use materia_core::dataset::PSD_COLUMNS;
use materia_core::transform::{Lakehouse, StepMode, transform};

use crate::{Fixture, fixture};

const COUNTRIES: [(&str, &str); 4] = [
    ("BR", "Brazil"),
    ("VM", "Vietnam"),
    ("CO", "Colombia"),
    ("NA", "Netherlands Antilles"),
];
const YEARS: [i32; 3] = [2023, 2024, 2025];

/// A balanced release; release `k` revises Brazil's 2025 production by +100 × k
/// (and its supply and ending stocks with it).
fn release_csv(k: u32) -> Vec<u8> {
    let mut out = format!("\u{feff}{}\r\n", PSD_COLUMNS.join(",")).into_bytes();
    for (ci, (code, name)) in COUNTRIES.iter().enumerate() {
        for year in YEARS {
            let base = 1000.0 * (ci as f64 + 1.0) + f64::from(year - 2023) * 10.0;
            let revision = if *code == "BR" && year == 2025 {
                100.0 * f64::from(k)
            } else {
                0.0
            };
            let (bs, prod, imp, exp, dom) = (base, 5.0 * base + revision, 50.0, 3.0 * base, base);
            let supply = bs + prod + imp;
            let end = supply - exp - dom;
            let rows = [
                ("020", "Beginning Stocks", bs),
                ("028", "Production", prod),
                ("029", "Arabica Production", prod * 0.5),
                ("053", "Robusta Production", prod * 0.5),
                ("057", "Imports", imp),
                ("086", "Total Supply", supply),
                ("088", "Exports", exp),
                ("125", "Domestic Consumption", dom),
                ("141", "\"Rst,Ground Dom. Consum\"", dom * 0.9),
                ("176", "Ending Stocks", end),
                ("178", "Total Distribution", exp + dom + end),
            ];
            for (id, attr, value) in rows {
                let line = format!(
                    "0711100,\"Coffee, Green\",{code},{name},{year},{year},00,{id},{attr},02,(1000 60 KG BAGS),{value:.4}\r\n"
                );
                out.extend_from_slice(line.as_bytes());
            }
        }
    }
    out
}

const ROWS_PER_RELEASE: u64 = (COUNTRIES.len() * YEARS.len() * 11) as u64;

impl Fixture {
    fn land(&self, k: u32, body: &[u8]) -> materia_core::landing::LandingKey {
        self.put_release("psd", (2026, i64::from(k)), &format!("r{k}"), body)
    }

    fn count(&self, sql: &str) -> i64 {
        self.lake()
            .connection()
            .query_row(sql, [], |r| r.get(0))
            .expect(sql)
    }
}

#[test]
fn three_releases_with_revisions() {
    let f = fixture();
    for k in 1..=3 {
        f.land(k, &release_csv(k));
    }
    let report = transform(&f.store, &f.options).expect("transform");
    assert_eq!(report.releases_loaded, 3);
    assert_eq!(report.rows_loaded, 3 * ROWS_PER_RELEASE);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(
        report.published.as_deref(),
        Some(f.options.duckdb_path.as_path())
    );

    // Rows per release, in the ledger and in the data.
    let per_release = f.count(&format!(
        "SELECT count(*) FROM raw.releases WHERE rows = {ROWS_PER_RELEASE}"
    ));
    assert_eq!(per_release, 3);
    // psd_latest is exactly the newest release.
    assert_eq!(
        f.count("SELECT count(*) FROM serving.psd_latest") as u64,
        ROWS_PER_RELEASE
    );
    assert_eq!(
        f.count(
            "SELECT count(DISTINCT release_etag) FROM serving.psd_latest WHERE release_etag = 'r3'"
        ),
        1
    );
    // Codes keep their zeros; NA is a country; the quoted comma survives.
    assert_eq!(f.count("SELECT count(*) FROM serving.psd_latest WHERE commodity_code = '0711100' AND attribute_id = '020'"), 12);
    assert_eq!(
        f.count("SELECT count(*) FROM serving.psd_latest WHERE country_code = 'NA'"),
        33
    );
    assert_eq!(
        f.count("SELECT count(*) FROM serving.psd_latest WHERE attribute_description = 'Rst,Ground Dom. Consum'"),
        12
    );

    let lake = f.lake();
    let revisions = lake.revisions("BR", 2025, "028").expect("revisions");
    let values: Vec<Option<f64>> = revisions.iter().map(|r| r.value).collect();
    let changes: Vec<Option<f64>> = revisions.iter().map(|r| r.change).collect();
    assert_eq!(values, [Some(5200.0), Some(5300.0), Some(5400.0)]);
    assert_eq!(changes, [None, Some(100.0), Some(100.0)]);
    // A value no release changed has one entry: when it appeared.
    let unrevised = lake.revisions("VM", 2025, "028").expect("revisions");
    assert_eq!(
        unrevised
            .iter()
            .map(|r| (r.release_ord, r.change))
            .collect::<Vec<_>>(),
        [(1, None)]
    );
    // What each release said.
    for k in 1..=3 {
        let said = lake.value_as_of(2026, k, "BR", 2025, "028").expect("as of");
        assert_eq!(said, Some(Some(5100.0 + 100.0 * f64::from(k))));
    }
    assert_eq!(
        lake.value_as_of(2026, 9, "BR", 2025, "028").expect("as of"),
        None
    );

    let br = lake.balance("BR", 2025).expect("query").expect("a row");
    assert_eq!(br.production, Some(5400.0));
    assert_eq!(br.total_supply, Some(1020.0 + 5400.0 + 50.0));
    assert_eq!(
        br.ending_stocks,
        Some(1020.0 + 5400.0 + 50.0 - 3060.0 - 1020.0)
    );
    assert_eq!(
        br.stocks_to_use,
        Some(br.ending_stocks.unwrap_or(0.0) / 1020.0)
    );
    let world = lake
        .balance("WORLD", 2025)
        .expect("query")
        .expect("a World row");
    let sum: f64 = ["BR", "VM", "CO", "NA"]
        .iter()
        .map(|c| {
            lake.balance(c, 2025)
                .expect("q")
                .expect("row")
                .production
                .unwrap_or(0.0)
        })
        .sum();
    assert_eq!(world.production, Some(sum));
    assert_eq!(
        world.stocks_to_use,
        Some(world.ending_stocks.unwrap_or(0.0) / world.domestic_consumption.unwrap_or(1.0)),
        "the World ratio is recomputed from the sums"
    );
}

#[test]
fn incremental_builds_load_only_what_is_new() {
    let f = fixture();
    for k in 1..=3 {
        f.land(k, &release_csv(k));
    }
    transform(&f.store, &f.options).expect("first");
    let before = fs::read(&f.options.duckdb_path).expect("published");
    let again = transform(&f.store, &f.options).expect("second");
    assert_eq!((again.releases_loaded, again.rows_loaded), (0, 0));
    assert_eq!(again.published, None);
    assert!(
        fs::read(&f.options.duckdb_path).expect("published") == before,
        "untouched"
    );

    f.land(4, &release_csv(4));
    let fourth = transform(&f.store, &f.options).expect("fourth");
    assert_eq!(
        (fourth.releases_loaded, fourth.rows_loaded),
        (1, ROWS_PER_RELEASE)
    );
    assert_eq!(fourth.releases_total, 4);
    // Brazil's 2025 production moved, and with it arabica, robusta, supply,
    // ending stocks and distribution: 6 changes stored, not 132 rows.
    assert_eq!(fourth.changes, 6);
    assert_eq!(
        f.count("SELECT count(*) FROM serving.psd_history") as u64,
        ROWS_PER_RELEASE + 3 * 6
    );
    let br = f.lake().balance("BR", 2025).expect("q").expect("row");
    assert_eq!(br.production, Some(5500.0));
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("readable")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_bad_landing_file_is_quarantined_and_never_wedges_later_builds() {
    let f = fixture();
    f.land(1, &release_csv(1));
    transform(&f.store, &f.options).expect("first");

    // A wrong header: quarantined, named, the good release beside it published.
    let wrong = f.land(2, b"a,b,c\r\n1,2,3\r\n");
    f.land(3, &release_csv(3));
    let report = transform(&f.store, &f.options).expect("publishes the rest");
    assert_eq!(report.releases_loaded, 1);
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].landing_key, wrong.to_string());
    let reason = &report.rejected[0].reason;
    assert!(
        reason.contains("columns differ from datasets.psd.table")
            && reason.contains("missing \"Commodity_Code\"")
            && reason.contains("unexpected \"a\", \"b\", \"c\""),
        "{reason}"
    );
    assert_eq!(f.lake().rejected().expect("listed").len(), 1);
    // Skipped from now on: nothing new, nothing published, no error.
    let again = transform(&f.store, &f.options).expect("no wedge");
    assert_eq!(
        (again.releases_loaded, again.published.is_none()),
        (0, true)
    );

    // A corrupt gzip (a byte flipped after landing).
    let f = fixture();
    f.land(1, &release_csv(1));
    transform(&f.store, &f.options).expect("first");
    let key = f.land(2, &release_csv(2));
    let path = f.store.path_of(&key);
    let mut bytes = fs::read(&path).expect("landed");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(&path, bytes).expect("corrupt it");
    let report = transform(&f.store, &f.options).expect("quarantines");
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].landing_key, key.to_string());
    assert_eq!(report.releases_total, 1);
    let dir = f.options.duckdb_path.parent().expect("dir");
    assert_eq!(
        files_in(dir),
        [
            "lakehouse.duckdb",
            "lakehouse.duckdb.a",
            "lakehouse.duckdb.b",
            "lakehouse.duckdb.history",
            "lakehouse.duckdb.lock",
            "landing"
        ]
    );
}

/// Run as a child process by the next test: holds the lakehouse open read-only,
/// reports what it sees, and again after the parent says go.
#[test]
fn reader_child() {
    let Ok(path) = std::env::var("MATERIA_READER_PATH") else {
        return; // Only meaningful as the child of the test below.
    };
    let lake = Lakehouse::open_read_only(&path).expect("open read-only");
    let count = || -> i64 {
        lake.connection()
            .query_row("SELECT count(*) FROM raw.releases", [], |r| r.get(0))
            .expect("query")
    };
    // Straight to fd 1: print! would be captured by the test harness.
    let mut out = std::io::stdout();
    writeln!(out, "READER before {}", count()).expect("write");
    out.flush().expect("flush");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("go");
    writeln!(out, "READER after {}", count()).expect("write");
    out.flush().expect("flush");
}

#[test]
fn a_reader_process_keeps_its_snapshot_while_transform_publishes() {
    let f = fixture();
    f.land(1, &release_csv(1));
    transform(&f.store, &f.options).expect("first");

    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "transform::reader_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MATERIA_READER_PATH", &f.options.duckdb_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn reader");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let read_report = |out: &mut std::io::BufReader<_>| -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                out.read_line(&mut line).expect("read") > 0,
                "reader ended early"
            );
            // The harness may print "test reader_child ... " on the same line.
            if let Some(at) = line.find("READER") {
                return line[at..].trim().to_owned();
            }
        }
    };
    assert_eq!(read_report(&mut stdout), "READER before 1");

    // While the reader holds the file open read-only, transform publishes,
    // twice: the second time the slot due for an update in place is the
    // reader's (DuckDB's lock, seen from this process): a fresh file is built.
    f.land(2, &release_csv(2));
    let report = transform(&f.store, &f.options).expect("transform beside a reader");
    assert_eq!(report.releases_loaded, 1);
    f.land(3, &release_csv(3));
    let report = transform(&f.store, &f.options).expect("again");
    assert_eq!(
        publish_mode(&report),
        StepMode::Rebuild,
        "the reader's slot is held"
    );

    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("go");
    assert_eq!(
        read_report(&mut stdout),
        "READER after 1",
        "the reader keeps its snapshot"
    );
    assert!(child.wait().expect("reader exits").success());
    assert_eq!(
        f.count("SELECT count(*) FROM raw.releases"),
        3,
        "a new open sees the new build"
    );
}

#[test]
fn an_empty_landing_zone_publishes_an_empty_lakehouse() {
    let f = fixture();
    let report = transform(&f.store, &f.options).expect("transform");
    assert_eq!(report.releases_loaded, 0);
    assert_eq!(f.count("SELECT count(*) FROM serving.coffee_balance"), 0);
    let _: PathBuf = report.published.expect("published");
}

/// `body` with its last row repeated: a key twice.
fn last_row_twice(mut body: Vec<u8>) -> Vec<u8> {
    let last_line = body[..body.len() - 2]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let dup = body[last_line..].to_vec();
    body.extend_from_slice(&dup);
    body
}

#[test]
fn a_release_with_a_key_twice_is_quarantined_and_the_rest_publishes() {
    let f = fixture();
    f.land(1, &release_csv(1));
    transform(&f.store, &f.options).expect("first");
    let twice = f.land(2, &last_row_twice(release_csv(2)));
    f.land(3, &release_csv(3));
    let report = transform(&f.store, &f.options).expect("the rest publishes");
    assert_eq!(report.releases_loaded, 1);
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].landing_key, twice.to_string());
    assert!(
        report.rejected[0]
            .reason
            .contains("1 key(s) appear more than once"),
        "{report:?}"
    );
    assert_eq!(f.count("SELECT count(*) FROM raw.releases"), 2);
    let lake = f.lake();
    assert_eq!(lake.rejected().expect("listed").len(), 1);
    let br = lake.balance("BR", 2025).expect("q").expect("row");
    assert_eq!(br.production, Some(5400.0), "release 3 is the latest");
}

/// `release_csv(k)` with Brazil's 2025 production dropped (`Drop`) or empty
/// (`Null`): a series that pauses, and a NULL value.
enum Edit {
    Drop,
    Null,
}

fn edited_release(k: u32, edit: Edit) -> Vec<u8> {
    let target = ",BR,Brazil,2025,2025,00,028,";
    let text = String::from_utf8(release_csv(k)).expect("utf-8");
    let mut out = String::new();
    for line in text.split_inclusive("\r\n") {
        match (&edit, line.contains(target)) {
            (_, false) => out.push_str(line),
            (Edit::Drop, true) => {}
            (Edit::Null, true) => {
                let (head, _) = line.rsplit_once(',').expect("value column");
                out.push_str(head);
                out.push_str(",\r\n");
            }
        }
    }
    out.into_bytes()
}

/// Every row of the published history, revisions and latest values, rendered
/// and sorted.
fn revision_rows(path: &Path) -> Vec<String> {
    let lake = Lakehouse::open_read_only(path).expect("published");
    let conn = lake.connection();
    let mut rows = Vec::new();
    for table in [
        "serving.psd_history",
        "serving.psd_revisions",
        "serving.psd_latest",
    ] {
        let sql = format!("SELECT '{table}' || (t::VARCHAR) FROM {table} AS t");
        let mut stmt = conn.prepare(&sql).expect("prepare");
        let got = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .expect("query")
            .collect::<Result<Vec<_>, _>>()
            .expect("rows");
        rows.extend(got);
    }
    rows.sort();
    rows
}

fn mode_of(report: &materia_core::transform::TransformReport, model: &str) -> StepMode {
    report
        .steps
        .iter()
        .find(|s| s.model == model)
        .unwrap_or_else(|| panic!("no step {model} in {:?}", report.steps))
        .mode
}

#[test]
fn revisions_appended_release_by_release_equal_a_full_rebuild() {
    let f = fixture();
    let bodies = [
        release_csv(1),
        release_csv(2),
        edited_release(3, Edit::Drop),
        edited_release(4, Edit::Null),
        release_csv(5),
        release_csv(6),
    ];
    // Daily: 1+2 together (first build rebuilds), then one at a time, then 5+6
    // together (two new releases in one append).
    f.land(1, &bodies[0]);
    f.land(2, &bodies[1]);
    let first = transform(&f.store, &f.options).expect("first");
    assert_eq!(mode_of(&first, "raw.psd_changes"), StepMode::Rebuild);
    for k in [3u32, 4] {
        f.land(k, &bodies[k as usize - 1]);
        let report = transform(&f.store, &f.options).expect("append");
        assert_eq!(mode_of(&report, "raw.psd_changes"), StepMode::Append);
    }
    f.land(5, &bodies[4]);
    f.land(6, &bodies[5]);
    let both = transform(&f.store, &f.options).expect("append two");
    assert_eq!(mode_of(&both, "raw.psd_changes"), StepMode::Append);
    assert_eq!(mode_of(&both, "serving.psd_latest"), StepMode::Table);

    // The same landing zone built in one go.
    let mut full = f.options.clone();
    full.duckdb_path = f.options.duckdb_path.with_file_name("full.duckdb");
    let once = transform(&f.store, &full).expect("full");
    assert_eq!(mode_of(&once, "raw.psd_changes"), StepMode::Rebuild);
    let appended = revision_rows(&f.options.duckdb_path);
    assert_eq!(appended, revision_rows(&full.duckdb_path));

    // The paused series: absent from release 3 (a deletion), NULL in 4, back in
    // 5; each change is against the value before.
    let lake = f.lake();
    let history = lake.revisions("BR", 2025, "028").expect("revisions");
    let seen: Vec<(i64, Option<f64>, Option<f64>, bool)> = history
        .iter()
        .map(|r| (r.release_ord, r.value, r.change, r.deleted))
        .collect();
    assert_eq!(
        seen,
        [
            (1, Some(5200.0), None, false),
            (2, Some(5300.0), Some(100.0), false),
            (3, None, None, true),
            (4, None, None, false),
            (5, Some(5600.0), None, false),
            (6, Some(5700.0), Some(100.0), false),
        ]
    );
    assert_eq!(
        lake.value_as_of(2026, 3, "BR", 2025, "028").expect("q"),
        None
    );
    assert_eq!(
        lake.value_as_of(2026, 4, "BR", 2025, "028").expect("q"),
        Some(None)
    );
}

#[test]
fn a_release_landing_out_of_order_rebuilds_revisions() {
    let f = fixture();
    for k in [3u32, 4] {
        f.land(k, &release_csv(k));
    }
    transform(&f.store, &f.options).expect("newer first");
    for k in [1u32, 2] {
        f.land(k, &release_csv(k));
    }
    let backfill = transform(&f.store, &f.options).expect("backfill");
    assert_eq!(mode_of(&backfill, "raw.psd_changes"), StepMode::Rebuild);
    let lake = f.lake();
    let changes: Vec<Option<f64>> = lake
        .revisions("BR", 2025, "028")
        .expect("revisions")
        .iter()
        .map(|r| r.change)
        .collect();
    assert_eq!(changes, [None, Some(100.0), Some(100.0), Some(100.0)]);
    drop(lake);

    let mut full = f.options.clone();
    full.duckdb_path = f.options.duckdb_path.with_file_name("full.duckdb");
    transform(&f.store, &full).expect("full");
    assert_eq!(
        revision_rows(&f.options.duckdb_path),
        revision_rows(&full.duckdb_path)
    );
}

#[test]
fn a_lakehouse_error_keeps_duckdbs_error_as_its_source() {
    use std::error::Error as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lakehouse.duckdb");
    fs::write(&path, b"not a database at all, just text").expect("write");
    let err = materia_core::transform::Lakehouse::open_read_only(&path)
        .err()
        .expect("not DuckDB");
    assert!(matches!(err, Error::Lakehouse { .. }), "{err:?}");
    let cause = err.source().expect("a source");
    // DuckDB's error, in the wrapper that drops duckdb-rs's "Error code 1:
    // Unknown error code" from the chain (issue 27).
    let duck = cause
        .downcast_ref::<materia_core::DuckDbError>()
        .unwrap_or_else(|| panic!("{cause:?}"));
    assert!(
        matches!(
            duck.duckdb(),
            materia_core::transform::duckdb::Error::DuckDBFailure(..)
        ),
        "{duck:?}"
    );
    assert!(cause.source().is_none(), "{cause:?}");
    assert!(!err.to_string().contains("Error code"), "{err}");
}

/// `release_csv(k)` with Vietnam's attribute 088 described differently: a
/// change of a column other than the value.
fn renamed_release(k: u32) -> Vec<u8> {
    String::from_utf8(release_csv(k))
        .expect("utf-8")
        .replace(
            ",VM,Vietnam,2024,2024,00,088,Exports,",
            ",VM,Vietnam,2024,2024,00,088,Exports (revised),",
        )
        .into_bytes()
}

/// The columns of a PSD row.
const COLUMNS: &str = "commodity_code, commodity_description, country_code, country_name, \
    market_year, calendar_year, month, attribute_id, attribute_description, unit_id, \
    unit_description, value";

/// Counts the rows of `a` not in `b` and of `b` not in `a` (multisets).
fn differing(conn: &materia_core::transform::duckdb::Connection, a: &str, b: &str) -> (i64, i64) {
    let n = |x: &str, y: &str| -> i64 {
        let sql = format!("SELECT count(*) FROM (({x}) EXCEPT ALL ({y}))");
        conn.query_row(&sql, [], |r| r.get(0)).expect(&sql)
    };
    (n(a, b), n(b, a))
}

/// Checks the published history against the tables as the models before it
/// built them — every row of every release in `raw.psd`, `psd_latest` the
/// newest release, `psd_revisions` every row with its change — computed from
/// the same landing files with that SQL (one release per month). Returns the
/// reference connection (the published file attached and in use) and the
/// number of releases.
fn assert_equals_the_full_tables(
    f: &Fixture,
) -> (materia_core::transform::duckdb::Connection, usize) {
    let conn = materia_core::transform::duckdb::Connection::open_in_memory().expect("duckdb");
    let mut entries = f.store.list();
    entries.sort_by_key(|e| (e.key.year, e.key.month));
    let files: Vec<String> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!(
                "('{}', {}, {}, '{}')",
                f.store.path_of(&e.key).display(),
                i + 1,
                e.key.month.get(),
                e.key.etag.as_str()
            )
        })
        .collect();
    let paths: Vec<String> = entries
        .iter()
        .map(|e| format!("'{}'", f.store.path_of(&e.key).display()))
        .collect();
    conn.execute_batch(&format!(
        "CREATE TABLE files (path VARCHAR, ord INTEGER, month INTEGER, etag VARCHAR);
         INSERT INTO files VALUES {};
         CREATE TABLE ref AS
         SELECT f.ord, f.month AS release_month, f.etag AS release_etag,
                c.Commodity_Code AS commodity_code, c.Commodity_Description AS commodity_description,
                c.Country_Code AS country_code, c.Country_Name AS country_name,
                c.Market_Year AS market_year, c.Calendar_Year AS calendar_year, c.Month AS month,
                c.Attribute_ID AS attribute_id, c.Attribute_Description AS attribute_description,
                c.Unit_ID AS unit_id, c.Unit_Description AS unit_description, c.Value AS value
         FROM read_csv([{}],
                 compression = 'gzip', header = true, auto_detect = false,
                 delim = ',', quote = '\"', escape = '\"', nullstr = '', filename = true,
                 columns = {{
                     'Commodity_Code': 'VARCHAR', 'Commodity_Description': 'VARCHAR',
                     'Country_Code': 'VARCHAR', 'Country_Name': 'VARCHAR',
                     'Market_Year': 'INTEGER', 'Calendar_Year': 'INTEGER', 'Month': 'VARCHAR',
                     'Attribute_ID': 'VARCHAR', 'Attribute_Description': 'VARCHAR',
                     'Unit_ID': 'VARCHAR', 'Unit_Description': 'VARCHAR', 'Value': 'DOUBLE'
                 }}) AS c
         JOIN files AS f ON f.path = c.filename;
         ATTACH '{}' AS lake (READ_ONLY);
         USE lake;",
        files.join(", "),
        paths.join(", "),
        f.options.duckdb_path.display()
    ))
    .expect("reference tables");
    let releases = entries.len();

    // Every release, as the history says it was.
    for ord in 1..=releases {
        let (year, month) = (
            entries[ord - 1].key.year.get(),
            entries[ord - 1].key.month.get(),
        );
        let diff = differing(
            &conn,
            &format!("SELECT {COLUMNS} FROM memory.ref WHERE ord = {ord}"),
            &format!("SELECT {COLUMNS} FROM serving.psd_as_of({year}, {month})"),
        );
        assert_eq!(diff, (0, 0), "release {ord}");
    }
    // The latest values: the newest release's rows.
    let diff = differing(
        &conn,
        &format!(
            "SELECT {COLUMNS}, release_etag, release_month FROM memory.ref WHERE ord = {releases}"
        ),
        &format!("SELECT {COLUMNS}, release_etag, release_month FROM serving.psd_latest"),
    );
    assert_eq!(diff, (0, 0), "psd_latest");
    // The revisions: the old table's rows where something changed — the key
    // first appears, comes back after a gap, or any column differs from the
    // release before — with the old change (against the last value carried).
    let key = "commodity_code, country_code, market_year, attribute_id";
    let old_revisions = format!(
        "SELECT {key}, attribute_description, ord AS release_ord, release_etag, release_month,
                value, change FROM (
            SELECT *, value - lag(value) OVER w AS change, lag(ord) OVER w AS prev_ord,
                   lag(struct_pack(commodity_description, country_name, calendar_year, month,
                       attribute_description, unit_id, unit_description, value)) OVER w AS prev
            FROM memory.ref
            WINDOW w AS (PARTITION BY {key} ORDER BY ord))
        WHERE prev_ord IS NULL OR prev_ord <> ord - 1
           OR prev IS DISTINCT FROM struct_pack(commodity_description, country_name,
                  calendar_year, month, attribute_description, unit_id, unit_description, value)"
    );
    let diff = differing(
        &conn,
        &old_revisions,
        &format!(
            "SELECT {key}, attribute_description, release_ord, release_etag, release_month,
                    value, change FROM serving.psd_revisions WHERE NOT deleted"
        ),
    );
    assert_eq!(diff, (0, 0), "psd_revisions");
    // Deletions: a key in one release and not in the next.
    let diff = differing(
        &conn,
        &format!(
            "SELECT {key}, a.ord + 1 FROM memory.ref AS a
             WHERE a.ord < {releases} AND NOT EXISTS (
                 SELECT 1 FROM memory.ref AS b WHERE b.ord = a.ord + 1
                 AND b.commodity_code = a.commodity_code AND b.country_code = a.country_code
                 AND b.market_year = a.market_year AND b.attribute_id = a.attribute_id)"
        ),
        &format!("SELECT {key}, release_ord FROM serving.psd_revisions WHERE deleted"),
    );
    assert_eq!(diff, (0, 0), "deletions");
    (conn, releases)
}

/// The change history against the tables as the models before it built them —
/// every row of every release in `raw.psd`, `psd_latest` the newest release,
/// `psd_revisions` every row with its change — computed here from the same
/// landing files with that SQL: row for row, including a value that
/// disappears and comes back, a NULL, a renamed attribute and a release that
/// lands out of order.
#[test]
fn the_change_history_equals_the_full_tables_row_for_row() {
    let f = fixture();
    let bodies: Vec<(u32, Vec<u8>)> = vec![
        (1, release_csv(1)),
        (2, release_csv(2)),
        (3, edited_release(3, Edit::Drop)),
        (4, edited_release(4, Edit::Null)),
        (5, renamed_release(5)),
        (6, release_csv(6)),
    ];
    // Release 1 lands last, as an archive backfill would.
    for (k, body) in bodies.iter().skip(1) {
        f.land(*k, body);
        transform(&f.store, &f.options).expect("daily");
    }
    f.land(1, &bodies[0].1);
    let backfill = transform(&f.store, &f.options).expect("backfill");
    assert_eq!(mode_of(&backfill, "raw.psd_changes"), StepMode::Rebuild);

    let (conn, releases) = assert_equals_the_full_tables(&f);
    assert_eq!(releases, 6);
    assert_eq!(
        conn.query_row("SELECT count(*) FROM memory.ref", [], |r| r
            .get::<_, i64>(0))
            .expect("count") as u64,
        6 * ROWS_PER_RELEASE - 1
    );
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM serving.psd_history", [], |r| r.get(0))
        .expect("count");
    assert!(
        (stored as u64) < 2 * ROWS_PER_RELEASE,
        "{stored} rows stored for 6 releases of {ROWS_PER_RELEASE}"
    );
}

/// A lakehouse from an older Materia (or a history of another schema version,
/// or one DuckDB cannot open) is rebuilt from the landing zone by the next
/// transform, with no manual step.
#[test]
fn older_or_unreadable_lakehouses_rebuild_themselves() {
    use materia_core::transform::duckdb::Connection;
    let f = fixture();
    for k in 1..=2 {
        f.land(k, &release_csv(k));
    }
    transform(&f.store, &f.options).expect("first");
    let mut history = f.options.duckdb_path.as_os_str().to_owned();
    history.push(".history");
    let history = PathBuf::from(history);
    let expected = revision_rows(&f.options.duckdb_path);

    // A history of an older schema version.
    Connection::open(&history)
        .expect("open the history")
        .execute_batch("UPDATE materia.build SET schema_version = 1")
        .expect("age it");
    let report = transform(&f.store, &f.options).expect("upgrade");
    assert_eq!(mode_of(&report, "raw.psd_changes"), StepMode::Rebuild);
    assert!(report.published.is_some());
    assert_eq!(revision_rows(&f.options.duckdb_path), expected);

    // A published file from before the history (no `materia.build`), no history.
    fs::remove_file(&history).expect("no history");
    Connection::open(&f.options.duckdb_path)
        .expect("open the published file")
        .execute_batch("DROP SCHEMA materia CASCADE")
        .expect("make it old");
    let report = transform(&f.store, &f.options).expect("upgrade");
    assert_eq!(report.releases_loaded, 2);
    assert!(report.published.is_some());
    assert_eq!(revision_rows(&f.options.duckdb_path), expected);

    // A history DuckDB cannot open.
    fs::write(&history, b"not a database").expect("clobber");
    let report = transform(&f.store, &f.options).expect("rebuilds");
    assert_eq!(report.releases_loaded, 2);
    assert_eq!(revision_rows(&f.options.duckdb_path), expected);
    // And then it is current: nothing to do.
    let again = transform(&f.store, &f.options).expect("current");
    assert!(again.published.is_none() && again.releases_loaded == 0);
}

/// The same, past DuckDB's row-group size (122,880 rows): generated releases
/// of ~160k rows, each loaded by its own daily build. (An UPDATE-based history
/// lost versions from the third such release on: DuckDB left rows it should
/// have updated, and no small test saw it.)
#[test]
fn the_change_history_stays_exact_beyond_a_row_group() {
    let f = fixture();
    for k in 1..=4u32 {
        let body = materia_testkit::psd_csv(&materia_testkit::PsdSpec {
            min_bytes: 16 << 20,
            seed: u64::from(k),
        });
        f.land(k, &body);
        transform(&f.store, &f.options).expect("daily");
    }
    let (conn, releases) = assert_equals_the_full_tables(&f);
    assert_eq!(releases, 4);
    let open: i64 = conn
        .query_row(
            "SELECT count(*) - count(DISTINCT (commodity_code, country_code, market_year, attribute_id)) \
             FROM serving.psd_history WHERE until_ord IS NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(open, 0, "one current version per key");
    drop(conn);
    // The same releases in one first build (all at once) publish the same.
    let mut full = f.options.clone();
    full.duckdb_path = f.options.duckdb_path.with_file_name("full.duckdb");
    let once = transform(&f.store, &full).expect("full");
    assert_eq!(once.releases_loaded, 4);
    assert_eq!(
        once.steps
            .iter()
            .filter(|s| s.model == "raw.psd_changes")
            .count(),
        1,
        "one batch"
    );
    assert_eq!(
        revision_rows(&full.duckdb_path),
        revision_rows(&f.options.duckdb_path)
    );
}

/// A caller's models run after the built-in ones, with their audits; a broken
/// one names its file and line and nothing is published.
#[test]
fn user_models_run_after_the_built_in_ones_and_a_broken_one_names_file_and_line() {
    use materia_core::transform::Model;
    let f = fixture();
    f.land(1, &release_csv(1));
    let dir = tempfile::tempdir().expect("models");
    fs::write(
        dir.path().join("brazil.sql"),
        "-- model: serving.brazil_production\n-- kind: table\n-- depends: serving.psd_latest\n\
         CREATE OR REPLACE TABLE serving.brazil_production AS\n\
         SELECT market_year, value FROM serving.psd_latest\n\
         WHERE country_code = 'BR' AND attribute_id = '028';\n",
    )
    .expect("model");
    fs::write(
        dir.path().join("checks.sql"),
        "-- model: my_audits\n-- kind: audit\n-- depends: serving.brazil_production\n\
         -- audit: warn Brazil produces more than 5000\n\
         SELECT count(*) FROM serving.brazil_production WHERE value > 5000;\n",
    )
    .expect("audit");
    let mut options = f.options.clone();
    options.models = Model::from_dir(dir.path()).expect("parse");
    let report = transform(&f.store, &options).expect("builds");
    assert_eq!(f.count("SELECT count(*) FROM serving.brazil_production"), 3);
    assert_eq!(
        mode_of(&report, "serving.brazil_production"),
        StepMode::Table
    );
    let last_builtin = report
        .steps
        .iter()
        .position(|s| s.model == "serving.psd_revisions")
        .expect("built-in step");
    let mine = report
        .steps
        .iter()
        .position(|s| s.model == "serving.brazil_production")
        .expect("user step");
    assert!(mine > last_builtin, "{:?}", report.steps);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.audit == "Brazil produces more than 5000" && w.rows == 2),
        "{:?}",
        report.warnings
    );

    // A model that refers to a column that does not exist, on its line 5.
    let before = fs::read(&f.options.duckdb_path).expect("published");
    fs::write(
        dir.path().join("zz_broken.sql"),
        "-- model: serving.broken\n-- kind: table\n-- depends: serving.psd_latest\n\
         CREATE OR REPLACE TABLE serving.broken AS\n\
         SELECT no_such_column FROM serving.psd_latest;\n",
    )
    .expect("model");
    f.land(2, &release_csv(2));
    options.models = Model::from_dir(dir.path()).expect("parse");
    let err = transform(&f.store, &options).expect_err("broken model");
    let text = err.to_string();
    assert!(text.contains("zz_broken.sql:5"), "{text}");
    assert!(text.contains("no_such_column"), "{text}");
    assert!(
        fs::read(&f.options.duckdb_path).expect("published") == before,
        "nothing published"
    );

    // Unknown dependencies, built-in names and built-in kinds are refused, named.
    let err = Model::parse(
        "x.sql",
        "-- model: serving.x\n-- kind: table\n-- depends: nope\nSELECT 1;",
    )
    .map(|m| {
        let mut o = f.options.clone();
        o.models = vec![m];
        transform(&f.store, &o)
    })
    .expect("parses")
    .expect_err("unknown dependency");
    assert!(
        err.to_string().contains("x.sql") && err.to_string().contains("nope"),
        "{err}"
    );
    let clash = Model::parse(
        "mine.sql",
        "-- model: serving.psd_latest\n-- kind: table\nSELECT 1;",
    )
    .expect("parses");
    let mut o = f.options.clone();
    o.models = vec![clash];
    let err = transform(&f.store, &o).expect_err("a built-in name");
    assert!(err.to_string().contains("built-in"), "{err}");
}

/// A first build loads every release at once; one unusable release among them
/// sends it back to release by release, which quarantines just that one.
#[test]
fn a_first_build_with_a_bad_release_quarantines_it_and_loads_the_rest() {
    let f = fixture();
    f.land(1, &release_csv(1));
    let twice = f.land(2, &last_row_twice(release_csv(2)));
    f.land(3, &release_csv(3));
    let report = transform(&f.store, &f.options).expect("builds");
    assert_eq!(report.releases_loaded, 2);
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].landing_key, twice.to_string());
    let history = f.lake().revisions("BR", 2025, "028").expect("revisions");
    assert_eq!(
        history
            .iter()
            .map(|r| (r.release_ord, r.value))
            .collect::<Vec<_>>(),
        [(1, Some(5200.0)), (2, Some(5400.0))]
    );
}

/// How the last build wrote the published file: `Append` (a slot updated in
/// place) or `Rebuild` (a fresh file).
fn publish_mode(report: &materia_core::transform::TransformReport) -> StepMode {
    report
        .steps
        .iter()
        .find(|s| s.model == "lakehouse")
        .map(|s| s.mode)
        .expect("published")
}

#[test]
fn the_daily_publish_updates_the_slot_before_last_in_place() {
    use std::os::unix::fs::MetadataExt;
    let f = fixture();
    let target = f.options.duckdb_path.clone();
    let slot = |s: &str| {
        let mut p = target.as_os_str().to_owned();
        p.push(s);
        PathBuf::from(p)
    };
    let inode = |p: &Path| fs::metadata(p).expect("exists").ino();
    f.land(1, &release_csv(1));
    let first = transform(&f.store, &f.options).expect("first");
    assert_eq!(publish_mode(&first), StepMode::Rebuild);
    assert_eq!(inode(&target), inode(&slot(".a")));
    f.land(2, &release_csv(2));
    let second = transform(&f.store, &f.options).expect("second");
    assert_eq!(publish_mode(&second), StepMode::Rebuild, "no slot b yet");
    assert_eq!(inode(&target), inode(&slot(".b")));
    // A reader of the second build holds slot b.
    let reader = f.lake();

    f.land(3, &release_csv(3));
    let third = transform(&f.store, &f.options).expect("third");
    assert_eq!(
        publish_mode(&third),
        StepMode::Append,
        "slot a updated in place"
    );
    assert_eq!(inode(&target), inode(&slot(".a")));
    assert_eq!(f.count("SELECT count(*) FROM raw.releases"), 3);
    // Every version once: the copy in slot a was appended to, not duplicated.
    assert_eq!(
        f.count("SELECT count(*) FROM serving.psd_history"),
        f.count("SELECT count(*) FROM raw.psd_changes")
    );
    assert_eq!(
        f.count("SELECT count(*) FROM (SELECT DISTINCT * FROM raw.psd_changes)"),
        f.count("SELECT count(*) FROM raw.psd_changes")
    );

    // Slot b is still open in the reader: DuckDB's lock refuses the in-place
    // update, so a fresh file takes its name; the reader keeps its snapshot.
    f.land(4, &release_csv(4));
    let fourth = transform(&f.store, &f.options).expect("fourth");
    assert_eq!(publish_mode(&fourth), StepMode::Rebuild, "slot b is held");
    assert_eq!(inode(&target), inode(&slot(".b")));
    let held: i64 = reader
        .connection()
        .query_row("SELECT count(*) FROM raw.releases", [], |r| r.get(0))
        .expect("snapshot");
    assert_eq!(held, 2);
    drop(reader);

    // Built in place or afresh, the same tables.
    f.land(5, &release_csv(5));
    let fifth = transform(&f.store, &f.options).expect("fifth");
    assert_eq!(publish_mode(&fifth), StepMode::Append);
    let fresh = f.dir.path().join("fresh.duckdb");
    let mut options = f.options.clone();
    options.duckdb_path = fresh.clone();
    let rebuilt = transform(&f.store, &options).expect("fresh");
    assert_eq!(publish_mode(&rebuilt), StepMode::Rebuild);
    let digest = |path: &Path, table: &str| -> (i64, String) {
        Lakehouse::open_read_only(path)
            .expect("open")
            .connection()
            .query_row(
                &format!(
                    "SELECT count(*), md5(string_agg(t::VARCHAR, '|' ORDER BY t::VARCHAR)) \
                     FROM (SELECT * EXCLUDE (release_etag) FROM {table}) AS t"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect(table)
    };
    for table in [
        "serving.psd_history",
        "serving.psd_latest",
        "serving.psd_revisions",
    ] {
        assert_eq!(digest(&target, table), digest(&fresh, table), "{table}");
    }

    // Other models, same history: the slot is updated in place, the new model
    // built in it.
    let mut with_model = f.options.clone();
    with_model.models = vec![
        materia_core::transform::Model::parse(
            "br.sql",
            "-- model: serving.br\n-- kind: table\n-- depends: serving.psd_latest\n\
             CREATE OR REPLACE TABLE serving.br AS SELECT * FROM serving.psd_latest WHERE country_code = 'BR';\n",
        )
        .expect("model"),
    ];
    f.land(6, &release_csv(6));
    let sixth = transform(&f.store, &with_model).expect("sixth");
    assert_eq!(publish_mode(&sixth), StepMode::Append, "new models");
    assert!(f.count("SELECT count(*) FROM serving.br") > 0);
}
