//! The page at `/`, rendered by headless Chromium against real builds: the
//! World balance with units, the revision history, the CFTC panel, CSV
//! links, and a hostile country name shown as text under a CSP.

use std::io::Read;
use std::path::Path;

use materia_core::transform::transform;
use serde_json::Value;

use super::{get, serve};
use crate::{Fixture, fixture};

/// Headless Chromium from Debian (`MATERIA_TEST_CHROMIUM`, default
/// `/usr/bin/chromium`); missing, the test fails saying how to install it.
fn chromium() -> String {
    let path =
        std::env::var("MATERIA_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&path).exists(),
        "no browser at {path}: apt-get install chromium (or set MATERIA_TEST_CHROMIUM); .ci/run does this"
    );
    path
}

/// The page as Chromium renders it, scripts run (`--dump-dom` after the
/// page's fetches, within a virtual time budget).
fn rendered(url: &str, profile: &Path, extra: &[&str]) -> String {
    let out = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=15000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// Lands a shipped sample (`psd_coffee_sample.zip`, `cot_disagg_sample.zip`)
/// through extract, as a real cycle would.
fn extract_sample(f: &Fixture, mut spec: materia_core::dataset::DatasetSpec, file: &str) {
    spec.url = format!("file://{DATA}/{file}");
    materia_core::extract::Extractor::new(materia_core::dataset::Limits::default())
        .expect("client")
        .fetch(&f.store, &spec)
        .expect("lands the sample");
}

/// The PSD sample's CSV.
fn psd_sample_csv() -> String {
    let file = std::fs::File::open(format!("{DATA}/psd_coffee_sample.zip")).expect("sample");
    let mut archive = zip::ZipArchive::new(file).expect("zip");
    let mut text = String::new();
    archive
        .by_index(0)
        .expect("member")
        .read_to_string(&mut text)
        .expect("utf-8");
    text
}

fn json(url: &str) -> Value {
    serde_json::from_slice(&get(url).bytes().expect("body")).expect("json")
}

/// `n` with thousands separators, as the page writes it.
fn grouped(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The `href` of the element with `id` in a rendered DOM (`&amp;` undone).
fn href_of(dom: &str, id: &str) -> String {
    let tag = dom
        .split(&format!("id=\"{id}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let tag = &tag[..tag.find('>').expect("tag end")];
    let href = tag
        .split("href=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("#{id} has no href: {tag}"));
    href[..href.find('"').expect("quote")].replace("&amp;", "&")
}

#[test]
fn the_page_renders_the_world_balance_with_units_csv_links_and_the_cot_panel_in_a_browser() {
    let f = fixture();
    extract_sample(
        &f,
        materia_core::dataset::DatasetSpec::psd(),
        "psd_coffee_sample.zip",
    );
    extract_sample(
        &f,
        materia_core::dataset::DatasetSpec::cot(),
        "cot_disagg_sample.zip",
    );
    transform(&f.store, &f.options).expect("build");
    let s = serve(&f);

    let page = get(&format!("{}/", s.base));
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/html")
    );

    let dom = rendered(
        &format!("{}/", s.base),
        &f.dir.path().join("chromium"),
        &["--dump-dom"],
    );
    assert!(
        dom.contains("data-ready=\"1\""),
        "the page's script did not finish: {dom}"
    );
    // The newest World market year, as the API has it and as the page shows it.
    let api = json(&format!(
        "{}/v1/tables/serving.coffee_balance?country_code=WORLD&columns=market_year,production",
        s.base
    ));
    let newest = api["rows"]
        .as_array()
        .expect("rows")
        .last()
        .expect("a year")
        .clone();
    let year = newest["market_year"].as_i64().expect("year");
    let production = newest["production"].as_f64().expect("production").round() as i64;
    let row = format!(
        "<tr data-year=\"{year}\"><td>{year}</td><td class=\"production\">{}</td>",
        grouped(production)
    );
    assert!(dom.contains(&row), "expected {row} in the rendered page");
    assert!(dom.contains("<polyline"), "the chart was drawn");
    // Units on the figures, the release month rather than a build id.
    assert!(dom.matches("1000 60-kg bags").count() >= 5, "units shown");
    let releases = json(&format!("{}/v1/releases", s.base));
    let psd = releases["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["dataset"] == "psd" && r["is_latest"] == true)
        .expect("the psd release")
        .clone();
    let month = format!(
        "<span id=\"release\">{}-{:02}</span>",
        psd["year"],
        psd["month"].as_i64().expect("month")
    );
    assert!(dom.contains(&month), "expected {month}");
    let revisions = dom
        .split("id=\"revisions\"")
        .nth(1)
        .expect("revisions table");
    assert!(revisions.contains("<td>"), "a revision history is shown");
    assert!(
        dom.contains("revisions of Brazil (the World total has no revision history"),
        "the World's revisions say whose they are"
    );
    // The CSV link under the balance downloads that table from the API.
    let link = href_of(&dom, "balance-csv");
    assert!(
        link.starts_with("/v1/tables/serving.coffee_balance.csv?"),
        "{link}"
    );
    let csv = get(&format!("{}{link}", s.base));
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/csv")
    );
    let csv = csv.text().expect("csv");
    assert!(
        csv.starts_with(
            "market_year,production,domestic_consumption,ending_stocks,stocks_to_use\n"
        ),
        "{csv}"
    );
    assert!(
        csv.lines().any(|l| l.starts_with(&format!("{year},"))),
        "the newest year is in the download"
    );
    // The CFTC panel: shown, with the newest managed-money net as the API has it.
    let cot = dom
        .split("<section id=\"cot\"")
        .nth(1)
        .expect("cot section");
    assert!(
        !cot[..cot.find('>').expect("tag")].contains("hidden"),
        "the COT panel is shown"
    );
    let net = json(&format!(
        "{}/v1/tables/serving.cot_coffee?columns=managed_money_net&sort=-report_date&limit=1",
        s.base
    ))["rows"][0]["managed_money_net"]
        .as_i64()
        .expect("net");
    let shown = format!("<td class=\"net\">{}</td>", grouped(net).replace("-,", "-"));
    assert!(cot.contains(&shown), "expected {shown} in the COT panel");
    assert!(href_of(&dom, "cot-csv").starts_with("/v1/tables/serving.cot_coffee.csv?"));

    // The screenshot step of the README, as a check that it works.
    let shot = f.dir.path().join("page.png");
    rendered(
        &format!("{}/", s.base),
        &f.dir.path().join("chromium-shot"),
        &[
            "--window-size=1000,900",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    assert!(std::fs::metadata(&shot).expect("screenshot").len() > 10_000);
}

/// A country name that runs script if inserted as HTML.
const HOSTILE: &str = "<img src=x onerror=document.title='PWNED'>";

#[test]
fn a_hostile_country_name_renders_as_text_and_a_missing_one_renders_under_a_csp() {
    let f = fixture();
    let csv = psd_sample_csv()
        .replace(",\"Brazil\",", &format!(",\"{HOSTILE}\","))
        .replace(",\"Colombia\",", ",,");
    assert!(csv.contains(HOSTILE) && !csv.contains("Colombia"));
    f.put_release("psd", (2026, 11), "hostile", csv.as_bytes());
    transform(&f.store, &f.options).expect("build");
    let s = serve(&f);

    let page = get(&format!("{}/", s.base));
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = page.text().expect("html");
    assert!(
        !html.contains("<script>") && !html.contains("style=\""),
        "nothing inline for the CSP to allow"
    );

    let dom = rendered(
        &format!("{}/", s.base),
        &f.dir.path().join("chromium"),
        &["--dump-dom"],
    );
    assert!(
        dom.contains("data-ready=\"1\""),
        "the page did not finish: {dom}"
    );
    assert!(
        dom.contains("<title>Materia — coffee balance</title>"),
        "the title changed: a script from the data ran"
    );
    assert!(!dom.contains("PWNED</title>"));
    assert!(!dom.contains("<img"), "the name became an element");
    // The name is there, as text, exactly.
    assert!(
        dom.contains("&lt;img src=x onerror=document.title='PWNED'&gt;"),
        "the name is shown literally"
    );
    // No name: the code stands in.
    assert!(dom.contains("<option value=\"CO\">CO</option>"), "{dom}");
}
