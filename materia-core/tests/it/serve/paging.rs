//! The table API for apps: column order, paging with `next` links, sorting,
//! counts, and every view and user model's table listed and readable.

use std::collections::BTreeSet;

use materia_core::transform::{Model, transform};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{get, land, serve};
use crate::fixture;

/// The keys of each row of `{"rows": [...]}`, in the order the body has them
/// (serde_json's `Value` sorts object keys: this reads the text's order).
fn row_key_order(body: &[u8]) -> Vec<Vec<String>> {
    struct Rows;
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a row object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                keys.push(k);
            }
            Ok(keys)
        }
    }
    struct RowKeys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for RowKeys {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(Keys).map(RowKeys)
        }
    }
    struct List(Vec<Vec<String>>);
    impl<'de> serde::Deserialize<'de> for List {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Vec<Vec<String>>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("rows")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                    let mut out = Vec::new();
                    while let Some(RowKeys(k)) = seq.next_element()? {
                        out.push(k);
                    }
                    Ok(out)
                }
            }
            d.deserialize_seq(V).map(List)
        }
    }
    impl<'de> Visitor<'de> for Rows {
        type Value = Vec<Vec<String>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an answer")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut rows = Vec::new();
            while let Some(k) = map.next_key::<String>()? {
                if k == "rows" {
                    rows = map.next_value::<List>()?.0;
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(rows)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    de.deserialize_map(Rows).expect("an answer with rows")
}

fn json(url: &str) -> (Value, Vec<u8>) {
    let r = get(url);
    assert_eq!(r.status(), 200, "{url}");
    let bytes = r.bytes().expect("body").to_vec();
    (serde_json::from_slice(&bytes).expect("json"), bytes)
}

#[test]
fn walking_next_links_returns_every_row_once_in_order_with_the_columns_in_table_order() {
    let f = fixture();
    land(&f, 1);
    transform(&f.store, &f.options).expect("build");
    let s = serve(&f);
    let (tables, _) = json(&format!("{}/v1/tables", s.base));
    let declared: Vec<String> = tables["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == "serving.psd_latest")
        .expect("listed")["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect();

    // All rows at once, and the total.
    let (all, bytes) = json(&format!(
        "{}/v1/tables/serving.psd_latest?limit=10000&count=true",
        s.base
    ));
    let every = all["rows"].as_array().expect("rows").clone();
    assert!(every.len() > 250, "{}", every.len());
    assert_eq!(all["count"], every.len(), "count=true gives the total");
    assert_eq!(all["truncated"], false);
    assert!(all.get("next").is_none());
    for keys in row_key_order(&bytes).iter().take(3) {
        assert_eq!(keys, &declared, "JSON rows keep the table's column order");
    }
    let (picked, bytes) = json(&format!(
        "{}/v1/tables/serving.psd_latest?columns=value,country_code&limit=1",
        s.base
    ));
    assert_eq!(row_key_order(&bytes)[0], ["value", "country_code"]);
    assert_eq!(picked["truncated"], true);

    // Page by page, following `next`: the same rows, once each, in order.
    let mut url = format!("{}/v1/tables/serving.psd_latest?limit=100", s.base);
    let mut walked = Vec::new();
    let mut pages = 0;
    loop {
        let (page, _) = json(&url);
        pages += 1;
        walked.extend(page["rows"].as_array().expect("rows").iter().cloned());
        match page.get("next").and_then(Value::as_str) {
            Some(next) => {
                assert_eq!(page["truncated"], true);
                url = format!("{}{next}", s.base);
            }
            None => {
                assert_eq!(page["truncated"], false);
                break;
            }
        }
    }
    assert_eq!(pages, every.len().div_ceil(100));
    assert_eq!(walked, every, "the pages are the whole answer, in order");

    // Sorted descending, then by every column; CSV pages carry the link.
    let (sorted, _) = json(&format!(
        "{}/v1/tables/serving.psd_latest?sort=-market_year,country_code&limit=50",
        s.base
    ));
    let years: Vec<i64> = sorted["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["market_year"].as_i64().expect("year"))
        .collect();
    let newest = every
        .iter()
        .map(|r| r["market_year"].as_i64().expect("year"))
        .max()
        .expect("a year");
    assert_eq!(years[0], newest);
    assert!(years.windows(2).all(|w| w[0] >= w[1]), "{years:?}");
    let csv = get(&format!(
        "{}/v1/tables/serving.psd_latest.csv?limit=10&count=true",
        s.base
    ));
    let link = csv.headers()["link"].to_str().expect("link").to_owned();
    assert_eq!(
        link,
        "</v1/tables/serving.psd_latest.csv?limit=10&count=true&offset=10>; rel=\"next\""
    );
    assert_eq!(csv.headers()["x-truncated"], "true");
    assert_eq!(
        csv.headers()["x-total-count"],
        every.len().to_string().as_str()
    );
    assert_eq!(csv.text().expect("csv").lines().count(), 11);
}

#[test]
fn tables_lists_every_view_and_user_model_each_readable_as_a_table() {
    let mut f = fixture();
    land(&f, 1);
    f.options.models = vec![
        Model::parse(
            "brazil.sql",
            "-- model: serving.brazil\n-- kind: table\n-- depends: serving.psd_latest\n\
             CREATE OR REPLACE TABLE serving.brazil AS \
             SELECT * FROM serving.psd_latest WHERE country_code = 'BR';\n",
        )
        .expect("model"),
        Model::parse(
            "brazil_years.sql",
            "-- model: serving.brazil_years\n-- kind: view\n-- depends: serving.brazil\n\
             CREATE OR REPLACE VIEW serving.brazil_years AS \
             SELECT DISTINCT market_year FROM serving.brazil;\n",
        )
        .expect("model"),
    ];
    transform(&f.store, &f.options).expect("build");
    let s = serve(&f);
    let (tables, _) = json(&format!("{}/v1/tables", s.base));
    let listed: BTreeSet<(String, String)> = tables["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().expect("name").to_owned(),
                t["kind"].as_str().expect("kind").to_owned(),
            )
        })
        .collect();
    for (name, kind) in [
        ("serving.brazil", "table"),
        ("serving.brazil_years", "view"),
        ("serving.psd_history", "view"),
        ("serving.psd_revisions", "view"),
        ("serving.coffee_balance", "table"),
    ] {
        assert!(
            listed.contains(&(name.to_owned(), kind.to_owned())),
            "{name} ({kind}) not in {listed:?}"
        );
    }
    // Each listed relation answers as a table, with rows when it has any.
    for (name, _) in &listed {
        let (page, _) = json(&format!("{}/v1/tables/{name}?limit=5", s.base));
        assert!(page["rows"].is_array(), "{name}: {page}");
    }
    let (brazil, _) = json(&format!(
        "{}/v1/tables/serving.brazil_years?count=true",
        s.base
    ));
    let years = brazil["rows"].as_array().expect("rows").len();
    assert!(years > 0, "{brazil}");
    assert_eq!(brazil["count"], years, "{brazil}");
}
