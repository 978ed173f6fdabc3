//! Declared datasets: CFTC's Commitments of Traders (the built-in `cot`), a
//! dataset declared in a config, and a release whose columns do not match.

use std::io::Read;
use std::path::Path;

use materia_core::dataset::{Config, DatasetSpec, Limits};
use materia_core::extract::{Extractor, Status};
use materia_core::landing::{LandingKey, LandingStore};
use materia_core::transform::{Lakehouse, StepMode, transform};

use crate::{Fixture, fixture};

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/cot_disagg_sample.zip"
);

/// The sample's `f_year.txt`.
fn sample_text() -> String {
    let file = std::fs::File::open(SAMPLE).expect("sample");
    let mut archive = zip::ZipArchive::new(file).expect("zip");
    let mut text = String::new();
    archive
        .by_name("f_year.txt")
        .expect("member")
        .read_to_string(&mut text)
        .expect("utf-8");
    text
}

/// The sample's Coffee C rows as (report date, open interest, managed money
/// long, short, spread), read by column position (no comma comes before the
/// quoted contract units, column 186).
fn coffee_rows(text: &str) -> Vec<(String, i64, i64, i64, i64)> {
    let mut rows: Vec<_> = text
        .lines()
        .filter(|l| l.starts_with("\"COFFEE C - ICE FUTURES U.S.\""))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n = |i: usize| f[i].trim().parse::<i64>().expect("number");
            (f[2].to_owned(), n(7), n(13), n(14), n(15))
        })
        .collect();
    rows.sort();
    rows
}

impl Fixture {
    /// Lands `body` under 2026-`month` (13: January 2027; the extracted sample
    /// lands in the current month).
    fn put(&self, dataset: &str, month: i64, etag: &str, body: &[u8]) -> LandingKey {
        let (year, month) = if month > 12 {
            (2027, month - 12)
        } else {
            (2026, month)
        };
        self.put_release(dataset, (year, month), etag, body)
    }

    fn rows<T: duckdb::types::FromSql>(&self, sql: &str) -> Vec<T> {
        let lake = self.lake();
        let mut stmt = lake.connection().prepare(sql).expect(sql);
        stmt.query_map([], |r| r.get(0))
            .expect(sql)
            .collect::<Result<_, _>>()
            .expect(sql)
    }

    fn one<T: duckdb::types::FromSql>(&self, sql: &str) -> T {
        self.lake()
            .connection()
            .query_row(sql, [], |r| r.get(0))
            .expect(sql)
    }
}

use materia_core::transform::duckdb;

