#!/usr/bin/env bash
# The transform at all-commodities scale: generated releases of ROWS rows each
# (the all-commodities file has ~2.2M; only the last market years change from
# one release to the next), for each history length in HISTORIES:
#   - a full build of N releases, and DuckDB alone loading the same N files into
#     one fresh table with the same typed CSV reading (the yardstick);
#   - one more release on those N, in the steady state (both publish slots
#     exist, so the slot before last is updated in place: one unmeasured day,
#     then the measured one), and DuckDB alone loading just that file;
#   - bytes each build wrote (/proc/self/io write_bytes), peak RSS (VmHWM), and
#     the lakehouse's size (both slots + history, after the measured day).
# Each measurement is its own process (`transform-scale`, benches/bin).
#   benches/scale.sh                       # ROWS=2200000 HISTORIES="1 12 48" MEMORY=2GB
#   ROWS=500000 HISTORIES="1 12" benches/scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-2200000}"
HISTORIES="${HISTORIES:-1 12 48}"
MEMORY="${MEMORY:-2GB}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/materia/target}"
cargo build --release --workspace --quiet
bin="$CARGO_TARGET_DIR/release/transform-scale"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
get() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
secs() { python3 -c 'import sys; print(f"{int(sys.argv[1]) / 1000:.2f}")' "$1"; }
ratio() { python3 -c 'import sys; print(f"{int(sys.argv[1]) / max(int(sys.argv[2]), 1):.2f}")' "$1" "$2"; }
mib() { python3 -c 'import sys; print(f"{int(sys.argv[1]) / 1048576:.1f}")' "$1"; }

echo "| history | full build s | DuckDB alone s | × | +1 release s | DuckDB alone, that file s | × | written by +1 MiB | the release, gzipped MiB | lakehouse MiB | peak RSS +1 MiB |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for n in $HISTORIES; do
  land="$work/land-$n"
  "$bin" gen --dir "$land" --releases "$n" --rows "$ROWS" >/dev/null
  full=$("$bin" transform --dir "$land" --db "$work/lake.duckdb" --memory "$MEMORY")
  alone=$("$bin" load --dir "$land" --db "$work/alone.duckdb" --memory "$MEMORY")
  rm -f "$work/alone.duckdb"
  # The daily build in its steady state: both slots exist, so the build
  # updates the slot before last in place. One unmeasured day fills the
  # second slot; the next day is measured.
  "$bin" land --dir "$land" --release $((n + 1)) --rows "$ROWS" >/dev/null
  "$bin" transform --dir "$land" --db "$work/lake.duckdb" --memory "$MEMORY" >/dev/null
  next=$((n + 2))
  landed=$("$bin" land --dir "$land" --release "$next" --rows "$ROWS")
  inc=$("$bin" transform --dir "$land" --db "$work/lake.duckdb" --memory "$MEMORY")
  one=$("$bin" load --dir "$land" --db "$work/one.duckdb" --only "$next" --memory "$MEMORY")
  # Both slots and the history, after the measured day.
  size=$(( $(get "$inc" slots_bytes) + $(get "$inc" history_bytes) ))
  echo "| $n × $(get "$full" rows) rows | $(secs "$(get "$full" millis)") | $(secs "$(get "$alone" millis)") | $(ratio "$(get "$full" millis)" "$(get "$alone" millis)") | $(secs "$(get "$inc" millis)") | $(secs "$(get "$one" millis)") | $(ratio "$(get "$inc" millis)" "$(get "$one" millis)") | $(mib "$(get "$inc" write_bytes)") | $(mib "$(get "$landed" file_bytes)") | $(mib "$size") | $(( $(get "$inc" peak_rss_kib) / 1024 )) |"
  rm -rf "$land" "$work"/*.duckdb*
done
