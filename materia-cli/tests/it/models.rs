//! A data team's models as the binary runs them: `materia init`'s starter
//! project (the repository's `examples/`), `view` models and audits that
//! select their offending rows.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::{Env, env};

/// The repository's `examples/`.
fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

impl Env {
    /// Lands the shipped PSD sample through `extract`, as the tour does.
    fn land_sample(&self) {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../materia-core/tests/data/psd_coffee_sample.zip")
            .canonicalize()
            .expect("sample");
        let out = self.run(&["extract", "--url", &format!("file://{}", sample.display())]);
        assert!(out.status.success(), "{out:?}");
    }

    /// `transform --json --config {dir}/materia.toml --models {dir}/models`.
    fn transform_project(&self, dir: &Path) -> Output {
        let config = dir.join("materia.toml");
        let models = dir.join("models");
        self.materia()
            .args(["transform", "--json", "--config"])
            .arg(&config)
            .arg("--models")
            .arg(&models)
            .output()
            .expect("materia runs")
    }

    /// `transform --json --models {dir}` with the built-in datasets.
    fn transform_models(&self, dir: &Path) -> Output {
        self.materia()
            .args(["transform", "--json", "--models"])
            .arg(dir)
            .output()
            .expect("materia runs")
    }

    /// The one value `sql` selects from the published lakehouse.
    fn value(&self, sql: &str) -> Value {
        let rows = self.json(&["query", sql, "--format", "json"]);
        let row = rows[0].as_object().expect("a row");
        row.values().next().expect("a column").clone()
    }
}

/// Every file under `dir` (dotfiles included) by path relative to it, with
/// its bytes; each directory too, as `name/` (no bytes).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("readable") {
            let path = entry.expect("entry").path();
            let rel = path
                .strip_prefix(dir)
                .expect("inside")
                .display()
                .to_string();
            if path.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                stack.push(path);
            } else {
                out.insert(rel, fs::read(&path).expect("readable"));
            }
        }
    }
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The steps of a `transform --json` report, by model: their modes.
fn modes(report: &Value) -> BTreeMap<String, String> {
    report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().expect(k).to_owned();
            (text("model"), text("mode"))
        })
        .collect()
}

/// Runs `init DIR`.
fn init(e: &Env, dir: &Path) -> Output {
    e.materia()
        .arg("init")
        .arg(dir)
        .output()
        .expect("materia runs")
}

#[test]
fn init_writes_a_project_that_transform_builds_on_the_sample() {
    let e = env();
    let project = e.dir.path().join("project");
    let out = init(&e, &project);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for file in tree(&project).keys().filter(|f| !f.ends_with('/')) {
        assert!(text.contains(file.as_str()), "{file} not named: {text}");
    }
    assert!(
        text.contains("materia transform --config") && text.contains("--models"),
        "{text}"
    );

    e.land_sample();
    let out = e.transform_project(&project);
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let modes = modes(&report);
    assert_eq!(modes["serving.coffee_producers"], "table", "{modes:?}");
    assert_eq!(modes["serving.coffee_top_producers"], "view", "{modes:?}");
    assert_eq!(modes["coffee_checks"], "audit", "the audit ran: {modes:?}");
    assert_eq!(
        report["warnings"],
        Value::Array(vec![]),
        "the sample passes"
    );

    let producers = e.value("SELECT count(*) FROM serving.coffee_producers");
    assert!(producers.as_i64().expect("count") > 10, "{producers}");
    let top = e.value("SELECT count(*) FROM serving.coffee_top_producers");
    let top = top.as_i64().expect("count");
    assert!(
        (1..=10).contains(&top),
        "the (up to) ten largest producers: {top}"
    );
    let kind = e.value(
        "SELECT table_type FROM information_schema.tables \
         WHERE table_schema = 'serving' AND table_name = 'coffee_top_producers'",
    );
    assert_eq!(kind, "VIEW");
    // The declared dataset is loaded (no release of it landed: empty).
    assert_eq!(e.value("SELECT count(*) FROM serving.psd_sugar_latest"), 0);
}

