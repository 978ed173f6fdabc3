#!/usr/bin/env bash
# Writes a SQLMesh project equivalent to materia's models over a landing zone:
#   benches/sqlmesh-project.sh LANDING_DIR OUT_DIR
# Each model is the SELECT of the corresponding file in materia-core/models, as a
# FULL model (what the replaced SQLMesh project did); raw.psd reads every landed
# file through a glob, so a new release needs a restatement, not a model change.
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
{
  echo "MODEL (name raw.psd, kind FULL);"
  grep -v '^--' "$models/10_raw_psd.sql" | sed \
    -e '/^INSERT INTO raw.psd/d' \
    -e "s|{{new_files}}|'$land/psd/*/*/*.csv.gzip'|" \
    -e 's|JOIN _new_files AS f ON f.path = c.filename|JOIN raw.releases AS f ON f.path = c.filename|' \
    -e 's/;[[:space:]]*$//'
} >"$out/models/raw_psd.sql"
# INSERT ... SELECT f.release_id, c.Commodity_Code, ... : name the columns.
sed -i 's/^SELECT f.release_id, c.Commodity_Code, c.Commodity_Description, c.Country_Code,/SELECT f.release_id, c.Commodity_Code AS commodity_code, c.Commodity_Description AS commodity_description, c.Country_Code AS country_code,/;
        s/^       c.Country_Name, c.Market_Year, c.Calendar_Year, c.Month, c.Attribute_ID,/       c.Country_Name AS country_name, c.Market_Year AS market_year, c.Calendar_Year AS calendar_year, c.Month AS month, c.Attribute_ID AS attribute_id,/;
        s/^       c.Attribute_Description, c.Unit_ID, c.Unit_Description, c.Value/       c.Attribute_Description AS attribute_description, c.Unit_ID AS unit_id, c.Unit_Description AS unit_description, c.Value AS value/' \
  "$out/models/raw_psd.sql"
for pair in "20_releases_ordered serving.releases" "30_psd_latest serving.psd_latest" \
  "40_coffee_balance serving.coffee_balance"; do
  set -- $pair
  { echo "MODEL (name $2, kind FULL);"; body "$models/$1.sql"; } >"$out/models/$1.sql"
done
{
  echo "MODEL (name serving.psd_revisions, kind FULL);"
  awk '/^-- section: rebuild$/ {p = 1; next} /^-- section:/ {p = 0} p' "$models/50_psd_revisions.sql" |
    awk '/^CREATE OR REPLACE TABLE serving.psd_revisions AS/ {p = 1; next} p && /;[[:space:]]*$/ {sub(/;[[:space:]]*$/, ""); print; exit} p'
} >"$out/models/50_psd_revisions.sql"
