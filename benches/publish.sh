#!/usr/bin/env bash
# `materia publish` beside the practical peer — DuckDB alone writing the same
# tables with `COPY … TO 'x.parquet'` plus `rclone copy` of the result — to a
# moto S3 server on loopback, for a lakehouse built from RELEASES generated
# releases of ROWS rows (the all-commodities file: ~2.2M rows).
#
#   benches/publish.sh                      # RELEASES=48 ROWS=2200000
#   RELEASES=12 benches/publish.sh
#
# Rows: a first publish into an empty prefix, then one more release (the daily
# publish), each against the peer doing the same tables; wall time (GNU time),
# bytes uploaded, and the Parquet total against the gzipped CSV landing files.
# Then DuckDB's Parquet writer against arrow-rs's on the same tables
# (`parquet-writers`, benches/bin).
# Installs rclone and GNU time (Debian) and duckdb 1.5.6 (PyPI, a venv) when
# missing; needs moto_server (.ci/run installs it); removes everything after.
set -euo pipefail
cd "$(dirname "$0")/.."
RELEASES="${RELEASES:-48}"
ROWS="${ROWS:-2200000}"
MEMORY="${MEMORY:-2GB}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/materia/target}"

command -v rclone >/dev/null || { apt-get update -qq && apt-get install -y -qq rclone >/dev/null; }
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
command -v moto_server >/dev/null || { echo "publish.sh: needs moto_server (pip install 'moto[server]')" >&2; exit 1; }
cargo build --release -q --workspace --bins
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d)
moto=""
cleanup() { [ -n "$moto" ] && kill "$moto" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check 'duckdb==1.5.6' boto3

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
endpoint="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -sf -o /dev/null "$endpoint" && break; sleep 0.1; done
export AWS_ENDPOINT="$endpoint" AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
"$work/venv/bin/python" -c "import boto3,sys; boto3.client('s3', endpoint_url=sys.argv[1]).create_bucket(Bucket='bench')" "$endpoint"
# rclone's S3 client refuses an AWS_CA_BUNDLE with its own transport; plain
# HTTP on loopback needs none.
unset AWS_CA_BUNDLE
export RCLONE_CONFIG_MOTO_TYPE=s3 RCLONE_CONFIG_MOTO_PROVIDER=Other RCLONE_CONFIG_MOTO_ENDPOINT="$endpoint" \
  RCLONE_CONFIG_MOTO_ACCESS_KEY_ID=test RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY=test RCLONE_CONFIG_MOTO_REGION=us-east-1

land="$work/land"
lake="$work/lakehouse.duckdb"
"$bin/transform-scale" gen --dir "$land" --releases "$RELEASES" --rows "$ROWS" >/dev/null
"$bin/transform-scale" transform --dir "$land" --db "$lake" --memory "$MEMORY" >/dev/null
gz_bytes=$(find "$land" -name '*.csv.gzip' -printf '%s\n' | awk '{s+=$1} END {print s}')

# timed NAME CMD...: prints "NAME|seconds|peak RSS KiB"
timed() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  read -r secs rss <"$work/time"
  echo "$name|$secs|$rss"
}

# The peer: the same tables (the manifest's) with DuckDB's COPY, zstd, then rclone copy.
peer_script="$work/peer.py"
cat >"$peer_script" <<'EOF'
import duckdb, json, os, sys
lake, manifest, out = sys.argv[1:4]
tables = json.load(open(manifest))["tables"]
con = duckdb.connect(lake, read_only=True)
con.execute("SET memory_limit = '2GB'")
os.makedirs(out, exist_ok=True)
for name in tables:
    con.execute(f"COPY (SELECT * FROM {name}) TO '{out}/{name}.parquet' (FORMAT parquet, COMPRESSION zstd)")
EOF
peer() {
  local tag=$1
  rm -rf "$work/peer"
  timed "DuckDB COPY TO parquet + rclone copy ($tag)" sh -c "'$work/venv/bin/python' '$peer_script' '$lake' '$work/latest.json' '$work/peer' \
    && rclone copy --transfers 8 '$work/peer' 'moto:bench/peer-$tag'"
}

first=$(timed "materia publish (first, empty prefix)" "$bin/materia" --duckdb-path "$lake" publish --to s3://bench/v1 --json)
first_json=$(cat "$work/out")
"$work/venv/bin/python" -c "import boto3,sys; open(sys.argv[2],'wb').write(boto3.client('s3', endpoint_url=sys.argv[1]).get_object(Bucket='bench', Key='v1/latest.json')['Body'].read())" "$endpoint" "$work/latest.json"
peer_first=$(peer first)
peer_bytes=$(du -sb "$work/peer" | cut -f1)

# The two Parquet writers on the same tables, whole (no upload).
"$bin/parquet-writers" --db "$lake" --out "$work/pw" >"$work/writers.jsonl"
rm -rf "$work/pw"

"$bin/transform-scale" land --dir "$land" --release $((RELEASES + 1)) --rows "$ROWS" >/dev/null
"$bin/transform-scale" transform --dir "$land" --db "$lake" --memory "$MEMORY" >/dev/null
daily=$(timed "materia publish (+1 release)" "$bin/materia" --duckdb-path "$lake" publish --to s3://bench/v1 --json)
daily_json=$(cat "$work/out")
peer_daily=$(peer daily)

get() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
mib() { python3 -c 'import sys; print(f"{int(sys.argv[1]) / 1048576:.1f}")' "$1"; }
echo
echo "### publish: lakehouse of $RELEASES releases × $ROWS rows, to moto on loopback"
echo "landing zone (gzipped CSV): $(mib "$gz_bytes") MiB; Parquet of the build: $(mib "$(get "$first_json" bytes_total)") MiB (materia, per-release change files) / $(mib "$peer_bytes") MiB (DuckDB COPY, one file per table)"
echo
echo "| run | s | MiB uploaded | files uploaded / in build | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
row() {
  IFS='|' read -r name secs rss <<<"$1"
  echo "| $name | $secs | $2 | $3 | $((rss / 1024)) |"
}
row "$first" "$(mib "$(get "$first_json" bytes_uploaded)")" "$(get "$first_json" uploaded) / $(get "$first_json" files)"
row "$peer_first" "$(mib "$peer_bytes")" "all"
row "$daily" "$(mib "$(get "$daily_json" bytes_uploaded)")" "$(get "$daily_json" uploaded) / $(get "$daily_json" files)"
row "$peer_daily" "$(mib "$(du -sb "$work/peer" | cut -f1)")" "all"

echo
echo "### Parquet writers on the same tables (whole, zstd, 1M-row groups): DuckDB COPY vs arrow-rs ArrowWriter over DuckDB's Arrow output"
echo
echo "| table | rows | DuckDB s | DuckDB MiB | arrow-rs s | arrow-rs MiB |"
echo "|---|---:|---:|---:|---:|---:|"
python3 - "$work/writers.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"| {r['table']} | {r['rows']} | {r['duckdb_ms']/1000:.2f} | {r['duckdb_bytes']/1048576:.1f} | {r['arrow_rs_ms']/1000:.2f} | {r['arrow_rs_bytes']/1048576:.1f} |")
PY