#[test]
fn init_never_overwrites_and_writes_nothing_when_a_file_exists() {
    let e = env();
    for taken in ["models/coffee_checks.sql", ".env.example"] {
        let project = e.dir.path().join(taken.replace(['/', '.'], "_"));
        let path = project.join(taken);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, "mine\n").expect("write");
        let before = tree(&project);

        let out = init(&e, &project);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let message = stderr(&out);
        assert!(
            message.contains(&path.display().to_string()) && message.contains("already exists"),
            "{message}"
        );
        assert_eq!(fs::read(&path).expect("kept"), b"mine\n", "unchanged");
        assert_eq!(tree(&project), before, "nothing else written");
    }
}

#[test]
fn examples_are_what_init_writes_and_build_as_they_are() {
    let e = env();
    let project = e.dir.path().join("project");
    let out = init(&e, &project);
    assert!(out.status.success(), "{out:?}");
    let written = tree(&project);
    let shipped = tree(&examples());
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        shipped.keys().collect::<Vec<_>>(),
        "examples/ holds exactly the files init writes"
    );
    for (name, bytes) in &shipped {
        assert!(written[name] == *bytes, "{name} differs from examples/");
    }

    // The CI check of examples/: transform runs them as they are.
    e.land_sample();
    let out = e.transform_project(&examples());
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["warnings"], Value::Array(vec![]), "{report}");
    let top = e.value("SELECT count(*) FROM serving.coffee_top_producers");
    assert!(top.as_i64().expect("count") > 0, "{top}");
}

/// A models directory holding `files` (name, text).
fn models_dir(e: &Env, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = e.dir.path().join(name);
    fs::create_dir_all(&dir).expect("mkdir");
    for (file, text) in files {
        fs::write(dir.join(file), text).expect("write");
    }
    dir
}

const BRAZIL: &str = "-- model: serving.brazil\n-- kind: table\n-- depends: serving.coffee_balance\n\
    CREATE OR REPLACE TABLE serving.brazil AS\n\
    SELECT market_year, production FROM serving.coffee_balance WHERE country_code = 'BR';\n";

#[test]
fn a_failing_error_audit_exits_2_with_the_count_and_first_rows() {
    let e = env();
    e.land_sample();
    let audit = "-- model: checks\n-- kind: audit\n-- depends: serving.brazil\n\
        -- audit: error every Brazilian market year (to fail)\n\
        SELECT market_year, production\n\
        FROM serving.brazil ORDER BY market_year;\n";
    let dir = models_dir(
        &e,
        "failing",
        &[("brazil.sql", BRAZIL), ("checks.sql", audit)],
    );
    let out = e.transform_models(&dir);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let message = stderr(&out);
    assert!(!e.duckdb.exists(), "nothing published: {message}");

    // What it should show, read from a build without the audit.
    let ok = models_dir(&e, "ok", &[("brazil.sql", BRAZIL)]);
    assert!(e.transform_models(&ok).status.success());
    let years = e.value("SELECT count(*) FROM serving.brazil");
    let first = e.value("SELECT min(market_year) FROM serving.brazil");
    let at = format!("{}:5", dir.join("checks.sql").display());
    assert!(
        message.contains(&format!(
            "audit failed: every Brazilian market year (to fail) ({years} offending rows; {at}): first 5: (market_year={first}, production="
        )),
        "{message}"
    );
    assert_eq!(message.matches("(market_year=").count(), 5, "{message}");
}

