-- model: serving.psd_latest
-- kind: table
-- depends: serving.releases, raw.psd_changes
-- The newest release's values: the history's current version of every key
-- that is not deleted (one release's size, whatever the history's).
CREATE OR REPLACE TABLE serving.psd_latest AS
SELECT c.* EXCLUDE (deleted, from_ord),
       r.etag AS release_etag, r.year AS release_year, r.month AS release_month
FROM history.raw.psd_current AS c
JOIN serving.releases AS r ON r.dataset = 'psd' AND r.is_latest
WHERE NOT c.deleted;
