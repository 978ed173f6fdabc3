//! A build is a function of (landing zone, declarations, models, storage
//! version): a change to any is published even with nothing new, nothing
//! disappears by omission, the plan tells what a build would do without
//! writing, `--full-refresh` and `--select` rebuild what they say.
#![cfg(feature = "duckdb")]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use materia_core::dataset::Config;
use materia_core::transform::{
    BuildPlan, Model, RebuildReason, Removal, RunReason, StepMode, TransformReport, plan, transform,
};

use crate::{Fixture, fixture};

/// A small PSD-shaped release (`seed` varies its values).
fn psd(seed: u64) -> Vec<u8> {
    materia_testkit::psd_csv(&materia_testkit::PsdSpec {
        min_bytes: 20_000,
        seed,
    })
}

/// A `table` model `serving.NAME` built by `select`, depending on `depends`.
fn model(name: &str, depends: &str, select: &str) -> Model {
    Model::parse(
        format!("{name}.sql"),
        format!(
            "-- model: serving.{name}\n-- kind: table\n-- depends: {depends}\n\
             CREATE OR REPLACE TABLE serving.{name} AS {select};\n"
        ),
    )
    .expect("a valid model")
}

const WEATHER: &str = r#"
[datasets.weather]
url = "https://example.org/rain.csv"
cadence = "daily"

[datasets.weather.table]
columns = ["Station VARCHAR", "Day DATE", "Rain (mm) DOUBLE"]
key = ["Station", "Day"]
"#;

impl Fixture {
    fn build(&self) -> TransformReport {
        transform(&self.store, &self.options).expect("transform")
    }

    fn value<T: materia_core::transform::duckdb::types::FromSql>(&self, sql: &str) -> T {
        self.lake()
            .connection()
            .query_row(sql, [], |r| r.get(0))
            .expect(sql)
    }

    fn inode(&self) -> u64 {
        fs::metadata(&self.options.duckdb_path)
            .expect("published")
            .ino()
    }

    /// Every file under the fixture's directory (the lakehouse's, the
    /// history, the slots, the landing zone) with its bytes, and every
    /// directory.
    fn snapshot(&self) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
            for e in fs::read_dir(dir).expect("readable") {
                let path = e.expect("entry").path();
                if path.is_dir() {
                    out.insert(path.clone(), None);
                    walk(&path, out);
                } else {
                    out.insert(path.clone(), Some(fs::read(&path).expect("readable")));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.dir.path(), &mut out);
        out
    }

    /// The plan, checked to leave every file as it was.
    fn plan(&self) -> BuildPlan {
        let before = self.snapshot();
        let plan = plan(&self.store, &self.options).expect("plan");
        let after = self.snapshot();
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "the plan created or removed a file"
        );
        assert!(before == after, "the plan changed a file");
        plan
    }
}

/// Why `model` runs in `plan` (`None`: it does not).
fn reasons_in(plan: &BuildPlan, model: &str) -> Option<Vec<RunReason>> {
    plan.models
        .iter()
        .find(|m| m.model == model)
        .map(|m| m.reasons.clone())
}

/// Why `model` ran in `report` (`None`: it did not run).
fn ran(report: &TransformReport, model: &str) -> Option<Vec<RunReason>> {
    report
        .steps
        .iter()
        .find(|s| s.model == model && s.mode == StepMode::Table)
        .map(|s| s.reasons.clone())
}

