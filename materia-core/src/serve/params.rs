//! A request's parameters: each given once, and a table request turned into
//! SQL — allow-listed columns, bound filter values, a sort, a page.

use std::collections::BTreeSet;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::error::ApiError;
use crate::transform::{quoted_ident as quoted, quoted_name};

/// Rows a table request returns at most (`limit` above it is a 400).
pub const MAX_LIMIT: usize = 10_000;
/// Rows a table request returns without `limit`.
pub const DEFAULT_LIMIT: usize = 1_000;

/// The parameters a table request takes besides its filters.
const OPTIONS: &str = "columns=, sort=, limit=, offset=, count=";

/// A `400` naming the first parameter given more than once: the answer, its
/// ETag and the kept copy must all follow one reading of the request (with
/// repeats, `?columns=a&columns=b` and `?columns=b&columns=a` would share an
/// ETag but not a meaning).
pub(crate) fn refuse_repeats(params: &[(String, String)]) -> Result<(), ApiError> {
    let mut seen = BTreeSet::new();
    for (key, _) in params {
        if !seen.insert(key.as_str()) {
            return Err(ApiError::bad(
                key,
                format!(
                    "{key:?} is given more than once: give each parameter once \
                     (a list is comma-separated, a range is from..to)"
                ),
            ));
        }
    }
    Ok(())
}

/// A table request as SQL: allow-listed columns, equality or `from..to`
/// filters on any column (values bound, cast to the column's type: a value
/// that does not cast fails the query, and [`TableQuery::check_values`] then
/// names it), sorted by `sort` then every column (a total order, so pages
/// never overlap), one row more than the page to tell whether more follow.
pub(crate) struct TableQuery {
    /// The page's rows, `limit + 1` at most.
    pub sql: String,
    /// How many rows match the filters, when `count=true`.
    pub count_sql: Option<String>,
    /// The bound values, in order.
    pub args: Vec<String>,
    /// (parameter, value, type) of each bound value, to check it casts.
    casts: Vec<(String, String, String)>,
    pub limit: usize,
    pub offset: u64,
}

/// What the parameters other than filters ask for.
struct Options {
    select: Vec<String>,
    sort: Vec<String>,
    limit: usize,
    offset: u64,
    count: bool,
}

impl TableQuery {
    /// Reads `params` against the table `name` with `columns` (name, type);
    /// a `400` names the first bad parameter.
    pub fn parse(
        name: &str,
        columns: &[(String, String)],
        params: &[(String, String)],
    ) -> Result<TableQuery, ApiError> {
        let has = |c: &str| columns.iter().any(|(n, _)| n == c);
        let mut options = Options {
            select: Vec::new(),
            sort: Vec::new(),
            limit: DEFAULT_LIMIT,
            offset: 0,
            count: false,
        };
        let mut filters = Filters::default();
        for (key, value) in params {
            match key.as_str() {
                "columns" => options.select = column_list(name, value, &has)?,
                "sort" => options.sort = sort_list(name, value, &has)?,
                "limit" => options.limit = parse_limit(value)?,
                "offset" => {
                    // At most i64::MAX: DuckDB's OFFSET is a BIGINT.
                    options.offset = value
                        .parse::<u64>()
                        .ok()
                        .filter(|n| i64::try_from(*n).is_ok())
                        .ok_or_else(|| {
                            ApiError::bad(
                                "offset",
                                format!("must be a row count ≥ 0, got {value:?}"),
                            )
                        })?;
                }
                "count" => {
                    options.count = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(ApiError::bad(
                                "count",
                                format!("must be true or false, got {value:?}"),
                            ));
                        }
                    }
                }
                column => {
                    let Some((_, ty)) = columns.iter().find(|(n, _)| n == column) else {
                        return Err(ApiError::bad(
                            column,
                            format!(
                                "unknown parameter: {name} has no column {column:?} (filters are column=value or column=from..to; also {OPTIONS})"
                            ),
                        ));
                    };
                    filters.add(column, ty, value);
                }
            }
        }
        Ok(TableQuery::build(name, columns, options, filters))
    }

    fn build(
        name: &str,
        columns: &[(String, String)],
        options: Options,
        filters: Filters,
    ) -> TableQuery {
        let select = if options.select.is_empty() {
            "*".to_owned()
        } else {
            options.select.join(", ")
        };
        let filter = if filters.wheres.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filters.wheres.join(" AND "))
        };
        // The sort first, then every column not in it: a total order.
        let mut order = options.sort.clone();
        for (c, _) in columns {
            let c = quoted(c);
            if !options
                .sort
                .iter()
                .any(|s| s == &c || s == &format!("{c} DESC"))
            {
                order.push(c);
            }
        }
        let table = quoted_name(name);
        TableQuery {
            sql: format!(
                "SELECT {select} FROM {table}{filter} ORDER BY {} LIMIT {} OFFSET {}",
                order.join(", "),
                options.limit + 1,
                options.offset
            ),
            count_sql: options
                .count
                .then(|| format!("SELECT count(*) FROM {table}{filter}")),
            args: filters.args,
            casts: filters.casts,
            limit: options.limit,
            offset: options.offset,
        }
    }

    /// Every value casts to its column's type, or a 400 naming the parameter.
    pub fn check_values(&self, conn: &duckdb::Connection) -> Result<(), ApiError> {
        for (param, value, ty) in &self.casts {
            let ok: bool = conn
                .query_row(
                    &format!("SELECT TRY_CAST(? AS {ty}) IS NOT NULL"),
                    [value],
                    |r| r.get(0),
                )
                .map_err(ApiError::internal)?;
            if !ok {
                return Err(ApiError::bad(param, format!("{value:?} is not a {ty}")));
            }
        }
        Ok(())
    }
}