#[test]
fn a_warn_audit_reports_the_count_and_first_rows_in_json() {
    let e = env();
    e.land_sample();
    let audit = "-- model: checks\n-- kind: audit\n-- depends: serving.brazil\n\
        -- audit: warn two market years\n\
        SELECT market_year, production FROM serving.brazil ORDER BY market_year LIMIT 2;\n\
        -- audit: warn nothing (passes)\n\
        SELECT * FROM serving.brazil WHERE production < 0;\n";
    let dir = models_dir(&e, "warn", &[("brazil.sql", BRAZIL), ("checks.sql", audit)]);
    let out = e.transform_models(&dir);
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let warnings = report["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert_eq!(
        (&w["severity"], &w["audit"], &w["rows"]),
        (&"warn".into(), &"two market years".into(), &2.into())
    );
    assert_eq!(w["at"], format!("{}:5", dir.join("checks.sql").display()));
    let rows = w["first_rows"].as_array().expect("first_rows");
    assert_eq!(rows.len(), 2);
    let first = e.value("SELECT min(market_year) FROM serving.brazil");
    assert_eq!(rows[0]["market_year"], first);
    let keys: Vec<&String> = rows[0].as_object().expect("object").keys().collect();
    assert_eq!(keys, ["market_year", "production"], "column order kept");

    // The text output names it briefly (publishing again from the history:
    // the published link removed, as on a development copy).
    fs::remove_file(&e.duckdb).expect("unpublish");
    let out = e
        .materia()
        .args(["transform", "--models"])
        .arg(&dir)
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "warning: audit two market years (2 offending rows; {}:5): (market_year={first}, ",
            dir.join("checks.sql").display()
        )),
        "{text}"
    );
}

#[test]
fn a_view_model_is_queried_and_an_unknown_kind_lists_the_kinds() {
    let e = env();
    e.land_sample();
    let view = "-- model: serving.brazil_view\n-- kind: view\n-- depends: serving.coffee_balance\n\
        CREATE OR REPLACE VIEW serving.brazil_view AS\n\
        SELECT market_year, production FROM serving.coffee_balance WHERE country_code = 'BR';\n";
    let dir = models_dir(&e, "view", &[("brazil_view.sql", view)]);
    let out = e.transform_models(&dir);
    assert!(out.status.success(), "{out:?}");
    let years = e.value("SELECT count(*) FROM serving.brazil_view");
    assert!(years.as_i64().expect("count") > 0, "{years}");
    let kind = e
        .value("SELECT table_type FROM information_schema.tables WHERE table_name = 'brazil_view'");
    assert_eq!(kind, "VIEW");

    let odd = "-- model: serving.odd\n-- kind: incremental\nSELECT 1;\n";
    let dir = models_dir(&e, "odd", &[("odd.sql", odd)]);
    let out = e.transform_models(&dir);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let message = stderr(&out);
    for part in [
        dir.join("odd.sql").display().to_string().as_str(),
        "\"incremental\"",
        "`table`, `view` or `audit`",
    ] {
        assert!(message.contains(part), "{part} not in: {message}");
    }
}

/// Review of issue 27: a mistyped models directory was "I/O error on
/// ./modelz", naming neither the flag nor the variable; two files declaring
/// one model named neither file.
#[test]
fn a_missing_models_dir_and_a_model_declared_twice_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    std::fs::create_dir(&landing).expect("landing");
    let out = crate::materia(&landing)
        .env("DUCKDB_PATH", dir.path().join("lake.duckdb"))
        .args(["transform", "--models"])
        .arg(dir.path().join("modelz"))
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("modelz") && err.contains("--models") && err.contains("MATERIA_MODELS"),
        "{err}"
    );

    let models = dir.path().join("models");
    std::fs::create_dir(&models).expect("models");
    for file in ["a.sql", "b.sql"] {
        std::fs::write(
            models.join(file),
            "-- model: serving.twice\n-- kind: table\nCREATE OR REPLACE TABLE serving.twice AS SELECT 1 AS x;\n",
        )
        .expect("write");
    }
    let out = crate::materia(&landing)
        .env("DUCKDB_PATH", dir.path().join("lake.duckdb"))
        .args(["transform", "--models"])
        .arg(&models)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("a.sql") && err.contains("b.sql") && err.contains("declared twice"),
        "{err}"
    );
}
