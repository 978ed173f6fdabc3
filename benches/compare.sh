#!/usr/bin/env bash
# Side-by-side: Materia against the tools it replaces, on this machine, same input.
#
#   benches/compare.sh            # SIZE_MB=512 RUNS=5 RELEASES=120 PARTS="land transform mirror"
#   SIZE_MB=64 RUNS=3 RELEASES=30 benches/compare.sh
#   PARTS=transform benches/compare.sh
#
# Prints one table per part: median seconds of RUNS runs, throughput, peak RSS,
# and the ratio peer time / materia time (> 1 means Materia is faster). Installs
# what it needs (Debian: pigz, time; PyPI into a temp venv: duckdb, duckdb-cli),
# works in a temp dir it removes, touches no network beyond the package registries.
#
# Parts:
# - land: gzip -6, pigz -6 vs `materia land --level 6` on a SIZE_MB CSV;
# - transform: `materia transform` over RELEASES generated releases (~50k rows
#   each) — a full build, then one more release — against DuckDB alone loading
#   the same files into one table with the same typed CSV reading (the least
#   any build does), twice: the PyPI `duckdb` package pinned to the engine
#   materia bundles, and `duckdb-cli` (the newest on PyPI); and against the
#   SQLMesh project materia replaces (PyPI `sqlmesh`, on DuckDB; FULL models,
#   every row of every release: `benches/sqlmesh-project.sh`): `sqlmesh plan`,
#   then a restatement for the new release.
# - mirror: `rclone sync` (Debian; the command the old timer ran, with 8
#   transfers like materia's 8 requests) vs `materia mirror`, to the same moto
#   S3 server on loopback: an initial push of PUSH_FILES landed files into an
#   empty prefix, then a no-op over NOOP_FILES files.
# - extract: the daily no-op — `materia extract` against a loopback server that
#   answers the conditional GET with 304 — vs `curl` sending the same
#   If-None-Match; 100 invocations per run.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB="${SIZE_MB:-512}"
RUNS="${RUNS:-5}"
RELEASES="${RELEASES:-120}"
PARTS="${PARTS:-land transform mirror extract}"
PUSH_FILES="${PUSH_FILES:-1000}"
NOOP_FILES="${NOOP_FILES:-10000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/materia/target}"

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need pigz pigz
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

cargo build --release -q --workspace --bins
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# measure NAME CMD...: runs CMD $RUNS times (with {i} replaced by the run number),
# prints "NAME|median_seconds|max_rss_kib".
measure() {
  local name=$1; shift
  local times=() rss=0
  for i in $(seq 1 "$RUNS"); do
    local cmd=("${@//\{i\}/$i}")
    if ! /usr/bin/time -f "%e %M" -o "$work/time" "${cmd[@]}" >/dev/null 2>"$work/stderr"; then
      echo "compare.sh: '$name' failed:" >&2
      cat "$work/stderr" >&2
      exit 1
    fi
    read -r t m <"$work/time"
    times+=("$t")
    (( m > rss )) && rss=$m
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$name|$median|$rss"
}

# table TITLE UNIT AMOUNT BASE_INDEX RESULTS...: one markdown table; the last
# column is each row's time over the base row's (peer time / materia time).
table() {
  local title=$1 unit=$2 amount=$3 base=$4; shift 4
  local rows=("$@") base_time
  base_time=$(echo "${rows[$base]}" | cut -d'|' -f2)
  echo
  echo "$title"
  printf '| %-36s | %8s | %10s | %12s | %15s |\n' tool seconds "$unit" "peak RSS MiB" "time / materia"
  printf '| %-36s | %8s | %10s | %12s | %15s |\n' --- --- --- --- ---
  for r in "${rows[@]}"; do
    IFS='|' read -r name t m <<<"$r"
    awk -v n="$name" -v t="$t" -v m="$m" -v a="$amount" -v bt="$base_time" 'BEGIN {
      printf "| %-36s | %8.2f | %10.1f | %12.1f | %14.2fx |\n", n, t, a / t, m / 1024, t / bt }'
  done
}

echo "machine: $(nproc) cores, $(uname -m), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM; median of $RUNS runs"

if [[ " $PARTS " == *" land "* ]]; then
  input="$work/psd.csv"
  "$bin/psd-gen" --bytes $((SIZE_MB << 20)) --seed 7 >"$input"
  bytes=$(stat -c %s "$input")
  cat "$input" >/dev/null # warm the page cache: every tool reads from memory
  results=()
  results+=("$(measure "gzip -6" sh -c "gzip -6 -c '$input' >'$work/out.gz'")")
  results+=("$(measure "pigz -6" sh -c "pigz -6 -c '$input' >'$work/out.gz'")")
  results+=("$(measure "materia land --level 6" "$bin/materia" land --landing-dir "$work/landing-{i}" \
    --dataset psd --etag "run-{i}" --level 6 "$input")")
  table "land/gzip: ${SIZE_MB} MiB PSD-shaped CSV, level 6" "MiB/s" "$((bytes >> 20))" 2 "${results[@]}"
  rm -rf "$work"/landing-* "$input" "$work/out.gz"
