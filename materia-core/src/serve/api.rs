//! The HTTP API: the routes and their handlers (tables, releases, health,
//! client SQL) and the page.

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use duckdb::ToSql;
use serde_json::json;

use super::answer::{Ask, answer, current};
use super::app::App;
use super::encode::{Blame, Body, Format, Page};
use super::error::ApiError;
use super::params::{MAX_LIMIT, TableQuery, link_from};
use super::query::{Caps, Failed, collect, explain_refusal, failed, read_only};
use crate::transform::quoted_name as quoted;

/// What to change when a table's answer is too big.
const TABLE_HINT: &str = "ask for fewer rows (limit=, then the next page) or columns (columns=)";
/// What to change when a query's answer is too big.
const SQL_HINT: &str = "select fewer rows or columns";

pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route("/", get(super::page::page))
        .route("/page.js", get(super::page::script))
        .route("/page.css", get(super::page::style))
        .route("/v1/health", get(health))
        .route("/v1/releases", get(releases))
        .route("/v1/tables", get(tables))
        .route("/v1/tables/{name}", get(table))
        .route("/v1/sql", axum::routing::post(sql))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint", None) })
        .with_state(app)
}

/// The build being served, from memory: no permit, no DuckDB connection, so
/// it answers while every connection is busy.
async fn health(State(app): State<App>) -> Result<Response, ApiError> {
    let snap = current(&app).await?;
    let age = jiff::Timestamp::now()
        .duration_since(snap.published_at)
        .as_secs()
        .max(0);
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({
            "build": snap.build,
            "published_at": snap.published_at.to_string(),
            "age_seconds": age,
        })),
    )
        .into_response())
}

async fn releases(
    State(app): State<App>,
    request: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let picked = Format::pick(&mut String::new(), &request);
    let (caps, blame) = (app.caps(None), app.blame("limit", TABLE_HINT));
    let ask = Ask {
        path: "/v1/releases".into(),
        params,
        picked,
        request: &request,
        blame,
    };
    answer(&app, ask, move |_, conn, _| {
        let sql = "SELECT * FROM serving.releases ORDER BY dataset, ord";
        let mut stmt = conn
            .prepare_cached(sql)
            .map_err(|e| failed(Failed::DuckDb(e), caps, &blame, false))?;
        let (schema, batches) =
            collect(&mut stmt, &[], caps).map_err(|f| failed(f, caps, &blame, false))?;
        Ok(Body::Rows {
            schema,
            batches,
            page: None,
        })
    })
    .await
}

async fn tables(State(app): State<App>, request: HeaderMap) -> Result<Response, ApiError> {
    let ask = Ask {
        path: "/v1/tables".into(),
        params: Vec::new(),
        picked: super::encode::Picked {
            format: Format::Json,
            by_accept: false,
        },
        request: &request,
        blame: app.blame("limit", TABLE_HINT),
    };
    answer(&app, ask, |snap, conn, _| {
        let mut list = Vec::new();
        for (name, (kind, columns)) in snap.catalog(conn).map_err(ApiError::internal)? {
            let rows: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {}", quoted(name)), [], |r| {
                    r.get(0)
                })
                .map_err(ApiError::internal)?;
            list.push(json!({
                "name": name,
                "kind": if kind == "VIEW" { "view" } else { "table" },
                "columns": columns.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>(),
                "rows": rows,
            }));
        }
        Ok(Body::Json(json!({ "build": snap.build, "tables": list })))
    })
    .await
}

async fn table(
    State(app): State<App>,
    UrlPath(mut name): UrlPath<String>,
    request: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    // The name as asked (suffix kept), for the next page's link.
    let asked = name.clone();
    let picked = Format::pick(&mut name, &request);
    let (caps, blame) = (app.caps(None), app.blame("limit", TABLE_HINT));
    let ask = Ask {
        path: format!("/v1/tables/{name}"),
        params,
        picked,
        request: &request,
        blame,
    };
    answer(&app, ask, move |snap, conn, params| {
        let catalog = snap.catalog(conn).map_err(ApiError::internal)?;
        let Some((_, columns)) = catalog.get(&name) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no table {name:?}; GET /v1/tables lists them"),
                None,
            ));
        };
        let query = TableQuery::parse(&name, columns, params)?;
        let page = TablePage {
            query: &query,
            asked: &asked,
            params,
            caps,
            blame: &blame,
        };
        // A value that does not cast fails the query: then name it.
        page.read(conn).or_else(|e| {
            query.check_values(conn)?;
            Err(e)
        })
    })
    .await
}

