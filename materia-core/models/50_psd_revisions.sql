-- model: serving.psd_revisions
-- kind: incremental
-- depends: serving.releases
-- How USDA revised each estimate: per commodity x country x market year x
-- attribute, the value in each release and its change from the previous release
-- that carried the series (NULL for the first).
--
-- Incremental: when every new release is newer than all loaded ones (the daily
-- case), only the new releases' rows are appended; their changes come from
-- `raw.psd_series_last` (the last value of each series), so the cost follows the
-- new release and the number of series, not the history. A release that lands
-- out of order (an archive backfill) shifts the order of later ones: then the
-- table is rebuilt from `raw.psd`.

-- section: rebuild-if
SELECT NOT EXISTS (SELECT 1 FROM duckdb_tables()
                   WHERE schema_name = 'serving' AND table_name = 'psd_revisions')
    OR NOT EXISTS (SELECT 1 FROM duckdb_tables()
                   WHERE schema_name = 'raw' AND table_name = 'psd_series_last')
    OR EXISTS (SELECT 1 FROM serving.releases
               WHERE dataset = 'psd' AND release_id >= {{first_new_release}}
                 AND ord <= (SELECT count(*) FROM serving.releases
                             WHERE dataset = 'psd' AND release_id < {{first_new_release}}));

-- section: rebuild
CREATE OR REPLACE TABLE serving.psd_revisions AS
SELECT p.commodity_code, p.country_code, p.market_year, p.attribute_id,
       p.attribute_description, r.ord AS release_ord, r.etag AS release_etag,
       r.year AS release_year, r.month AS release_month, p.value,
       p.value - lag(p.value) OVER series AS change
FROM raw.psd AS p
JOIN serving.releases AS r USING (release_id)
WHERE r.dataset = 'psd'
WINDOW series AS (PARTITION BY p.commodity_code, p.country_code, p.market_year, p.attribute_id
                  ORDER BY r.ord);
CREATE OR REPLACE TABLE raw.psd_series_last AS
SELECT commodity_code, country_code, market_year, attribute_id, release_ord, value
FROM serving.psd_revisions
QUALIFY row_number() OVER (
    PARTITION BY commodity_code, country_code, market_year, attribute_id
    ORDER BY release_ord DESC) = 1;

-- section: append
-- The new rows (zone maps skip the row groups of older releases), then each
-- new row's change against the series' last value or an earlier new release.
CREATE OR REPLACE TEMP TABLE _revisions_new AS
SELECT p.commodity_code, p.country_code, p.market_year, p.attribute_id,
       p.attribute_description, r.ord AS release_ord, r.etag AS release_etag,
       r.year AS release_year, r.month AS release_month, p.value
FROM raw.psd AS p
JOIN serving.releases AS r USING (release_id)
WHERE r.dataset = 'psd' AND p.release_id >= {{first_new_release}};
CREATE OR REPLACE TEMP TABLE _revisions_series AS
SELECT * FROM (
    SELECT commodity_code, country_code, market_year, attribute_id, release_ord, value,
           false AS is_new, NULL AS attribute_description, NULL AS release_etag,
           NULL AS release_year, NULL AS release_month
    FROM raw.psd_series_last
    UNION ALL BY NAME
    SELECT *, true AS is_new FROM _revisions_new);
INSERT INTO serving.psd_revisions BY NAME
SELECT commodity_code, country_code, market_year, attribute_id, attribute_description,
       release_ord, release_etag, release_year, release_month, value, change
FROM (SELECT *, value - lag(value) OVER (
                    PARTITION BY commodity_code, country_code, market_year, attribute_id
                    ORDER BY release_ord) AS change
      FROM _revisions_series)
WHERE is_new;
CREATE OR REPLACE TABLE raw.psd_series_last AS
SELECT commodity_code, country_code, market_year, attribute_id, release_ord, value
FROM _revisions_series
QUALIFY row_number() OVER (
    PARTITION BY commodity_code, country_code, market_year, attribute_id
    ORDER BY release_ord DESC) = 1;
DROP TABLE _revisions_new;
DROP TABLE _revisions_series;