fi

if [[ " $PARTS " == *" transform "* ]]; then
  land="$work/tland"
  "$bin/landing-gen" --dir "$land" --releases "$RELEASES" >/dev/null
  export MATERIA_DUCKDB_MEMORY=4GB
  "$bin/materia" --landing-dir "$land" --duckdb-path "$work/probe.duckdb" transform >/dev/null
  q() { "$bin/materia" --duckdb-path "$work/probe.duckdb" query --format csv "$1" | tail -1; }
  engine=$(q "SELECT library_version FROM pragma_version()")
  rows=$(q "SELECT sum(rows) FROM raw.releases")
  rm -f "$work/probe.duckdb"
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install -q "duckdb==${engine#v}" duckdb-cli
  cli_version=$("$work/venv/bin/duckdb" -version | awk '{print $1}')
  python3 -m venv "$work/smvenv"
  "$work/smvenv/bin/pip" install -q sqlmesh
  sm_version=$("$work/smvenv/bin/python" -c 'import sqlmesh; print(sqlmesh.__version__)')
  benches/sqlmesh-project.sh "$land" "$work/smproj"
  sqlmesh="$work/smvenv/bin/sqlmesh"

  # The yardstick: DuckDB alone loading the same files into one table, with
  # the same typed CSV reading (what any build must at least do).
  files=$(find "$land/psd" -name '*.csv.gzip' | sort | sed "s/.*/'&'/" | paste -sd, -)
  script="$work/load.sql"
  {
    echo "SET memory_limit = '4GB';"
    echo "CREATE TABLE psd AS SELECT * FROM read_csv([$files], compression = 'gzip', header = true,"
    echo "  auto_detect = false, delim = ',', quote = '\"', escape = '\"', nullstr = '', columns = {"
    echo "  'Commodity_Code': 'VARCHAR', 'Commodity_Description': 'VARCHAR', 'Country_Code': 'VARCHAR',"
    echo "  'Country_Name': 'VARCHAR', 'Market_Year': 'INTEGER', 'Calendar_Year': 'INTEGER',"
    echo "  'Month': 'VARCHAR', 'Attribute_ID': 'VARCHAR', 'Attribute_Description': 'VARCHAR',"
    echo "  'Unit_ID': 'VARCHAR', 'Unit_Description': 'VARCHAR', 'Value': 'DOUBLE'});"
    echo "CHECKPOINT;"
  } >"$script"

  results=()
  results+=("$(measure "materia transform (full)" "$bin/materia" --landing-dir "$land" \
    --duckdb-path "$work/m-{i}.duckdb" transform)")
  results+=("$(measure "duckdb ${engine} (Python), load only" "$work/venv/bin/python" -c \
    "import duckdb, sys; c = duckdb.connect(sys.argv[1]); c.execute(open(sys.argv[2]).read()); c.close()" \
    "$work/p-{i}.duckdb" "$script")")
  results+=("$(measure "duckdb-cli ${cli_version}, load only" "$work/venv/bin/duckdb" \
    -f "$script" "$work/c-{i}.duckdb")")
  results+=("$(measure "sqlmesh ${sm_version} plan (FULL models)" sh -c "cp -r '$work/smproj' '$work/sm-{i}' \
    && cd '$work/sm-{i}' && '$sqlmesh' plan --auto-apply --no-prompts")")
  table "transform: full build, $RELEASES releases, $rows rows" "krows/s" "$((rows / 1000))" 0 "${results[@]}"

  # One more release: materia's incremental build on a copy of a full build
  # (the published file and its history): it loads one release into the
  # history, writes the serving tables anew, runs the audits and publishes.
  k=$((RELEASES + 1))
  "$bin/psd-gen" --bytes $((5 << 20)) --seed "$k" >"$work/next.csv"
  "$bin/materia" --landing-dir "$land" land --dataset psd --etag "$(printf 'r%04d' "$k")" --level 1 \
    --year $((2000 + k / 12)) --month $((1 + k % 12)) "$work/next.csv" >/dev/null
  per_release=$((rows / RELEASES))
  inc=("$(measure "materia transform (+1 release)" sh -c "cp '$work/m-1.duckdb' '$work/inc-{i}.duckdb' \
    && cp '$work/m-1.duckdb.history' '$work/inc-{i}.duckdb.history' \
    && '$bin/materia' --landing-dir '$land' --duckdb-path '$work/inc-{i}.duckdb' transform")")
  inc+=("$(measure "sqlmesh ${sm_version} restatement (+1)" sh -c "rm -rf '$work/smi-{i}' \
    && cp -r '$work/sm-1' '$work/smi-{i}' && cd '$work/smi-{i}' \
    && '$sqlmesh' plan --restate-model raw.psd --restate-model raw.releases --auto-apply --no-prompts")")
  table "transform: one more release on $RELEASES (materia's time includes copying its files)" "krows/s" \
    "$((per_release / 1000))" 0 "${inc[@]}"
  rm -rf "$work"/m-* "$work"/p-* "$work"/c-* "$work"/inc-* "$work"/sm-* "$work"/smi-* "$work/next.csv"
