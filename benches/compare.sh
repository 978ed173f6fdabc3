#!/usr/bin/env bash
# Side-by-side: Materia against the tools it replaces, on this machine, same input.
#
#   benches/compare.sh            # SIZE_MB=512 RUNS=5
#   SIZE_MB=64 RUNS=3 benches/compare.sh
#
# Prints a table: median seconds of RUNS runs, throughput, peak RSS, and the ratio
# peer time / materia time (> 1 means Materia is faster). Installs what it needs
# (Debian: pigz, time), works in a temp dir it removes, touches no network beyond
# the package registry.
#
# Parts so far: land/gzip (gzip -6, pigz -6 vs `materia land --level 6`).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB="${SIZE_MB:-512}"
RUNS="${RUNS:-5}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/materia/target}"

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need pigz pigz
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

cargo build --release -q --workspace --bins
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

input="$work/psd.csv"
"$bin/psd-gen" --bytes $((SIZE_MB << 20)) --seed 7 >"$input"
bytes=$(stat -c %s "$input")
cat "$input" >/dev/null # warm the page cache: every tool reads from memory

# measure NAME CMD...: runs CMD $RUNS times (with {i} replaced by the run number),
# prints "NAME median_seconds max_rss_kib".
measure() {
  local name=$1; shift
  local times=() rss=0
  for i in $(seq 1 "$RUNS"); do
    local cmd=("${@//\{i\}/$i}")
    /usr/bin/time -f "%e %M" -o "$work/time" "${cmd[@]}" >/dev/null
    read -r t m <"$work/time"
    times+=("$t")
    (( m > rss )) && rss=$m
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$name $median $rss"
}

results=()
results+=("$(measure "gzip -6" sh -c "gzip -6 -c '$input' >'$work/out.gz'")")
results+=("$(measure "pigz -6" sh -c "pigz -6 -c '$input' >'$work/out.gz'")")
results+=("$(measure "materia land" "$bin/materia" land --landing-dir "$work/landing-{i}" \
  --dataset psd --etag "run-{i}" --level 6 "$input")")

materia_time=$(echo "${results[2]}" | awk '{print $(NF-1)}')
echo
echo "land/gzip: ${SIZE_MB} MiB PSD-shaped CSV, level 6, median of $RUNS, $(nproc) cores ($(uname -m))"
printf '| %-14s | %9s | %10s | %13s | %22s |\n' tool seconds "MiB/s" "peak RSS MiB" "peer time / materia"
printf '| %-14s | %9s | %10s | %13s | %22s |\n' --- --- --- --- ---
for r in "${results[@]}"; do
  name=$(echo "$r" | awk '{NF-=2; print}')
  t=$(echo "$r" | awk '{print $(NF-1)}')
  m=$(echo "$r" | awk '{print $NF}')
  awk -v n="$name" -v t="$t" -v m="$m" -v b="$bytes" -v mt="$materia_time" 'BEGIN {
    printf "| %-14s | %9.2f | %10.1f | %13.1f | %21.2fx |\n", n, t, b / 1048576 / t, m / 1024, t / mt }'
done
