-- model: serving.psd_latest
-- kind: table
-- depends: serving.psd_history
-- The newest release's values: every current, not deleted version.
CREATE OR REPLACE TABLE serving.psd_latest AS
SELECT h.* EXCLUDE (deleted, release_ord, until_ord, release_etag, release_year, release_month),
       r.etag AS release_etag, r.year AS release_year, r.month AS release_month
FROM serving.psd_history AS h
JOIN serving.releases AS r ON r.dataset = 'psd' AND r.is_latest
WHERE h.until_ord IS NULL AND NOT h.deleted;