#[test]
fn an_edited_model_is_published_with_nothing_new_and_again_when_reverted() {
    let mut f = fixture();
    f.put_release("psd", (2026, 1), "r1", &psd(1));
    f.options.models = vec![model("answer", "serving.psd_latest", "SELECT 1 AS v")];
    f.build();
    assert_eq!(f.value::<i32>("SELECT v FROM serving.answer"), 1);

    f.options.models = vec![model("answer", "serving.psd_latest", "SELECT 2 AS v")];
    let edited = f.build();
    assert!(
        edited.published.is_some(),
        "the new SQL is published: {edited:?}"
    );
    assert_eq!(f.value::<i32>("SELECT v FROM serving.answer"), 2);
    assert_eq!(
        ran(&edited, "serving.answer"),
        Some(vec![RunReason::SqlChanged])
    );
    assert!(
        ran(&edited, "serving.coffee_balance").is_none_or(|r| r == [RunReason::CatchUp]),
        "an unchanged model runs only to bring the slot level with the published build"
    );

    let inode = f.inode();
    let again = f.build();
    assert_eq!(again.published, None, "no change: nothing written");
    assert_eq!(f.inode(), inode);

    f.options.models = vec![model("answer", "serving.psd_latest", "SELECT 1 AS v")];
    let reverted = f.build();
    assert!(reverted.published.is_some(), "a revert is a change too");
    assert_eq!(f.value::<i32>("SELECT v FROM serving.answer"), 1);
}

/// The storage version the published file was written in, as DuckDB reports it.
fn storage_version(f: &Fixture) -> String {
    f.value::<String>(
        "SELECT tags['storage_version'] FROM duckdb_databases() WHERE NOT internal \
         AND database_name = current_database()",
    )
}

#[test]
fn a_changed_storage_version_rewrites_the_published_file_in_it() {
    let mut f = fixture();
    f.put_release("psd", (2026, 1), "r1", &psd(1));
    f.build();
    assert_eq!(storage_version(&f), "v1.4.0+");
    f.options.storage_version = "v1.2.0".into();
    let older = f.build();
    assert!(older.published.is_some(), "{older:?}");
    assert_eq!(storage_version(&f), "v1.2.0+");
    assert!(
        ran(&older, "serving.coffee_balance")
            .is_some_and(|r| matches!(r[0], RunReason::StorageVersionChanged { .. })),
        "{older:?}"
    );
    f.options.storage_version = "v1.4.0".into();
    f.build();
    assert_eq!(storage_version(&f), "v1.4.0+");
}

#[test]
fn a_build_without_the_config_is_refused_until_the_drop_is_confirmed() {
    let mut f = fixture();
    let config = Config::from_toml(WEATHER, "weather.toml").expect("config");
    f.options.tables = config.tables();
    f.options.sources.config = Some("/etc/materia/weather.toml".into());
    f.put_release(
        "weather",
        (2026, 1),
        "w1",
        b"Station,Day,Rain (mm)\nKSEA,2026-01-01,3.5\n",
    );
    f.put_release("psd", (2026, 1), "r1", &psd(1));
    f.build();
    assert_eq!(
        f.value::<i64>("SELECT count(*) FROM serving.weather_latest"),
        1
    );

    let before = f.snapshot();
    let inode = f.inode();
    f.options.tables = Config::default().tables();
    f.options.sources.config = None;
    let err = transform(&f.store, &f.options)
        .expect_err("refused")
        .to_string();
    for says in [
        "dataset:weather",
        "raw.weather_changes",
        "serving.weather_latest",
        "--drop dataset:weather",
        "/etc/materia/weather.toml",
        "MATERIA_CONFIG",
    ] {
        assert!(err.contains(says), "{says:?} in {err}");
    }
    assert_eq!(f.inode(), inode, "the published lakehouse is untouched");
    let after = f.snapshot();
    let changed: Vec<&PathBuf> = after
        .keys()
        .filter(|p| before.get(*p) != after.get(*p) && !p.ends_with("lakehouse.duckdb.lock"))
        .collect();
    assert!(
        changed.is_empty(),
        "the history and slots are untouched: {changed:?}"
    );

    f.options.drops = vec![Removal::Dataset("weather".into())];
    let dropped = f.build();
    assert!(dropped.published.is_some(), "{dropped:?}");
    assert_eq!(
        f.value::<i64>(
            "SELECT (SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'weather%') \
             + (SELECT count(*) FROM duckdb_views() WHERE view_name LIKE 'weather%')"
        ),
        0,
        "the weather tables are gone"
    );
    assert!(f.value::<i64>("SELECT count(*) FROM serving.psd_latest") > 0);
}