/// The `WHERE` terms of a request, their bound values and casts.
#[derive(Default)]
struct Filters {
    wheres: Vec<String>,
    args: Vec<String>,
    casts: Vec<(String, String, String)>,
}

impl Filters {
    /// `column=value` or `column=from..to` (either end optional).
    fn add(&mut self, column: &str, ty: &str, value: &str) {
        let col = quoted(column);
        match value.split_once("..") {
            Some((from, to)) => {
                if !from.is_empty() {
                    let v = self.bind(column, ty, from);
                    self.wheres.push(format!("{col} >= {v}"));
                }
                if !to.is_empty() {
                    let v = self.bind(column, ty, to);
                    self.wheres.push(format!("{col} <= {v}"));
                }
            }
            None => {
                let v = self.bind(column, ty, value);
                self.wheres.push(format!("{col} = {v}"));
            }
        }
    }

    fn bind(&mut self, column: &str, ty: &str, value: &str) -> String {
        self.args.push(value.to_owned());
        self.casts
            .push((column.to_owned(), value.to_owned(), ty.to_owned()));
        format!("CAST(? AS {ty})")
    }
}

/// `columns=a,b`: each a column of the table, quoted.
fn column_list(
    name: &str,
    value: &str,
    has: &impl Fn(&str) -> bool,
) -> Result<Vec<String>, ApiError> {
    let mut picked = Vec::new();
    for c in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        if !has(c) {
            return Err(ApiError::bad(
                "columns",
                format!("{name} has no column {c:?}"),
            ));
        }
        picked.push(quoted(c));
    }
    if picked.is_empty() {
        return Err(ApiError::bad("columns", "names no column"));
    }
    Ok(picked)
}

/// `sort=a,-b`: columns of the table, `-` for descending, each once.
fn sort_list(
    name: &str,
    value: &str,
    has: &impl Fn(&str) -> bool,
) -> Result<Vec<String>, ApiError> {
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for key in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let (column, descending) = match key.strip_prefix('-') {
            Some(c) => (c, true),
            None => (key, false),
        };
        if !has(column) {
            return Err(ApiError::bad(
                "sort",
                format!(
                    "{name} has no column {column:?} (sort=col ascending, sort=-col descending)"
                ),
            ));
        }
        if !seen.insert(column) {
            return Err(ApiError::bad(
                "sort",
                format!("{column:?} is sorted on twice"),
            ));
        }
        let c = quoted(column);
        order.push(if descending { format!("{c} DESC") } else { c });
    }
    if order.is_empty() {
        return Err(ApiError::bad("sort", "names no column"));
    }
    Ok(order)
}

