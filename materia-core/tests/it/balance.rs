//! The coffee balance on USDA's real layout: the shipped PSD sample (real
//! values, all 19 attributes), `serving.coffee_balance` with Other Production
//! and the bean / roast & ground / soluble splits, and USDA's identities as
//! `error` audits that fail a build breaking them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use materia_core::transform::{Balance, transform};
use materia_testkit::COFFEE_ATTRIBUTES;

use crate::{Fixture, fixture};

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/psd_coffee_sample.zip"
);

/// The sample's CSV, as in the zip.
fn sample_csv() -> String {
    let file = std::fs::File::open(SAMPLE).expect("sample");
    let mut archive = zip::ZipArchive::new(file).expect("zip");
    let mut text = String::new();
    archive
        .by_name("psd_coffee.csv")
        .expect("member psd_coffee.csv")
        .read_to_string(&mut text)
        .expect("utf-8");
    text
}

/// The fields of a CSV line and whether each was quoted (no `""` escapes in
/// USDA's file).
fn fields(line: &str) -> Vec<(String, bool)> {
    let mut out = vec![(String::new(), false)];
    let mut quoted = false;
    for c in line.chars() {
        let field = out.last_mut().expect("a field");
        match c {
            '"' => {
                quoted = !quoted;
                field.1 = true;
            }
            ',' if !quoted => out.push((String::new(), false)),
            _ => field.0.push(c),
        }
    }
    out
}

