#!/usr/bin/env bash
# Writes the SQLMesh project materia replaces, over a landing zone:
#   benches/sqlmesh-project.sh LANDING_DIR OUT_DIR
# FULL models (what the replaced project did): raw.psd holds every row of every
# release, read through a glob (a new release needs a restatement, not a model
# change); serving.* as materia's models compute them (coffee_balance is the
# same file). raw.releases carries the file path for the join.
# No audits (SQLMesh's would run as separate queries): this favours SQLMesh.
set -euo pipefail
land=$(realpath "$1")
out=$2
models="$(dirname "$0")/../materia-core/models"
mkdir -p "$out/models"
cat >"$out/config.yaml" <<YAML
gateways:
  local:
    connection:
      type: duckdb
      database: db.duckdb
default_gateway: local
model_defaults:
  dialect: duckdb
YAML
# The body of a materia model: its SQL without comment lines, without the
# `CREATE OR REPLACE TABLE x AS` line and without the final semicolon.
body() { grep -v '^--' "$1" | sed '/^CREATE OR REPLACE TABLE/d; s/;[[:space:]]*$//'; }

cat >"$out/models/raw_releases.sql" <<SQL
MODEL (name raw.releases, kind FULL);
SELECT (row_number() OVER (ORDER BY file))::INTEGER AS release_id, 'psd' AS dataset,
       regexp_extract(file, '([^/]+)\\.csv\\.gzip\$', 1) AS etag,
       substr(file, $((${#land} + 2))) AS landing_key,
       regexp_extract(file, '/psd/([0-9]+)/', 1)::SMALLINT AS year,
       regexp_extract(file, '/psd/[0-9]+/([0-9]+)/', 1)::SMALLINT AS month,
       NULL::TIMESTAMPTZ AS landed_at, NULL::VARCHAR AS content_sha256, 0::BIGINT AS rows,
       now() AS loaded_at, file AS path
FROM glob('$land/psd/*/*/*.csv.gzip')
SQL
# The replaced project's models: every row of every release in raw.psd (what
# materia stored before its change history), the serving tables over it.
cat >"$out/models/raw_psd.sql" <<SQL
MODEL (name raw.psd, kind FULL);
SELECT f.release_id, c.Commodity_Code AS commodity_code,
       c.Commodity_Description AS commodity_description, c.Country_Code AS country_code,
       c.Country_Name AS country_name, c.Market_Year AS market_year,
       c.Calendar_Year AS calendar_year, c.Month AS month, c.Attribute_ID AS attribute_id,
       c.Attribute_Description AS attribute_description, c.Unit_ID AS unit_id,
       c.Unit_Description AS unit_description, c.Value AS value
FROM read_csv('$land/psd/*/*/*.csv.gzip',
        compression = 'gzip', header = true, auto_detect = false,
        delim = ',', quote = '"', escape = '"', nullstr = '', filename = true,
        columns = {
            'Commodity_Code': 'VARCHAR', 'Commodity_Description': 'VARCHAR',
            'Country_Code': 'VARCHAR', 'Country_Name': 'VARCHAR',
            'Market_Year': 'INTEGER', 'Calendar_Year': 'INTEGER', 'Month': 'VARCHAR',
            'Attribute_ID': 'VARCHAR', 'Attribute_Description': 'VARCHAR',
            'Unit_ID': 'VARCHAR', 'Unit_Description': 'VARCHAR', 'Value': 'DOUBLE'
        }) AS c
JOIN raw.releases AS f ON f.path = c.filename
SQL
cat >"$out/models/serving_releases.sql" <<'SQL'
MODEL (name serving.releases, kind FULL);
SELECT release_id, dataset, etag, landing_key, year, month, landed_at, rows,
       row_number() OVER (PARTITION BY dataset ORDER BY year, month, landed_at, release_id) AS ord,
       row_number() OVER (PARTITION BY dataset ORDER BY year DESC, month DESC, landed_at DESC, release_id DESC) = 1 AS is_latest
FROM raw.releases
SQL
cat >"$out/models/serving_psd_latest.sql" <<'SQL'
MODEL (name serving.psd_latest, kind FULL);
SELECT p.* EXCLUDE (release_id), r.etag AS release_etag,
       r.year AS release_year, r.month AS release_month
FROM raw.psd AS p
JOIN serving.releases AS r USING (release_id)
WHERE r.dataset = 'psd' AND r.is_latest
SQL
{ echo "MODEL (name serving.coffee_balance, kind FULL);"; body "$models/40_coffee_balance.sql"; } \
  >"$out/models/serving_coffee_balance.sql"
cat >"$out/models/serving_psd_revisions.sql" <<'SQL'
MODEL (name serving.psd_revisions, kind FULL);
SELECT p.commodity_code, p.country_code, p.market_year, p.attribute_id,
       p.attribute_description, r.ord AS release_ord, r.etag AS release_etag,
       r.year AS release_year, r.month AS release_month, p.value,
       p.value - lag(p.value) OVER series AS change
FROM raw.psd AS p
JOIN serving.releases AS r USING (release_id)
WHERE r.dataset = 'psd'
WINDOW series AS (PARTITION BY p.commodity_code, p.country_code, p.market_year, p.attribute_id
                  ORDER BY r.ord)
SQL