fn parse_limit(value: &str) -> Result<usize, ApiError> {
    value
        .parse()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| ApiError::bad("limit", format!("must be 1 to {MAX_LIMIT}, got {value:?}")))
}

/// Characters escaped in a query string's names and values.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b',');

/// The request for the rows from `offset` on: `/v1/tables/{name}` (`name` as
/// asked, suffix kept, escaped) with `params` as given (their order kept),
/// `offset` replaced.
pub(crate) fn link_from(name: &str, params: &[(String, String)], offset: u64) -> String {
    let path = format!("/v1/tables/{}", utf8_percent_encode(name, QUERY));
    let mut query: Vec<String> = params
        .iter()
        .filter(|(k, _)| k != "offset")
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, QUERY),
                utf8_percent_encode(v, QUERY)
            )
        })
        .collect();
    query.push(format!("offset={offset}"));
    format!("{path}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<(String, String)> {
        [("b", "INTEGER"), ("a", "VARCHAR")]
            .map(|(n, t)| (n.to_owned(), t.to_owned()))
            .to_vec()
    }

    fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_page_is_sorted_then_ordered_by_every_column_and_asks_one_row_more() {
        let q = TableQuery::parse(
            "s.t",
            &columns(),
            &params(&[
                ("sort", "-a"),
                ("limit", "10"),
                ("offset", "20"),
                ("b", "1.."),
            ]),
        )
        .expect("parses");
        assert_eq!(
            q.sql,
            "SELECT * FROM \"s\".\"t\" WHERE \"b\" >= CAST(? AS INTEGER) \
             ORDER BY \"a\" DESC, \"b\" LIMIT 11 OFFSET 20"
        );
        assert_eq!((q.limit, q.offset, q.count_sql), (10, 20, None));
    }

    #[test]
    fn a_repeated_parameter_is_refused_by_name() {
        let e = refuse_repeats(&params(&[("columns", "a"), ("b", "1"), ("columns", "b")]))
            .expect_err("refused");
        assert_eq!(e.parameter.as_deref(), Some("columns"));
        assert!(refuse_repeats(&params(&[("a", "1"), ("b", "1")])).is_ok());
    }

    #[test]
    fn bad_sort_offset_and_count_are_named() {
        for (key, value) in [
            ("sort", "nope"),
            ("sort", "a,-a"),
            ("offset", "-1"),
            ("count", "yes"),
        ] {
            let e = TableQuery::parse("s.t", &columns(), &params(&[(key, value)]))
                .err()
                .unwrap_or_else(|| panic!("{key}={value} accepted"));
            assert_eq!(e.parameter.as_deref(), Some(key), "{}", e.message);
        }
    }

    #[test]
    fn the_next_link_keeps_the_parameters_and_moves_the_offset() {
        let link = link_from(
            "s.t.csv",
            &params(&[("a", "x y&z"), ("offset", "5"), ("columns", "a,b")]),
            15,
        );
        assert_eq!(link, "/v1/tables/s.t.csv?a=x%20y%26z&columns=a,b&offset=15");
        // A name as asked is escaped: `?`, `#`, `>` and spaces end nothing.
        let link = link_from("serving.a?b#c <d>.csv", &[], 2);
        assert_eq!(link, "/v1/tables/serving.a%3Fb%23c%20%3Cd%3E.csv?offset=2");
    }

    #[test]
    fn an_offset_past_bigint_is_refused_by_name() {
        let e = TableQuery::parse(
            "s.t",
            &columns(),
            &params(&[("offset", "9223372036854775808")]),
        )
        .err()
        .expect("refused");
        assert_eq!(e.parameter.as_deref(), Some("offset"));
    }

    #[test]
    fn a_column_with_a_dot_is_one_identifier() {
        let cols = vec![("t.y".to_owned(), "INTEGER".to_owned())];
        let q = TableQuery::parse("serving.a.b", &cols, &params(&[("t.y", "1")])).expect("parses");
        assert_eq!(
            q.sql,
            "SELECT * FROM \"serving\".\"a.b\" WHERE \"t.y\" = CAST(? AS INTEGER) \
             ORDER BY \"t.y\" LIMIT 1001 OFFSET 0"
        );
    }
}
