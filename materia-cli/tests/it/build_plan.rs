//! `materia transform` when models, declarations or the storage version
//! change: republished with nothing new, refused when a dataset or model
//! would vanish by omission (exit 2) until `--drop` confirms it, `--plan`
//! telling why and writing nothing, `--select` and `--full-refresh`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use materia_core::landing::{LandingStore, NewRelease};
use serde_json::Value;

use crate::{Env, env};

const WEATHER: &str = r#"
[datasets.weather]
url = "https://example.org/rain.csv"
cadence = "daily"

[datasets.weather.table]
columns = ["Station VARCHAR", "Day DATE", "Rain (mm) DOUBLE"]
key = ["Station", "Day"]
"#;

impl Env {
    /// Lands `body` as `dataset`'s release of January 2026.
    fn land_release(&self, dataset: &str, body: &[u8]) {
        let store = LandingStore::open(&self.landing).expect("open");
        let release = NewRelease::new(dataset.parse().expect("valid"), 2026, 1)
            .expect("valid")
            .with_etag(Some(format!("{dataset}1").parse().expect("valid")));
        store
            .put(release, body)
            .expect("put")
            .landed()
            .expect("new");
    }

    /// A small PSD release.
    fn land_psd(&self) {
        let body = materia_testkit::psd_csv(&materia_testkit::PsdSpec {
            min_bytes: 20_000,
            seed: 1,
        });
        self.land_release("psd", &body);
    }

    fn inode(&self) -> u64 {
        fs::metadata(&self.duckdb).expect("published").ino()
    }