#[test]
fn a_removed_model_is_refused_until_the_drop_is_confirmed() {
    let mut f = fixture();
    f.put_release("psd", (2026, 1), "r1", &psd(1));
    f.options.models = vec![model("answer", "serving.psd_latest", "SELECT 1 AS v")];
    f.options.sources.models_dir = Some("/srv/models".into());
    f.build();
    let inode = f.inode();
    f.options.models = Vec::new();
    f.options.sources.models_dir = None;
    let err = transform(&f.store, &f.options)
        .expect_err("refused")
        .to_string();
    for says in [
        "model:serving.answer",
        "--drop model:serving.answer",
        "/srv/models",
    ] {
        assert!(err.contains(says), "{says:?} in {err}");
    }
    assert_eq!(f.inode(), inode);
    assert_eq!(f.value::<i32>("SELECT v FROM serving.answer"), 1);

    f.options.drops = vec![Removal::Model("serving.answer".into())];
    assert!(f.build().published.is_some());
    assert_eq!(
        f.value::<i64>("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'answer'"),
        0
    );
    // Gone from both slots: a later build, in place in the other one, has none either.
    f.put_release("psd", (2026, 2), "r2", &psd(2));
    f.build();
    assert_eq!(
        f.value::<i64>("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'answer'"),
        0
    );
}

#[test]
fn the_plan_names_each_reason_and_writes_nothing() {
    let mut f = fixture();
    f.options.tables = Config::from_toml(WEATHER, "weather.toml")
        .expect("config")
        .tables();
    f.put_release("psd", (2026, 1), "r1", &psd(1));
    f.options.models = vec![
        model("answer", "serving.psd_latest", "SELECT 1 AS v"),
        model(
            "twice",
            "serving.answer",
            "SELECT 2 * v AS v FROM serving.answer",
        ),
    ];
    let first = f.plan();
    assert!(first.publishes && first.history.rebuilt, "{first:?}");
    assert_eq!(first.history.reasons, [RebuildReason::NoHistory]);
    assert_eq!(
        (first.new_releases.len(), first.new_releases[0].count),
        (1, 1),
        "{first:?}"
    );
    f.build();

    let idle = f.plan();
    assert!(
        !idle.publishes && idle.models.is_empty() && !idle.history.rebuilt,
        "{idle:?}"
    );

    f.options.models[0] = model("answer", "serving.psd_latest", "SELECT 3 AS v");
    let edited = f.plan();
    assert!(edited.publishes && !edited.history.rebuilt, "{edited:?}");
    assert_eq!(
        reasons_in(&edited, "serving.answer"),
        Some(vec![RunReason::SqlChanged])
    );
    assert_eq!(
        reasons_in(&edited, "serving.twice"),
        Some(vec![RunReason::DependsOn {
            model: "serving.answer".into()
        }])
    );
    assert_eq!(reasons_in(&edited, "serving.coffee_balance"), None);

    f.options.storage_version = "v1.2.0".into();
    let version = f.plan();
    assert!(
        reasons_in(&version, "serving.coffee_balance")
            .is_some_and(|r| matches!(r[0], RunReason::StorageVersionChanged { .. })),
        "{version:?}"
    );
    f.options.storage_version = "v1.4.0".into();

    f.options.select = vec!["serving.answer".into()];
    let selected = f.plan();
    assert!(
        reasons_in(&selected, "serving.answer").is_some_and(|r| r.contains(&RunReason::Selected))
    );
    f.options.select.clear();

    f.options.full_refresh = true;
    let refresh = f.plan();
    assert_eq!(refresh.history.reasons, [RebuildReason::FullRefresh]);
    assert_eq!(
        reasons_in(&refresh, "serving.coffee_balance").map(|r| r[0].clone()),
        Some(RunReason::FullRefresh)
    );
    f.options.full_refresh = false;

    f.put_release("psd", (2026, 2), "r2", &psd(2));
    let new = f.plan();
    assert_eq!(new.new_releases[0].count, 1, "{new:?}");
    assert_eq!(
        reasons_in(&new, "serving.psd_latest").map(|r| r[0].clone()),
        Some(RunReason::NewData)
    );

    f.options.tables = Config::default().tables();
    let without = f.plan();
    assert!(without.refused, "{without:?}");
    assert_eq!(without.drops[0].removal, Removal::Dataset("weather".into()));
    assert!(
        without.drops[0]
            .tables
            .contains(&"serving.weather_latest".to_owned())
    );
    assert_eq!(
        without.history.reasons,
        [RebuildReason::DeclarationsChanged {
            datasets: vec!["weather".into()]
        }]
    );
    f.options.drops = vec![Removal::Dataset("weather".into())];
    assert!(!f.plan().refused);
}

