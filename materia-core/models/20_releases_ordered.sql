-- model: serving.releases
-- kind: table
-- depends: raw.psd
-- Every loaded release in publication order: by landing year/month, then by
-- when it landed. `ord` 1 is the oldest; the newest has `is_latest`.
CREATE OR REPLACE TABLE serving.releases AS
SELECT release_id, dataset, etag, landing_key, year, month, landed_at, rows,
       row_number() OVER (PARTITION BY dataset ORDER BY year, month, landed_at, release_id) AS ord,
       row_number() OVER (PARTITION BY dataset ORDER BY year DESC, month DESC, landed_at DESC, release_id DESC) = 1 AS is_latest
FROM raw.releases;
