#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: `fuzz/run.sh [SECONDS_PER_TARGET]`.
#
# cargo-fuzz needs nightly-only flags; the one (stable) toolchain here accepts
# them with RUSTC_BOOTSTRAP=1. Builds go to their own target dir: sanitizer
# RUSTFLAGS recompile every dependency, so sharing the main one would only evict
# its artifacts. The fuzz crate builds materia-core without DuckDB.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
export RUSTC_BOOTSTRAP=1
target_dir="${FUZZ_TARGET_DIR:-$HOME/.cache/materia/fuzz-target}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in $(cargo fuzz list); do
  # A scratch copy of the committed seeds: new inputs the run finds stay out of git.
  work=$(mktemp -d)
  cp -r "corpus/$target/." "$work/"
  echo "fuzz: $target for ${secs}s"
  cargo fuzz run --target-dir "$target_dir" "$target" "$work" -- \
    -max_total_time="$secs" -max_len=16384 -print_final_stats=1
  rm -rf "$work"
done