/// The history's id as the published file has it.
fn history_id(f: &Fixture) -> String {
    f.value("SELECT history_id FROM materia.build")
}

#[test]
fn full_refresh_rebuilds_the_history_and_every_model_into_a_fresh_file() {
    let mut f = fixture();
    f.put_release("psd", (2026, 1), "r1", &psd(1));
    f.put_release("psd", (2026, 2), "r2", &psd(2));
    f.build();
    let (id, releases) = (
        history_id(&f),
        f.value::<i64>("SELECT count(*) FROM raw.releases"),
    );
    f.options.full_refresh = true;
    let report = f.build();
    assert!(report.published.is_some());
    assert_ne!(history_id(&f), id, "a new history");
    assert_eq!(
        f.value::<i64>("SELECT count(*) FROM raw.releases"),
        releases
    );
    assert_eq!(report.releases_loaded, 2, "reloaded from the landing zone");
    for m in [
        "serving.releases",
        "serving.psd_latest",
        "serving.coffee_balance",
    ] {
        assert_eq!(ran(&report, m), Some(vec![RunReason::FullRefresh]), "{m}");
    }
    let file = report
        .steps
        .iter()
        .find(|s| s.model == "lakehouse")
        .expect("step");
    assert_eq!(file.mode, StepMode::Rebuild, "a fresh file");
}

#[test]
fn select_rebuilds_those_models_and_their_dependents_only() {
    let mut f = fixture();
    f.put_release("psd", (2026, 1), "r1", &psd(1));
    f.options.models = vec![
        model("rnd", "serving.psd_latest", "SELECT random() AS v"),
        model("rnd_child", "serving.rnd", "SELECT v FROM serving.rnd"),
        model("other", "serving.psd_latest", "SELECT random() AS v"),
    ];
    f.build();
    let values = |f: &Fixture| {
        (
            f.value::<f64>("SELECT v FROM serving.rnd"),
            f.value::<f64>("SELECT v FROM serving.rnd_child"),
            f.value::<f64>("SELECT v FROM serving.other"),
        )
    };
    let (rnd, _, other) = values(&f);
    assert_eq!(f.build().published, None, "nothing new, nothing selected");
    assert_eq!(values(&f).0, rnd);

    f.options.select = vec!["serving.rnd".into()];
    let report = f.build();
    let (rnd2, child2, other2) = values(&f);
    assert_ne!(rnd2, rnd, "selected: rebuilt");
    assert_eq!(child2, rnd2, "its dependent too");
    assert_eq!(other2, other, "the rest keeps the published table");
    assert_eq!(ran(&report, "serving.rnd"), Some(vec![RunReason::Selected]));
    assert_eq!(
        ran(&report, "serving.rnd_child"),
        Some(vec![RunReason::DependsOn {
            model: "serving.rnd".into()
        }])
    );
    assert_eq!(ran(&report, "serving.other"), None);

    // Twice more, each slot in place in turn: only `other` changes.
    f.options.select = vec!["serving.other".into()];
    for _ in 0..2 {
        let before = values(&f);
        f.build();
        let after = values(&f);
        assert_eq!(
            (after.0, after.1),
            (before.0, before.1),
            "not selected: unchanged"
        );
        assert_ne!(after.2, before.2, "selected: rebuilt");
    }

    f.options.select = vec!["serving.nope".into()];
    let err = transform(&f.store, &f.options)
        .expect_err("unknown")
        .to_string();
    assert!(
        err.contains("serving.nope") && err.contains("serving.rnd_child"),
        "{err}"
    );
}