fn extract_sample(store: &LandingStore) -> LandingKey {
    let mut spec = DatasetSpec::cot();
    spec.url = format!("file://{}", Path::new(SAMPLE).display());
    let done = Extractor::new(Limits::default())
        .expect("client")
        .fetch(store, &spec)
        .expect("the real layout passes extract's header check");
    match done.status {
        Status::Landed { key, .. } => key,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_cot_sample_lands_and_serves_coffee_positions_by_contract_code() {
    let f = fixture();
    let text = sample_text();
    let key = extract_sample(&f.store);
    assert_eq!(key.dataset.as_str(), "cot");

    let report = transform(&f.store, &f.options).expect("transform");
    assert_eq!(report.releases_loaded, 1, "{report:?}");
    assert!(report.rejected.is_empty(), "{report:?}");
    let data_lines = text.lines().count() as u64 - 1;
    assert_eq!(report.rows_loaded, data_lines);
    assert_eq!(
        f.one::<i64>("SELECT count(*) FROM serving.cot_latest"),
        data_lines as i64
    );

    // Coffee C, found by its (space-padded) code: every week, net = long - short.
    let expected = coffee_rows(&text);
    assert_eq!(expected.len(), 12);
    let lake = f.lake();
    let mut stmt = lake
        .connection()
        .prepare(
            "SELECT strftime(report_date, '%Y-%m-%d'), open_interest, managed_money_long, \
             managed_money_short, managed_money_spread, managed_money_net, contract_market_code \
             FROM serving.cot_coffee ORDER BY report_date",
        )
        .expect("cot_coffee");
    let got: Vec<(String, i64, i64, i64, i64, i64, String)> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!((&g.0, g.1, g.2, g.3, g.4), (&e.0, e.1, e.2, e.3, e.4));
        assert_eq!(g.5, e.2 - e.3, "net = long - short on {}", e.0);
        assert_eq!(g.6, "083731");
    }
    // "." is CFTC's "does not apply": a NULL, not a failed load.
    let first_week_change: Option<i64> = f.one(
        "SELECT change_in_open_interest_all FROM serving.cot_latest \
         WHERE trim(cftc_contract_market_code) = '083731' \
         ORDER BY report_date_as_yyyy_mm_dd LIMIT 1",
    );
    assert_eq!(first_week_change, None);
    // Contract units kept their quoted comma.
    assert_eq!(
        f.one::<String>(
            "SELECT any_value(contract_units) FROM serving.cot_latest \
             WHERE trim(cftc_contract_market_code) = '083731'"
        ),
        "(CONTRACTS OF 37,500 POUNDS)"
    );
}

/// The sample plus a week: Coffee C on 2026-03-31 (managed money long
/// 77,777), and the 2026-03-24 row's managed money long corrected to 66,666.
fn next_week(text: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == 1 {
            // The newest rows come first: the new week goes right after the header.
            out.push_str(&coffee_line(
                text,
                "2026-03-24",
                "260331",
                "2026-03-31",
                77_777,
            ));
            out.push_str("\r\n");
        }
        if line.starts_with("\"COFFEE C") && line.contains(",2026-03-24,") {
            out.push_str(&coffee_line(
                text,
                "2026-03-24",
                "260324",
                "2026-03-24",
                66_666,
            ));
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out
}

/// The Coffee C row of `from` as of `date`, with managed money long `long`.
fn coffee_line(text: &str, from: &str, yymmdd: &str, date: &str, long: i64) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with("\"COFFEE C") && l.contains(&format!(",{from},")))
        .expect("coffee row");
    let mut f: Vec<String> = line.split(',').map(str::to_owned).collect();
    f[1] = yymmdd.into();
    f[2] = date.into();
    f[13] = long.to_string();
    f.join(",")
}