fi

if [[ " $PARTS " == *" mirror "* ]]; then
  need rclone rclone
  # rclone's S3 client refuses an AWS_CA_BUNDLE with its own transport; plain
  # HTTP on loopback needs none.
  unset AWS_CA_BUNDLE
  python3 -m pip install -q --disable-pip-version-check 'moto[server]>=5.0.15'
  moto="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/moto_server"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$moto" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  moto_pid=$!
  trap 'kill $moto_pid 2>/dev/null; rm -rf "$work"' EXIT
  for _ in $(seq 100); do curl -s "http://127.0.0.1:$port" >/dev/null && break; sleep 0.1; done
  curl -s -X PUT "http://127.0.0.1:$port/bench" >/dev/null
  export AWS_ENDPOINT="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench \
    AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
  export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other \
    RCLONE_CONFIG_BENCH_ENDPOINT="$AWS_ENDPOINT" RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=bench \
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=bench RCLONE_CONFIG_BENCH_REGION=us-east-1
  rclone_version=$(rclone version | head -1)
  # Landed files of about 20 KiB each (real store files, with ledger records).
  "$bin/landing-gen" --dir "$work/push" --releases "$PUSH_FILES" --bytes-per-release 60000 >/dev/null
  push_bytes=$(du -sb --exclude=.materia "$work/push" | cut -f1)
  results=()
  results+=("$(measure "materia mirror" "$bin/materia" --landing-dir "$work/push" mirror --to "s3://bench/m-{i}")")
  results+=("$(measure "$rclone_version sync" rclone sync "$work/push" "bench:bench/r-{i}" \
    --exclude '.materia/**' --transfers 8 --checkers 8)")
  table "mirror: initial push of $PUSH_FILES files, $((push_bytes >> 10)) KiB, to moto on loopback" "files/s" \
    "$PUSH_FILES" 0 "${results[@]}"

  "$bin/landing-gen" --dir "$work/noop" --releases "$NOOP_FILES" --bytes-per-release 2000 >/dev/null
  "$bin/materia" --landing-dir "$work/noop" mirror --to s3://bench/noop-m --concurrency 16 >/dev/null
  rclone sync "$work/noop" bench:bench/noop-r --exclude '.materia/**' --transfers 16 --checkers 16
  results=()
  results+=("$(measure "materia mirror (no-op)" "$bin/materia" --landing-dir "$work/noop" mirror --to s3://bench/noop-m)")
  results+=("$(measure "$rclone_version sync (no-op)" rclone sync "$work/noop" bench:bench/noop-r \
    --exclude '.materia/**' --transfers 8 --checkers 8)")
  results+=("$(measure "materia mirror --full (no-op)" "$bin/materia" --landing-dir "$work/noop" mirror --full --to s3://bench/noop-m)")
  table "mirror: no-op over $NOOP_FILES files" "files/s" "$NOOP_FILES" 0 "${results[@]}"
fi

if [[ " $PARTS " == *" extract "* ]]; then
  need curl curl
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$bin/psd-gen" --bytes $((8 << 20)) --seed 3 >"$work/release.csv"
  cat >"$work/serve.py" <<'PY'
import http.server, sys
body = open(sys.argv[2], "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.headers.get("If-None-Match") == '"r1"':
            self.send_response(304); self.send_header("ETag", '"r1"'); self.end_headers(); return
        self.send_response(200); self.send_header("ETag", '"r1"')
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
  python3 "$work/serve.py" "$port" "$work/release.csv" &
  server_pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  url="http://127.0.0.1:$port/psd.csv"
  "$bin/materia" --landing-dir "$work/xland" extract --url "$url" >/dev/null
  results=()
  results+=("$(measure "materia extract (304), 100 runs" sh -c \
    "for i in \$(seq 100); do '$bin/materia' --landing-dir '$work/xland' extract --url '$url' >/dev/null; done")")
  results+=("$(measure "curl -H If-None-Match (304), 100 runs" sh -c \
    "for i in \$(seq 100); do curl -s -o /dev/null -H 'If-None-Match: \"r1\"' '$url'; done")")
  table "extract no-op: conditional GET answered 304, 100 invocations" "runs/s" 100 0 "${results[@]}"
  kill "$server_pid" 2>/dev/null || true
fi
