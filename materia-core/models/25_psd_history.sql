-- model: serving.psd_history
-- kind: table
-- depends: serving.releases, raw.psd_changes
-- Every version of every PSD value, once per change, with the releases it holds
-- for (`release_ord` <= ord < `until_ord`; `until_ord` NULL: still current) and
-- the release that brought it. `deleted` rows mark a key that disappeared.
-- `serving.psd_as_of(year, month)` is what a release said: the values of the
-- newest release landed under that year and month.
CREATE OR REPLACE TABLE serving.psd_history AS
SELECT p.* EXCLUDE (from_ord), p.from_ord AS release_ord, c.to_ord AS until_ord,
       r.etag AS release_etag, r.year AS release_year, r.month AS release_month
FROM history.raw.psd_changes AS p
JOIN serving.releases AS r ON r.dataset = 'psd' AND r.ord = p.from_ord
LEFT JOIN history.raw.psd_closed AS c
  ON c.commodity_code = p.commodity_code AND c.country_code = p.country_code
 AND c.market_year = p.market_year AND c.attribute_id = p.attribute_id
 AND c.from_ord = p.from_ord;
CREATE OR REPLACE MACRO serving.psd_as_of(y, m) AS TABLE
SELECT h.* EXCLUDE (deleted, release_ord, until_ord, release_etag, release_year, release_month)
FROM serving.psd_history AS h
WHERE NOT h.deleted
  AND h.release_ord <= (SELECT max(ord) FROM serving.releases
                        WHERE dataset = 'psd' AND year = y AND month = m)
  AND (h.until_ord IS NULL
       OR h.until_ord > (SELECT max(ord) FROM serving.releases
                         WHERE dataset = 'psd' AND year = y AND month = m));
