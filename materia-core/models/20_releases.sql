-- model: serving.releases
-- kind: table
-- depends: schema
-- The published file starts from the history's ledger: `raw.releases` and
-- `raw.rejected` as they are, and every loaded release in publication order —
-- by landing year/month, then by when it landed. `ord` 1 is the oldest; the
-- newest has `is_latest`.
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS serving;
CREATE SCHEMA IF NOT EXISTS materia;
CREATE OR REPLACE TABLE materia.build AS SELECT * FROM history.materia.build;
CREATE OR REPLACE TABLE raw.releases AS SELECT * FROM history.raw.releases;
CREATE OR REPLACE TABLE raw.rejected AS SELECT * FROM history.raw.rejected;
CREATE OR REPLACE TABLE serving.releases AS
SELECT release_id, dataset, etag, landing_key, year, month, landed_at, rows, changes, ord,
       ord = max(ord) OVER (PARTITION BY dataset) AS is_latest
FROM raw.releases;
