#!/usr/bin/env bash
# `materia serve` under load, beside nginx serving the same bytes as a static
# file (the practical limit of an HTTP server on this machine).
#
#   benches/serve.sh                  # RELEASES=12 DURATION=10 CONNECTIONS=32
#
# Builds a lakehouse from RELEASES generated PSD releases, serves it, and runs
# wrk (Debian) on loopback, all on this machine, against:
# - one country's coffee balance, `/v1/tables/serving.coffee_balance?country_code=…`
#   (one row per market year), as JSON: answered from memory (the cache),
#   computed anew each time (`Cache-Control: no-cache`: a DuckDB query per
#   request), and `304` to a client holding the ETag;
# - nginx (Debian) serving that JSON answer as a file: `200` and `304`.
# Prints requests/s, p50 and p99 latency, and the ratio to nginx.
# Installs wrk and nginx-light when missing; works in a temp dir it removes.
set -euo pipefail
cd "$(dirname "$0")/.."
RELEASES="${RELEASES:-12}"
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/materia/target}"

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
[ -x /usr/sbin/nginx ] || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }

cargo build --release -q --workspace --bins
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "serve.sh: $1 never answered" >&2; exit 1; }

"$bin/landing-gen" --dir "$work/land" --releases "$RELEASES" >/dev/null
lake="$work/lakehouse.duckdb"
"$bin/materia" --landing-dir "$work/land" --duckdb-path "$lake" transform >/dev/null
country=$("$bin/materia" --duckdb-path "$lake" query --format csv \
  "SELECT country_code FROM serving.coffee_balance WHERE country_code <> 'WORLD' GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1" | tail -1)

mport=$(free_port)
"$bin/materia" --duckdb-path "$lake" serve --bind "127.0.0.1:$mport" 2>"$work/serve.log" &
pids+=($!)
path="/v1/tables/serving.coffee_balance?country_code=$country"
wait_up "http://127.0.0.1:$mport/v1/health"
murl="http://127.0.0.1:$mport$path"
mkdir -p "$work/www"
chmod 755 "$work" "$work/www"  # nginx workers run as www-data
curl -sf "$murl" -o "$work/www/balance.json"
rows=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["rows"]))' "$work/www/balance.json")
bytes=$(stat -c %s "$work/www/balance.json")
metag=$(curl -sfI "$murl" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')

nport=$(free_port)
cat >"$work/nginx.conf" <<EOF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/json;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  server { listen 127.0.0.1:$nport; root $work/www; }
}
EOF
mkdir -p "$work/tmp"
/usr/sbin/nginx -c "$work/nginx.conf" -p "$work"
nurl="http://127.0.0.1:$nport/balance.json"
wait_up "$nurl"
netag=$(curl -sfI "$nurl" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')

# run NAME URL [HEADER]: wrk for DURATION s, prints "NAME|req/s|p50|p99".
run() {
  local name=$1 url=$2 header=${3:-}
  local args=(-t2 "-c$CONNECTIONS" "-d${DURATION}s" --latency)
  [ -n "$header" ] && args+=(-H "$header")
  local out
  out=$(wrk "${args[@]}" "$url")
  if grep -q "Non-2xx or 3xx" <<<"$out" || grep -q "Socket errors" <<<"$out"; then
    echo "serve.sh: '$name' had errors:" >&2
    echo "$out" >&2
    exit 1
  fi
  local rps p50 p99
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  p50=$(awk '$1=="50%"{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  echo "$name|$rps|$p50|$p99"
}

nginx_200=$(run "nginx, the file (200)" "$nurl")
nginx_304=$(run "nginx, the file (304)" "$nurl" "If-None-Match: $netag")
serve_hit=$(run "materia serve, kept answer (200)" "$murl")
serve_304=$(run "materia serve, ETag held (304)" "$murl" "If-None-Match: $metag")
serve_miss=$(run "materia serve, query each time (200, no-cache)" "$murl" "Cache-Control: no-cache")

echo
echo "### serve: one country's coffee balance ($rows rows, $bytes bytes of JSON), $RELEASES releases built"
echo "wrk -t2 -c$CONNECTIONS -d${DURATION}s on loopback, $(nproc) cores shared by server and load; $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $(/usr/sbin/nginx -v 2>&1 | sed 's/.*: //')"
echo
echo "| server, answer | requests/s | p50 | p99 | × nginx |"
echo "|---|---:|---:|---:|---:|"
ratio() { python3 -c "print(f'{float(\"$1\") / float(\"$2\"):.2f}')"; }
line() {
  local row=$1 base=$2
  IFS='|' read -r name rps p50 p99 <<<"$row"
  IFS='|' read -r _ brps _ _ <<<"$base"
  echo "| $name | $rps | $p50 | $p99 | $(ratio "$rps" "$brps") |"
}
line "$nginx_200" "$nginx_200"
line "$nginx_304" "$nginx_304"
line "$serve_hit" "$nginx_200"
line "$serve_304" "$nginx_304"
line "$serve_miss" "$nginx_200"
