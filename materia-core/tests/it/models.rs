//! Models as a data team writes them: `view` models run where tables run,
//! audits select their offending rows (dbt's shape) and the older
//! `count(*)` form keeps working; a kind nobody can use is named.
#![cfg(feature = "duckdb")]

use materia_core::transform::{AuditFinding, Model, StepMode, TransformReport, transform};

use crate::{Fixture, fixture};

/// A fixture with one small PSD-shaped release landed.
fn landed() -> Fixture {
    let f = fixture();
    let body = materia_testkit::psd_csv(&materia_testkit::PsdSpec {
        min_bytes: 60_000,
        seed: 1,
    });
    f.put_release("psd", (2026, 1), "m1", &body);
    f
}

/// Builds with the caller's `models` (file name, text).
fn build(f: &Fixture, models: &[(&str, &str)]) -> materia_core::Result<TransformReport> {
    let mut options = f.options.clone();
    options.models = models
        .iter()
        .map(|(file, text)| Model::parse(*file, *text).expect("parses"))
        .collect();
    transform(&f.store, &options)
}

/// An audit model of `audits` (each `(severity description, statement)`).
fn audit_model(audits: &[(&str, &str)]) -> String {
    let mut text = "-- model: checks\n-- kind: audit\n".to_owned();
    for (what, sql) in audits {
        text.push_str(&format!("-- audit: {what}\n{sql}\n"));
    }
    text
}

fn finding<'a>(report: &'a TransformReport, audit: &str) -> Option<&'a AuditFinding> {
    report.warnings.iter().find(|w| w.audit == audit)
}

#[test]
fn audits_select_offending_rows_and_the_count_form_keeps_working() {
    let f = landed();
    let checks = audit_model(&[
        ("warn no rows", "SELECT * FROM range(0);"),
        (
            "warn seven rows",
            "SELECT range AS n, 'row ' || range AS label FROM range(7) ORDER BY n;",
        ),
        ("warn a count of zero", "SELECT count(*) FROM range(0);"),
        ("warn a count of three", "SELECT count(*) FROM range(3);"),
        ("warn a column count", "SELECT count(range) FROM range(4);"),
        (
            "warn an aliased count",
            "SELECT count(*) AS n FROM range(0);",
        ),
        ("warn many rows", "SELECT * FROM range(100000);"),
    ]);
    let report = build(&f, &[("checks.sql", &checks)]).expect("warnings only");
    for passing in ["no rows", "a count of zero"] {
        assert!(finding(&report, passing).is_none(), "{:?}", report.warnings);
    }

    let seven = finding(&report, "seven rows").expect("found");
    assert_eq!(seven.rows, 7);
    assert_eq!(seven.at, "checks.sql:6");
    assert_eq!(seven.first_rows.columns, ["n", "label"]);
    assert_eq!(seven.first_rows.rows.len(), 5, "the first 5");
    assert_eq!(
        seven.first_rows.rows[0],
        vec![serde_json::json!(0), serde_json::json!("row 0")]
    );
    assert_eq!(
        seven.summary(),
        "seven rows (7 offending rows; checks.sql:6): first 5: (n=0, label=row 0); \
         (n=1, label=row 1); (n=2, label=row 2); (n=3, label=row 3); (n=4, label=row 4)"
    );

    // The count(*) form: one row, one integer column named count_star() or count(x).
    for (audit, rows) in [("a count of three", 3), ("a column count", 4)] {
        let counted = finding(&report, audit).expect(audit);
        assert_eq!(counted.rows, rows, "{audit}");
        assert!(
            counted.first_rows.rows.is_empty(),
            "{audit}: a count has no rows"
        );
    }
    // An aliased count is one offending row, and the summary says why.
    let aliased = finding(&report, "an aliased count").expect("found");
    assert_eq!(aliased.rows, 1);
    assert!(
        aliased.summary().contains("a count of 0?"),
        "{}",
        aliased.summary()
    );
    // Counted across batches, with only the first rows kept.
    let many = finding(&report, "many rows").expect("found");
    assert_eq!((many.rows, many.first_rows.rows.len()), (100_000, 5));
}