#[test]
fn the_plan_names_a_release_landed_out_of_order() {
    let f = fixture();
    f.put_release("psd", (2026, 3), "r3", &psd(3));
    f.build();
    let key = f.put_release("psd", (2026, 2), "r2", &psd(2));
    let plan = f.plan();
    assert!(plan.history.rebuilt && plan.publishes, "{plan:?}");
    assert_eq!(
        plan.history.reasons,
        [RebuildReason::OutOfOrder {
            release: key.to_string()
        }]
    );
    assert_eq!(plan.new_releases[0].count, 2, "every release, reloaded");
    assert_eq!(
        reasons_in(&plan, "serving.psd_latest"),
        Some(vec![RunReason::HistoryRebuilt])
    );
}

/// Review of issue 27: a build that failed after a model ran left its table in
/// the slot, and a later build that ran only another model published that
/// table as the current SQL's. A failed build voids the slot's record.
#[test]
fn a_failed_build_leaves_nothing_a_later_build_publishes() {
    let mut f = fixture();
    f.put_release("psd", (2026, 1), "r1", &psd(1));
    let other = |v: i32| model("other", "serving.psd_latest", &format!("SELECT {v} AS v"));
    let answer = |v: i32| model("answer", "serving.psd_latest", &format!("SELECT {v} AS v"));
    // Two builds: both slots hold answer = 1.
    f.options.models = vec![answer(1), other(1)];
    f.build();
    f.options.models = vec![answer(1), other(2)];
    f.build();
    // An edit of answer with a broken model after it: the build fails after
    // answer = 99 ran in the slot.
    let broken = Model::parse(
        "broken.sql",
        "-- model: serving.broken\n-- kind: table\n-- depends: serving.answer\n\
         CREATE OR REPLACE TABLE serving.broken AS SELECT no_such_column FROM serving.answer;\n",
    )
    .expect("parses");
    f.options.models = vec![answer(99), other(2), broken];
    transform(&f.store, &f.options).expect_err("the broken model fails the build");
    assert_eq!(
        f.value::<i32>("SELECT v FROM serving.answer"),
        1,
        "not published"
    );
    // Reverted, then only `other` edited: answer must stay what its SQL says.
    f.options.models = vec![answer(1), other(3)];
    let report = f.build();
    assert!(report.published.is_some(), "{report:?}");
    assert_eq!(f.value::<i32>("SELECT v FROM serving.other"), 3);
    assert_eq!(
        f.value::<i32>("SELECT v FROM serving.answer"),
        1,
        "the failed build's table is not published"
    );
    assert_eq!(
        f.value::<i64>(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'broken' \
             AND database_name = current_database()"
        ),
        0,
        "nor what the failed build left"
    );
}

/// Review of issue 27: a caller's model could take `raw.releases` or
/// `materia.build`, or an empty name that no `--drop` could confirm.
#[test]
fn a_callers_model_is_named_schema_dot_name_outside_materias_schemas() {
    for name in [
        "raw.releases",
        "materia.build",
        "History.x",
        "",
        "serving",
        "serving.\"My View\"",
        "a.b.c",
        "serving.1x",
    ] {
        let sql = format!("-- model: {name}\n-- kind: table\nSELECT 1;\n");
        let err = Model::parse("m.sql", sql).expect_err(name).to_string();
        assert!(
            err.contains("m.sql") && err.contains("-- model:"),
            "{name}: {err}"
        );
    }
    for (name, kind) in [
        ("serving.brazil_2", "table"),
        ("checks", "audit"),
        ("mine.x", "view"),
    ] {
        let sql = format!("-- model: {name}\n-- kind: {kind}\nSELECT 1;\n");
        Model::parse("m.sql", sql).expect(name);
    }
    // A `table` model that leaves no table of its name fails the build.
    let mut f = fixture();
    f.put_release("psd", (2026, 1), "r1", &psd(1));
    f.options.models = vec![
        Model::parse(
            "ghost.sql",
            "-- model: serving.ghost\n-- kind: table\nSELECT 1;\n",
        )
        .expect("parses"),
    ];
    let err = transform(&f.store, &f.options)
        .expect_err("no table")
        .to_string();
    assert!(
        err.contains("ghost.sql") && err.contains("no table serving.ghost"),
        "{err}"
    );
}