/// One page of a table request: its rows, whether more follow (and the link
/// to them), the total when asked.
struct TablePage<'a> {
    query: &'a TableQuery,
    asked: &'a str,
    params: &'a [(String, String)],
    caps: Caps,
    blame: &'a Blame,
}

impl TablePage<'_> {
    fn read(&self, conn: &duckdb::Connection) -> Result<Body, ApiError> {
        let fail = |f: Failed| failed(f, self.caps, self.blame, false);
        let args: Vec<&dyn ToSql> = self.query.args.iter().map(|a| a as &dyn ToSql).collect();
        let mut stmt = conn
            .prepare_cached(&self.query.sql)
            .map_err(|e| fail(e.into()))?;
        let (schema, mut batches) = collect(&mut stmt, &args, self.caps).map_err(fail)?;
        // The query asks one row more than the page: its presence says more follow.
        let truncated = drop_past(&mut batches, self.query.limit);
        let count = match &self.query.count_sql {
            Some(sql) => Some(
                conn.prepare_cached(sql)
                    .and_then(|mut s| s.query_row(args.as_slice(), |r| r.get::<_, i64>(0)))
                    .map(|n| u64::try_from(n).unwrap_or(0))
                    .map_err(|e| fail(e.into()))?,
            ),
            None => None,
        };
        let next = truncated.then(|| {
            link_from(
                self.asked,
                self.params,
                self.query.offset + self.query.limit as u64,
            )
        });
        Ok(Body::Rows {
            schema,
            batches,
            page: Some(Page {
                truncated,
                next,
                count,
            }),
        })
    }
}

/// Keeps the first `limit` rows of `batches`; whether any were dropped.
fn drop_past(batches: &mut Vec<duckdb::arrow::record_batch::RecordBatch>, limit: usize) -> bool {
    let mut kept = 0;
    let mut out = Vec::with_capacity(batches.len());
    let mut dropped = false;
    for b in batches.drain(..) {
        let room = limit - kept;
        if b.num_rows() > room {
            dropped = true;
            if room > 0 {
                out.push(b.slice(0, room));
            }
            kept = limit;
        } else {
            kept += b.num_rows();
            out.push(b);
        }
    }
    *batches = out;
    dropped
}

/// `POST /v1/sql` (only with `--allow-sql`): the body is one read-only query
/// (see [`read_only`]), run on the build's hardened connection (no files,
/// no `ATTACH`, no extensions, no `SET`); at most [`MAX_LIMIT`] rows, the
/// server's byte cap and time limit.
async fn sql(
    State(app): State<App>,
    request: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    if !app.allow_sql {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "SQL is off: start the server with --allow-sql",
            None,
        ));
    }
    let picked = Format::pick(&mut String::new(), &request);
    let (caps, blame) = (app.caps(Some(MAX_LIMIT)), app.blame("sql", SQL_HINT));
    let ask = Ask {
        path: "/v1/sql".into(),
        params: vec![("sql".to_owned(), body)],
        picked,
        request: &request,
        blame,
    };
    answer(&app, ask, move |_, conn, params| {
        let fail = |f: Failed| explain_refusal(failed(f, caps, &blame, true));
        let mut stmt = conn
            .prepare(&read_only(&params[0].1))
            .map_err(|e| fail(e.into()))?;
        let (schema, batches) = collect(&mut stmt, &[], caps).map_err(fail)?;
        Ok(Body::Rows {
            schema,
            batches,
            page: None,
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::drop_past;
    use duckdb::arrow::array::Int32Array;
    use duckdb::arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    fn batch(n: i32) -> RecordBatch {
        RecordBatch::try_from_iter([(
            "n",
            Arc::new(Int32Array::from_iter_values(0..n)) as Arc<dyn duckdb::arrow::array::Array>,
        )])
        .expect("batch")
    }

    #[test]
    fn a_page_keeps_its_rows_and_says_whether_more_followed() {
        let mut b = vec![batch(3), batch(3)];
        assert!(drop_past(&mut b, 5));
        assert_eq!(
            b.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(),
            [3, 2]
        );
        let mut b = vec![batch(3), batch(2)];
        assert!(!drop_past(&mut b, 5));
        assert_eq!(b.iter().map(RecordBatch::num_rows).sum::<usize>(), 5);
    }
}