    /// Every file under the lakehouse's directory and the landing zone
    /// (its `.materia/` lock and ledger included), with its bytes.
    fn lake_files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for e in fs::read_dir(dir).expect("readable") {
                let path = e.expect("entry").path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.insert(path.clone(), fs::read(&path).expect("a file"));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.duckdb.parent().expect("dir"), &mut out);
        if !self.landing.starts_with(self.duckdb.parent().expect("dir")) {
            walk(&self.landing, &mut out);
        }
        out
    }

    /// `materia transform --plan ARGS`, checked to leave every file under the
    /// lakehouse's directory and the landing zone as it was.
    fn plan(&self, args: &[&str], models: Option<&Path>) -> Output {
        let before = self.lake_files();
        let mut cmd = self.materia();
        if let Some(dir) = models {
            cmd.env("MATERIA_MODELS", dir);
        }
        let out = cmd
            .args(["transform", "--plan"])
            .args(args)
            .output()
            .expect("runs");
        assert!(out.status.success(), "{out:?}");
        let after = self.lake_files();
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "the plan created or removed a file"
        );
        assert!(before == after, "the plan changed a file");
        out
    }

    fn scalar(&self, sql: &str) -> Value {
        let rows = self.json(&["query", sql, "--format", "json"]);
        rows[0]
            .as_object()
            .expect("a row")
            .values()
            .next()
            .expect("a column")
            .clone()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn an_edited_model_is_republished_and_a_removed_one_is_refused_until_dropped() {
    let e = env();
    e.land_psd();
    let dir = e.dir.path().join("models");
    fs::create_dir(&dir).expect("dir");
    let answer = |v: i32| {
        fs::write(
            dir.join("answer.sql"),
            format!(
                "-- model: serving.answer\n-- kind: table\n-- depends: serving.psd_latest\n\
                 CREATE OR REPLACE TABLE serving.answer AS SELECT {v} AS v;\n"
            ),
        )
        .expect("model")
    };
    let transform = |args: &[&str]| {
        e.materia()
            .env("MATERIA_MODELS", &dir)
            .arg("transform")
            .args(args)
            .output()
            .expect("runs")
    };
    answer(1);
    assert!(transform(&[]).status.success());
    answer(2);
    let edited = transform(&["--json"]);
    assert!(edited.status.success(), "{edited:?}");
    let report: Value = serde_json::from_slice(&edited.stdout).expect("JSON");
    assert!(report["published"].is_string(), "{report}");
    assert_eq!(e.scalar("SELECT v FROM serving.answer"), 2);
    let plain = text(&transform(&[]).stdout);
    assert!(plain.contains("nothing new"), "{plain}");
    let status = text(&e.run(&["status"]).stdout);
    assert!(
        status.contains(&format!("models: {}", dir.display())),
        "{status}"
    );

    fs::remove_file(dir.join("answer.sql")).expect("rm");
    let inode = e.inode();
    let refused = transform(&[]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let err = text(&refused.stderr);
    assert!(
        err.contains("model:serving.answer") && err.contains("--drop model:serving.answer"),
        "{err}"
    );
    assert_eq!(e.inode(), inode, "the published lakehouse is untouched");
    let plan = text(&e.plan(&[], Some(&dir)).stdout);
    assert!(
        plan.contains("drop model:serving.answer") && plan.contains("refused"),
        "{plan}"
    );

    let dropped = transform(&["--drop", "model:serving.answer"]);
    assert!(dropped.status.success(), "{dropped:?}");
    assert_eq!(
        e.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'answer'"),
        0
    );
}

#[test]
fn a_build_without_the_config_is_refused_and_the_plan_says_why() {
    let e = env();
    e.land_psd();
    e.land_release("weather", b"Station,Day,Rain (mm)\nKSEA,2026-01-01,3.5\n");
    let config = e.dir.path().join("weather.toml");
    fs::write(&config, WEATHER).expect("config");
    let with = e
        .materia()
        .env("MATERIA_CONFIG", &config)
        .arg("transform")
        .output()
        .expect("runs");
    assert!(with.status.success(), "{with:?}");
    let status = e.json(&["status", "--json"]);
    assert_eq!(
        status["lakehouse"]["sources"]["config"],
        config.to_string_lossy().as_ref(),
        "{status}"
    );

    let inode = e.inode();
    let refused = e.run(&["transform"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let err = text(&refused.stderr);
    for says in [
        "raw.weather_changes",
        "serving.weather_latest",
        "--drop dataset:weather",
        config.to_string_lossy().as_ref(),
    ] {
        assert!(err.contains(says), "{says:?} in {err}");
    }
    assert_eq!(e.inode(), inode);

    let plan: Value = serde_json::from_slice(&e.plan(&["--json"], None).stdout).expect("plan JSON");
    assert_eq!(plan["refused"], true, "{plan}");
    assert_eq!(plan["drops"][0]["removal"]["kind"], "dataset");
    assert_eq!(plan["drops"][0]["removal"]["name"], "weather");
    assert_eq!(
        plan["history"]["reasons"][0]["reason"],
        "declarations_changed"
    );
    assert_eq!(plan["history"]["reasons"][0]["datasets"][0], "weather");
    let words = text(&e.plan(&[], None).stdout);
    assert!(
        words.contains("the declaration changed for weather"),
        "{words}"
    );

    let dropped = e.run(&["transform", "--drop", "dataset:weather"]);
    assert!(dropped.status.success(), "{dropped:?}");
    assert_eq!(
        e.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'weather%'"),
        0
    );
    let bad = e.run(&["transform", "--drop", "weather"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("dataset:NAME"), "{bad:?}");
}

#[test]
fn storage_version_select_and_full_refresh_from_the_command_line() {
    let e = env();
    e.land_psd();
    assert!(e.run(&["transform"]).status.success());
    let version = "SELECT tags['storage_version'] FROM duckdb_databases() \
                   WHERE database_name = current_database()";
    assert_eq!(e.scalar(version), "v1.4.0+");
    let older = e.run(&["transform", "--storage-version", "v1.2.0"]);
    assert!(older.status.success(), "{older:?}");
    assert_eq!(
        e.scalar(version),
        "v1.2.0+",
        "rewritten in the asked version"
    );

    let unknown = e.run(&["transform", "--select", "serving.nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    let err = text(&unknown.stderr);
    assert!(
        err.contains("serving.nope") && err.contains("serving.coffee_balance"),
        "{err}"
    );

    let selected = e.json(&["transform", "--select", "serving.coffee_balance", "--json"]);
    let steps = selected["steps"].as_array().expect("steps");
    let balance = steps
        .iter()
        .find(|s| s["model"] == "serving.coffee_balance")
        .expect("ran");
    assert!(
        balance["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .any(|r| r["reason"] == "selected"),
        "{balance}"
    );

    let refreshed = e.json(&["transform", "--full-refresh", "--json"]);
    assert_eq!(refreshed["releases_loaded"], 1, "{refreshed}");
    assert!(refreshed["published"].is_string());
}
