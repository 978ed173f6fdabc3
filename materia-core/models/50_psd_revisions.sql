-- model: serving.psd_revisions
-- kind: table
-- depends: serving.releases
-- How USDA revised each estimate: per commodity x country x market year x
-- attribute, the value in each release and its change from the previous release
-- that carried the series (NULL for the first).
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