#[test]
fn cot_releases_merge_week_by_week_and_keep_their_corrections() {
    let f = fixture();
    let text = sample_text();
    let first = extract_sample(&f.store);
    transform(&f.store, &f.options).expect("first");

    let second = next_week(&text);
    f.put("cot", 13, "w2", second.as_bytes());
    let report = transform(&f.store, &f.options).expect("second");
    assert_eq!(report.releases_loaded, 1, "{report:?}");
    assert_eq!(report.changes, 2, "a new week and a correction: {report:?}");
    assert_eq!(f.one::<i64>("SELECT count(*) FROM serving.cot_coffee"), 13);
    assert_eq!(
        f.one::<i64>(
            "SELECT managed_money_long FROM serving.cot_coffee WHERE report_date = DATE '2026-03-24'"
        ),
        66_666
    );
    // What the first release said, and both versions in the history.
    let before = coffee_rows(&text).last().expect("rows").2;
    assert_eq!(
        f.one::<i64>(&format!(
            "SELECT m_money_positions_long_all FROM serving.cot_as_of({}, {}) \
             WHERE trim(cftc_contract_market_code) = '083731' \
               AND report_date_as_yyyy_mm_dd = DATE '2026-03-24'",
            first.year.get(),
            first.month.get()
        )),
        before
    );
    assert_eq!(
        f.rows::<i64>(
            "SELECT m_money_positions_long_all FROM serving.cot_history \
             WHERE trim(cftc_contract_market_code) = '083731' \
               AND report_date_as_yyyy_mm_dd = DATE '2026-03-24' ORDER BY release_ord"
        ),
        vec![before, 66_666]
    );

    // Next year's file holds only next year's weeks: a merge dataset keeps the
    // rows a release lacks (nothing deleted).
    let header = text.lines().next().expect("header");
    let new_year = format!(
        "{header}\r\n{}\r\n",
        coffee_line(&text, "2026-03-24", "270105", "2027-01-05", 55_555)
    );
    f.put("cot", 14, "y2027", new_year.as_bytes());
    let report = transform(&f.store, &f.options).expect("third");
    assert_eq!(
        (report.releases_loaded, report.changes),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(f.one::<i64>("SELECT count(*) FROM serving.cot_coffee"), 14);
    assert_eq!(
        f.one::<i64>("SELECT count(*) FROM serving.cot_history WHERE deleted"),
        0
    );

    // A first build of the same three releases loads them at once (window
    // functions): the same history, row for row.
    let all = f.dir.path().join("all-at-once.duckdb");
    let mut options = f.options.clone();
    options.duckdb_path = all.clone();
    let report = transform(&f.store, &options).expect("at once");
    assert_eq!(report.releases_loaded, 3);
    assert!(report.steps.iter().any(|s| s.mode == StepMode::Rebuild));
    let digest = |path: &Path| -> (i64, String) {
        Lakehouse::open_read_only(path)
            .expect("open")
            .connection()
            .query_row(
                "SELECT count(*), md5(string_agg(h::VARCHAR, '|' ORDER BY h::VARCHAR)) \
                 FROM serving.cot_history AS h",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("digest")
    };
    assert_eq!(digest(&all), digest(&f.options.duckdb_path));
}

#[test]
fn a_dataset_with_a_wrong_column_set_fails_alone_named() {
    let f = fixture();
    let psd = materia_testkit::psd_csv(&materia_testkit::PsdSpec {
        min_bytes: 20_000,
        seed: 1,
    });
    f.put("psd", 1, "p1", &psd);
    let text = sample_text();
    let renamed = text.replacen("M_Money_Positions_Long_All", "MM_Long", 1);
    let bad = f.put("cot", 1, "bad", renamed.as_bytes());

    let report = transform(&f.store, &f.options).expect("the other dataset publishes");
    assert!(report.published.is_some());
    assert_eq!(report.releases_loaded, 1, "{report:?}");
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    let rejected = &report.rejected[0];
    assert_eq!(rejected.landing_key, bad.to_string());
    assert_eq!(
        rejected.reason,
        "its columns differ from datasets.cot.table: missing \"M_Money_Positions_Long_All\"; \
         unexpected \"MM_Long\""
    );
    assert!(f.one::<i64>("SELECT count(*) FROM serving.psd_latest") > 0);
    assert_eq!(f.one::<i64>("SELECT count(*) FROM serving.cot_latest"), 0);
    assert_eq!(f.lake().rejected().expect("rejected").len(), 1);

    // The right file, landed after, loads; the bad one stays quarantined.
    extract_sample(&f.store);
    let report = transform(&f.store, &f.options).expect("good cot");
    assert_eq!((report.releases_loaded, report.rejected.len()), (1, 0));
    assert_eq!(f.one::<i64>("SELECT count(*) FROM serving.cot_coffee"), 12);
}

const WEATHER: &str = r#"
[datasets.weather]
url = "https://example.org/rain.csv"
cadence = "daily"

[datasets.weather.table]
columns = ["Station VARCHAR", "Day DATE", "Rain (mm) DOUBLE", "Note VARCHAR"]
key = ["Station", "Day"]
"#;

#[test]
fn a_dataset_declared_in_the_config_gets_its_own_change_history() {
    let config = Config::from_toml(WEATHER, "weather.toml").expect("config");
    assert!(config.loads(&"weather".parse().expect("name")));
    let mut f = fixture();
    f.options.tables = config.tables();
    let header = "Station,Day,Rain (mm),Note\n";
    f.put(
        "weather",
        1,
        "d1",
        format!("{header}KSEA,2026-01-01,3.5,\nKSEA,2026-01-02,0,dry\nKPDX,2026-01-01,7.25,\n")
            .as_bytes(),
    );
    f.put(
        "weather",
        2,
        "d2",
        format!("{header}KSEA,2026-01-01,4.0,revised\nKPDX,2026-01-01,7.25,\n").as_bytes(),
    );
    let report = transform(&f.store, &f.options).expect("transform");
    assert_eq!(report.releases_loaded, 2, "{report:?}");
    // 3 first versions, then a revision and a deletion.
    assert_eq!(report.changes, 5, "{report:?}");
    assert_eq!(
        f.rows::<String>(
            "SELECT station || ' ' || rain__mm_ FROM serving.weather_latest ORDER BY station"
        ),
        vec!["KPDX 7.25".to_owned(), "KSEA 4.0".to_owned()]
    );
    assert_eq!(
        f.rows::<f64>("SELECT rain__mm_ FROM serving.weather_as_of(2026, 1) ORDER BY station, day"),
        vec![7.25, 3.5, 0.0]
    );
    assert_eq!(
        f.one::<String>(
            "SELECT strftime(day, '%Y-%m-%d') FROM serving.weather_history WHERE deleted"
        ),
        "2026-01-02"
    );
    // The built-in datasets are there too, empty.
    assert_eq!(f.one::<i64>("SELECT count(*) FROM serving.psd_latest"), 0);
}

#[test]
fn table_declarations_are_checked_and_errors_name_them() {
    let cases = [
        ("\"Day DATETIME\"", "unknown column type \"DATETIME\""),
        ("\"Day\"", "expected \"Name TYPE\""),
        (
            "\"Day DATE\", \"day DATE\"",
            "columns \"Day\" and \"day\" are both day in the lakehouse",
        ),
        (
            "\"Day DATE\", \"deleted BOOLEAN\"",
            "named like the history's own deleted",
        ),
    ];
    for (columns, expected) in cases {
        let toml = format!(
            "[datasets.w]\nurl = \"https://example.org/w.csv\"\n[datasets.w.table]\ncolumns = [{columns}]\nkey = [\"Day\"]\n"
        );
        let err = Config::from_toml(&toml, "w.toml")
            .expect_err(columns)
            .to_string();
        assert!(
            err.contains("datasets.w.table") && err.contains(expected),
            "{err}"
        );
    }
    let err = Config::from_toml(
        "[datasets.w]\nurl = \"x\"\n[datasets.w.table]\ncolumns = [\"A VARCHAR\"]\nkey = [\"B\"]\n",
        "w.toml",
    )
    .expect_err("undeclared key")
    .to_string();
    assert!(
        err.contains("key column \"B\" is not a declared column"),
        "{err}"
    );
    let err = Config::from_toml(
        "[datasets.w]\nurl = \"x\"\nheader = [\"A\"]\n[datasets.w.table]\ncolumns = [\"B VARCHAR\"]\nkey = [\"B\"]\n",
        "w.toml",
    )
    .expect_err("header and table disagree")
    .to_string();
    assert!(err.contains("header and table.columns"), "{err}");
    // `psd` pointed at the all-commodities file keeps the built-in table.
    let config = Config::from_toml(
        "[datasets.psd]\nurl = \"https://apps.fas.usda.gov/psdonline/downloads/psd_alldata_csv.zip\"\n",
        "all.toml",
    )
    .expect("config");
    assert_eq!(
        config.tables()["psd"],
        DatasetSpec::psd().table.expect("table")
    );
}

/// Regression (issue 24): a declared column named `filename` broke the first
/// build (read_csv's own filename column), and `ord`, `prev`, `prev_ord`,
/// `next_ord`, `h` clashed with the generated SQL's columns. Any CSV header
/// loads now, in the batch build and one release at a time.
#[test]
fn columns_named_like_the_generated_sqls_own_load_and_keep_their_history() {
    let toml = "[datasets.clash]\nurl = \"https://example.org/c.csv\"\n[datasets.clash.table]\n\
                columns = [\"filename VARCHAR\", \"h VARCHAR\", \"ord INTEGER\", \"prev DOUBLE\", \
                \"prev_ord INTEGER\", \"next_ord INTEGER\", \"path VARCHAR\", \"n INTEGER\"]\n\
                key = [\"filename\", \"h\"]\n";
    let config = Config::from_toml(toml, "clash.toml").expect("any CSV header is a column");
    let mut f = fixture();
    f.options.tables = config.tables();
    let header = "filename,h,ord,prev,prev_ord,next_ord,path,n\n";
    let release = |rows: &[&str]| format!("{header}{}\n", rows.join("\n"));
    f.put(
        "clash",
        1,
        "c1",
        release(&["a.csv,x,1,1.5,0,2,/p,7", "b.csv,y,2,2.5,1,3,/q,8"]).as_bytes(),
    );
    f.put(
        "clash",
        2,
        "c2",
        release(&["a.csv,x,1,9.5,0,2,/p,7", "b.csv,y,2,2.5,1,3,/q,8"]).as_bytes(),
    );
    // The first build loads both at once (the batch path).
    let report = transform(&f.store, &f.options).expect("the first build");
    assert_eq!(report.releases_loaded, 2, "{report:?}");
    assert!(report.rejected.is_empty(), "{report:?}");
    assert_eq!(report.changes, 3, "{report:?}");
    // The next release alone (the one-by-one path): b.csv goes away.
    f.put(
        "clash",
        3,
        "c3",
        release(&["a.csv,x,5,9.5,0,2,/p,7"]).as_bytes(),
    );
    let report = transform(&f.store, &f.options).expect("the next release");
    assert_eq!(report.changes, 2, "{report:?}");
    assert_eq!(
        f.rows::<String>(
            "SELECT filename || ' ' || h || ' ' || ord || ' ' || prev || ' ' || next_ord || ' ' || path \
             FROM serving.clash_latest"
        ),
        vec!["a.csv x 5 9.5 2 /p".to_owned()]
    );
    assert_eq!(
        f.rows::<f64>(
            "SELECT prev FROM serving.clash_history WHERE filename = 'a.csv' ORDER BY release_ord"
        ),
        vec![1.5, 9.5, 9.5]
    );
    assert_eq!(
        f.one::<i64>("SELECT count(*) FROM serving.clash_history WHERE deleted AND h = 'y'"),
        1
    );
}

/// Regression (issue 24): names the history's views add, Materia's own
/// prefix, and two datasets with one table prefix (`a-b`, `a_b`: "declared
/// twice" on every transform) are refused when the config is read, named.
#[test]
fn declarations_that_would_clash_in_the_lakehouse_are_refused_named() {
    for (column, expected) in [
        ("release_year", "named like the history's own release_year"),
        (
            "Release-Month",
            "named like the history's own release_month",
        ),
        ("__materia_ord", "are Materia's own"),
    ] {
        let toml = format!(
            "[datasets.w]\nurl = \"x\"\n[datasets.w.table]\ncolumns = [\"Day DATE\", \"{column} INTEGER\"]\nkey = [\"Day\"]\n"
        );
        let err = Config::from_toml(&toml, "w.toml")
            .expect_err(column)
            .to_string();
        assert!(err.contains(column) && err.contains(expected), "{err}");
    }
    let table = "[datasets.{}.table]\ncolumns = [\"A VARCHAR\"]\nkey = [\"A\"]\n";
    let toml = ["a-b", "a_b"]
        .iter()
        .map(|d| format!("[datasets.{d}]\nurl = \"x\"\n{}", table.replace("{}", d)))
        .collect::<String>();
    let err = Config::from_toml(&toml, "two.toml")
        .expect_err("one prefix")
        .to_string();
    assert!(
        err.contains("\"a-b\"") && err.contains("\"a_b\"") && err.contains("raw.a_b_"),
        "{err}"
    );
}
