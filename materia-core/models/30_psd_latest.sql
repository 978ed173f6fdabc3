-- model: serving.psd_latest
-- kind: table
-- depends: serving.releases
-- The rows of the newest PSD release only.
CREATE OR REPLACE TABLE serving.psd_latest AS
SELECT p.* EXCLUDE (release_id), r.etag AS release_etag,
       r.year AS release_year, r.month AS release_month
FROM raw.psd AS p
JOIN serving.releases AS r USING (release_id)
WHERE r.dataset = 'psd' AND r.is_latest;