#[test]
fn a_failing_error_audit_names_its_count_first_rows_and_line() {
    let f = landed();
    let rows = audit_model(&[(
        "error two rows",
        "SELECT range AS n, NULL AS note FROM range(2);",
    )]);
    let err = build(&f, &[("rows.sql", &rows)]).expect_err("fails");
    assert!(
        err.to_string().contains(
            "audit failed: two rows (2 offending rows; rows.sql:4): (n=0, note=NULL); (n=1, note=NULL)"
        ),
        "{err}"
    );
    assert!(!f.options.duckdb_path.exists(), "nothing published");

    let counted = audit_model(&[
        ("error a count of zero", "SELECT count(*) FROM range(0);"),
        ("error a count of three", "SELECT count(*) FROM range(3);"),
    ]);
    let err = build(&f, &[("counted.sql", &counted)]).expect_err("fails");
    assert!(
        err.to_string()
            .ends_with("audit failed: a count of three (3 offending rows; counted.sql:6)"),
        "{err}"
    );
    // The built-in audits still pass on their own.
    build(&f, &[]).expect("builds");
}

#[test]
fn view_models_run_where_tables_run_in_dependency_order() {
    let f = landed();
    let table = "-- model: serving.brazil\n-- kind: table\n-- depends: serving.psd_latest\n\
        CREATE OR REPLACE TABLE serving.brazil AS\n\
        SELECT * FROM serving.psd_latest WHERE country_code = 'BR';\n";
    let view = "-- model: serving.brazil_production\n-- kind: view\n-- depends: serving.brazil\n\
        CREATE OR REPLACE VIEW serving.brazil_production AS\n\
        SELECT market_year, value FROM serving.brazil WHERE attribute_id = '028';\n";
    // A table reading the view.
    let summary = "-- model: serving.brazil_years\n-- kind: table\n\
        -- depends: serving.brazil_production\n\
        CREATE OR REPLACE TABLE serving.brazil_years AS\n\
        SELECT count(*) AS years FROM serving.brazil_production;\n";
    let report =
        build(&f, &[("a.sql", summary), ("b.sql", view), ("c.sql", table)]).expect("builds");
    let order: Vec<(&str, StepMode)> = report
        .steps
        .iter()
        .filter(|s| s.model.starts_with("serving.brazil"))
        .map(|s| (s.model.as_str(), s.mode))
        .collect();
    assert_eq!(
        order,
        [
            ("serving.brazil", StepMode::Table),
            ("serving.brazil_production", StepMode::View),
            ("serving.brazil_years", StepMode::Table),
        ]
    );
    let lake = f.lake();
    let (kind, years): (String, i64) = lake
        .connection()
        .query_row(
            "SELECT (SELECT table_type FROM information_schema.tables \
                     WHERE table_name = 'brazil_production'), \
                    (SELECT years FROM serving.brazil_years)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("query");
    assert_eq!(kind, "VIEW");
    assert!(years > 0);
    drop(lake);

    // A `view` model that makes a table is told so, by file.
    let f = landed();
    let wrong = "-- model: serving.not_a_view\n-- kind: view\n-- depends: serving.psd_latest\n\
        CREATE OR REPLACE TABLE serving.not_a_view AS SELECT 1 AS x;\n";
    let err = build(&f, &[("wrong.sql", wrong)]).expect_err("no view");
    let text = err.to_string();
    assert!(
        text.contains("wrong.sql") && text.contains("no view serving.not_a_view"),
        "{text}"
    );
}

#[test]
fn a_kind_a_caller_cannot_use_is_named_with_the_kinds_it_can() {
    for (header, found) in [
        ("-- kind: incremental\n", "\"incremental\""),
        ("", "no `-- kind:` header"),
        ("-- kind: setup\n", "\"setup\" is built in"),
        ("-- kind: load\n", "\"load\" is built in"),
    ] {
        let text = format!("-- model: serving.x\n{header}SELECT 1;\n");
        let err = Model::parse("models/x.sql", text).expect_err(found);
        let message = err.to_string();
        assert!(
            message.contains("models/x.sql")
                && message.contains(found)
                && message.contains("`table`, `view` or `audit`"),
            "{message}"
        );
    }
}