/// `csv` with the value of (country code, market year, attribute ID) replaced.
fn with_value(csv: &str, country: &str, year: i32, attr: &str, value: f64) -> String {
    let mut hits = 0;
    let out: Vec<String> = csv
        .split_inclusive("\r\n")
        .map(|line| {
            let f = fields(line.trim_end());
            let year = year.to_string();
            if f.len() == 12 && f[2].0 == country && f[4].0 == year && f[7].0 == attr {
                hits += 1;
                let (head, _) = line.trim_end().rsplit_once(',').expect("value");
                format!("{head},{value:.4}\r\n")
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert_eq!(hits, 1, "{country} {year} {attr} is one row of the sample");
    out.concat()
}

#[test]
fn the_shipped_psd_sample_has_usdas_layout_and_all_19_attributes() {
    let csv = sample_csv();
    let body = csv
        .strip_prefix('\u{feff}')
        .expect("a UTF-8 BOM, as USDA's");
    assert!(body.ends_with("\r\n") && !body.replace("\r\n", "").contains('\n'));
    let mut lines = body.lines();
    assert_eq!(
        lines.next().expect("header"),
        materia_core::dataset::PSD_COLUMNS.join(",")
    );
    let mut attributes = BTreeSet::new();
    let mut per_country_year: BTreeMap<(String, i32), BTreeMap<String, f64>> = BTreeMap::new();
    let mut zeros = 0;
    for line in lines {
        let f = fields(line);
        assert_eq!(f.len(), 12, "{line}");
        // Text quoted, codes and numbers bare, as USDA writes them.
        let quoted: Vec<bool> = f.iter().map(|(_, q)| *q).collect();
        let text = [1, 3, 8, 10];
        assert!(
            quoted
                .iter()
                .enumerate()
                .all(|(i, q)| *q == text.contains(&i)),
            "{line}"
        );
        assert_eq!(
            (f[0].0.as_str(), f[1].0.as_str()),
            ("0711100", "Coffee, Green")
        );
        assert_eq!(
            (f[9].0.as_str(), f[10].0.as_str()),
            ("02", "(1000 60 KG BAGS)")
        );
        let value = &f[11].0;
        assert!(value.ends_with(".0000"), "{line}");
        zeros += usize::from(value == "0.0000");
        attributes.insert((f[7].0.clone(), f[8].0.clone()));
        let year: i32 = f[4].0.parse().expect("market year");
        per_country_year
            .entry((f[2].0.clone(), year))
            .or_default()
            .insert(f[8].0.clone(), value.parse().expect("number"));
    }
    let usda: BTreeSet<(String, String)> = COFFEE_ATTRIBUTES
        .iter()
        .map(|(id, name)| ((*id).to_owned(), (*name).to_owned()))
        .collect();
    assert_eq!(attributes, usda, "USDA's 19 attributes and their IDs");
    assert_eq!(per_country_year.len(), 10 * 20, "10 countries × 2004–2023");
    assert!(per_country_year.values().all(|v| v.len() == 19));
    assert!(zeros > 0, "zero rows are written, as USDA does");
    // Other Production beside arabica and robusta: the Philippines, 2004–2006.
    let other: Vec<(String, i32)> = per_country_year
        .iter()
        .filter(|(_, v)| v["Other Production"] > 0.0)
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(
        other,
        [2004, 2005, 2006].map(|y| ("RP".to_owned(), y)).to_vec()
    );
    // USDA's identities hold on every country-year.
    for ((country, year), v) in &per_country_year {
        let holds = |a: f64, b: f64| (a - b).abs() < 0.5;
        assert!(
            holds(
                v["Production"],
                v["Arabica Production"] + v["Robusta Production"] + v["Other Production"]
            ) && holds(
                v["Total Supply"],
                v["Beginning Stocks"] + v["Production"] + v["Imports"]
            ) && holds(
                v["Total Distribution"],
                v["Exports"] + v["Domestic Consumption"] + v["Ending Stocks"]
            ),
            "{country} {year}: {v:?}"
        );
    }
}

/// Lands the sample as release `k` (`etag`) and builds.
fn build_sample(f: &Fixture, csv: &str, k: i64, etag: &str) -> materia_core::Result<()> {
    f.put_release("psd", (2026, k), etag, csv.as_bytes());
    let report = transform(&f.store, &f.options)?;
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    Ok(())
}

#[test]
fn the_sample_balance_carries_other_production_and_the_splits_and_passes_every_audit() {
    let f = fixture();
    build_sample(&f, &sample_csv(), 1, "s1").expect("builds, every audit passing");
    let lake = f.lake();
    // Figures from the real file (dawit3000/Data's pivot of psd_coffee.csv).
    let philippines = lake.balance("RP", 2005).expect("query").expect("a row");
    assert_eq!(
        philippines,
        Balance {
            country_code: "RP".into(),
            country_name: Some("Philippines".into()),
            market_year: 2005,
            beginning_stocks: Some(137.0),
            production: Some(710.0),
            arabica_production: Some(35.0),
            robusta_production: Some(650.0),
            other_production: Some(25.0),
            imports: Some(480.0),
            bean_imports: Some(230.0),
            roast_ground_imports: Some(0.0),
            soluble_imports: Some(250.0),
            exports: Some(2.0),
            bean_exports: Some(2.0),
            roast_ground_exports: Some(0.0),
            soluble_exports: Some(0.0),
            domestic_consumption: Some(1210.0),
            roast_ground_domestic_consumption: Some(120.0),
            soluble_domestic_consumption: Some(1090.0),
            ending_stocks: Some(115.0),
            total_supply: Some(1327.0),
            total_distribution: Some(1327.0),
            stocks_to_use: Some(115.0 / 1210.0),
        }
    );
    let brazil = lake.balance("BR", 2023).expect("query").expect("a row");
    assert_eq!(
        (
            brazil.production,
            brazil.arabica_production,
            brazil.robusta_production,
            brazil.other_production
        ),
        (Some(66300.0), Some(44900.0), Some(21400.0), Some(0.0))
    );
    assert_eq!(
        (
            brazil.exports,
            brazil.bean_exports,
            brazil.roast_ground_exports,
            brazil.soluble_exports
        ),
        (Some(43850.0), Some(39500.0), Some(50.0), Some(4300.0))
    );
    // The World row sums the splits over the sample's 10 countries.
    let world = lake.balance("WORLD", 2023).expect("query").expect("a row");
    assert_eq!(
        (
            world.production,
            world.soluble_exports,
            world.bean_imports,
            world.ending_stocks,
            world.domestic_consumption
        ),
        (
            Some(123850.0),
            Some(9550.0),
            Some(84200.0),
            Some(24003.0),
            Some(122347.0)
        )
    );
    assert_eq!(world.stocks_to_use, Some(24003.0 / 122347.0));
    let rows: i64 = lake
        .connection()
        .query_row("SELECT count(*) FROM serving.coffee_balance", [], |r| {
            r.get(0)
        })
        .expect("count");
    assert_eq!(rows, 10 * 20 + 20, "10 countries and the World, 20 years");
}

/// A copy of the sample breaking one identity, and the audit that names it.
/// The failure names the row (`country_code=…, market_year=…`).
fn breaks() -> [(String, &'static str, &'static str); 3] {
    let csv = sample_csv();
    [
        // Brazil's 2023 Other Production, 0 in USDA's file, without production moving.
        (
            with_value(&csv, "BR", 2023, "056", 100.0),
            "production = arabica + robusta + other production",
            "(country_code=BR, market_year=2023,",
        ),
        (
            with_value(&csv, "VM", 2010, "086", 1.0),
            "total supply = beginning stocks + production + imports",
            "(country_code=VM, market_year=2010,",
        ),
        (
            with_value(&csv, "JA", 2015, "176", 9999.0),
            "total distribution = exports + domestic consumption + ending stocks",
            "(country_code=JA, market_year=2015,",
        ),
    ]
}

#[test]
fn a_release_breaking_a_balance_identity_fails_the_build_naming_the_audit() {
    use std::os::unix::fs::MetadataExt;
    for (k, (csv, audit, row)) in breaks().into_iter().enumerate() {
        let f = fixture();
        build_sample(&f, &sample_csv(), 1, "good").expect("the sample builds");
        let path = &f.options.duckdb_path;
        let before = (std::fs::read(path).expect("published"), inode(path));
        f.put_release("psd", (2026, 2), &format!("bad{k}"), csv.as_bytes());
        let err = transform(&f.store, &f.options).expect_err(audit);
        let text = err.to_string();
        assert!(
            text.contains("audit") && text.contains(audit) && text.contains(row),
            "{audit}: the failure names the audit and the row: {text}"
        );
        assert!(
            (std::fs::read(path).expect("published"), inode(path)) == before,
            "{audit}: the published lakehouse is unchanged"
        );
        let still = f.lake().balance("BR", 2023).expect("query").expect("row");
        assert_eq!(still.other_production, Some(0.0), "the good build serves");
    }
    fn inode(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).expect("published").ino()
    }
}

#[test]
fn generated_psd_releases_balance_with_other_production_and_pass_every_audit() {
    let f = fixture();
    for seed in 1..=3u64 {
        let body = materia_testkit::psd_csv(&materia_testkit::PsdSpec {
            min_bytes: 400_000,
            seed,
        });
        f.put_release("psd", (2026, seed as i64), &format!("g{seed}"), &body);
    }
    let report = transform(&f.store, &f.options).expect("generated data builds");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let lake = f.lake();
    let count = |sql: &str| -> i64 {
        lake.connection()
            .query_row(sql, [], |r| r.get(0))
            .expect(sql)
    };
    assert_eq!(
        count("SELECT count(DISTINCT attribute_id) FROM serving.psd_latest"),
        19
    );
    assert!(
        count(
            "SELECT count(*) FROM serving.coffee_balance \
             WHERE other_production > 0 AND arabica_production > 0 AND country_code <> 'WORLD'"
        ) > 0,
        "Other Production beside arabica"
    );
}
