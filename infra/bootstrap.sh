#!/usr/bin/env bash
# Installs Materia on one server: the binary, a dedicated user, /data/materia
# with tight permissions, /etc/materia/materia.env, and the systemd units.
# Idempotent: run it again after `cargo build --release` to upgrade the binary.
#
#   sudo infra/bootstrap.sh            # install and start
#   sudo infra/bootstrap.sh --no-start # install, enable nothing
#   ROOT=/tmp/stage infra/bootstrap.sh --no-start   # staged install (CI), no root needed
#
# The binary comes from $MATERIA_BIN, else $CARGO_TARGET_DIR/release/materia,
# else target/release/materia.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT="${ROOT:-}"
START=1
for arg in "$@"; do
    case "$arg" in
        --no-start) START=0 ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "bootstrap.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

bin="${MATERIA_BIN:-}"
if [[ -z "$bin" ]]; then
    for candidate in "${CARGO_TARGET_DIR:-}/release/materia" target/release/materia; do
        [[ -x "$candidate" ]] && bin="$candidate" && break
    done
fi
[[ -x "$bin" ]] || { echo "bootstrap.sh: no materia binary; run cargo build --release first" >&2; exit 1; }

staged() { [[ -n "$ROOT" ]]; }
owner=materia
if ! staged; then
    [[ $EUID -eq 0 ]] || { echo "bootstrap.sh: run as root (or set ROOT= for a staged install)" >&2; exit 1; }
    if ! id "$owner" >/dev/null 2>&1; then
        useradd --system --home-dir /data/materia --no-create-home --shell /usr/sbin/nologin "$owner"
        echo "created user $owner"
    fi
else
    owner="$(id -un)"
fi

# The binary: copied aside, then renamed over the old one (a running supervisor
# keeps its old inode; the next start uses the new file).
install -d -m 0755 "$ROOT/usr/local/bin"
# Stripped: the release profile keeps line tables, ~1.5 GB with DuckDB.
install -m 0755 -s "$bin" "$ROOT/usr/local/bin/.materia.new"
mv -f "$ROOT/usr/local/bin/.materia.new" "$ROOT/usr/local/bin/materia"

# Data: only the materia user may read it.
install -d -m 0750 -o "$owner" -g "$owner" "$ROOT/data/materia" "$ROOT/data/materia/landing"

# Settings: never overwritten once there (it holds the R2 secret).
install -d -m 0750 -o root -g "$owner" "$ROOT/etc/materia" 2>/dev/null || install -d -m 0750 "$ROOT/etc/materia"
if [[ ! -e "$ROOT/etc/materia/materia.env" ]]; then
    install -m 0640 infra/materia.env.example "$ROOT/etc/materia/materia.env"
    staged || chgrp "$owner" "$ROOT/etc/materia/materia.env"
    echo "wrote $ROOT/etc/materia/materia.env: fill in MATERIA_MIRROR_URL and the AWS_* values"
fi

install -d -m 0755 "$ROOT/etc/systemd/system"
for unit in materia-supervisor.service materia-backup.service materia-backup.timer \
    materia-drill.service materia-drill.timer materia-alert@.service materia-serve.service; do
    install -m 0644 "infra/$unit" "$ROOT/etc/systemd/system/$unit"
done
echo "installed $("$ROOT/usr/local/bin/materia" --version) and the units"

if ! staged && [[ $START -eq 1 ]]; then
    systemctl daemon-reload
    systemctl enable --now materia-supervisor.service materia-backup.timer materia-drill.timer \
        materia-serve.service
    systemctl --no-pager status materia-supervisor.service || true
fi
