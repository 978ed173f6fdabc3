#!/usr/bin/env bash
# Installs Materia on one server: the binary, a dedicated user, /data/materia
# with tight permissions, /etc/materia/materia.env, the R2 keys' root-only
# /etc/materia/r2.env, and the systemd units.
# Idempotent, and the way to upgrade: run it again with a new binary. The
# binary is swapped atomically, the units reloaded, and the supervisor
# restarted between cycles, never during one (it waits for the run lock).
#
#   sudo infra/bootstrap.sh            # install (or upgrade) and start
#   sudo infra/bootstrap.sh --no-start # install, enable nothing
#   ROOT=/tmp/stage infra/bootstrap.sh --no-start   # staged install (CI), no root needed
#
# The binary comes from $MATERIA_BIN, else $CARGO_TARGET_DIR/release/materia,
# else target/release/materia. $SYSTEMCTL names the systemctl to call (tests
# pass a stand-in; with it, a staged install runs the start/restart part too).
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT="${ROOT:-}"
START=1
for arg in "$@"; do
    case "$arg" in
        --no-start) START=0 ;;
        -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
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
env_file="$ROOT/etc/materia/materia.env"
r2_file="$ROOT/etc/materia/r2.env"
# A first install writes MATERIA_MIRROR_URL and AWS_ENDPOINT into materia.env
# when given: checked before anything changes (they go through sed).
if [[ ! -e "$env_file" ]]; then
    for name in MATERIA_MIRROR_URL AWS_ENDPOINT; do
        [[ "${!name:-}" =~ ^[A-Za-z0-9:/._@+=~%-]*$ ]] || {
            echo "bootstrap.sh: $name has characters bootstrap.sh does not accept in a URL: ${!name}" >&2
            exit 2
        }
    done
fi
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
if [[ ! -e "$env_file" ]]; then
    # The bucket's settings, when given (cloud-init's install.env passes them),
    # are written in; else the example's placeholders stay for the operator.
    edits=(-e '')
    for name in MATERIA_MIRROR_URL AWS_ENDPOINT; do
        [[ -n "${!name:-}" ]] && edits+=(-e "s|^$name=.*|$name=${!name}|")
    done
    sed "${edits[@]}" infra/materia.env.example > "$env_file.new"
    chmod 0640 "$env_file.new"
    staged || chgrp "$owner" "$env_file.new"
    mv -f "$env_file.new" "$env_file"
    echo "wrote $env_file"
fi
# A setting of materia.env, or of the files given after the name (the last
# line that sets it; quotes and surrounding blanks removed).
setting() {
    local name="$1"
    shift
    cat "${@:-$env_file}" 2>/dev/null \
        | sed -n -E "s/^[[:space:]]*(export[[:space:]]+)?$name[[:space:]]*=[[:space:]]*[\"']?([^\"']*)[\"']?[[:space:]]*\$/\2/p" \
        | tail -n 1 | sed -E 's/[[:space:]]+$//'
}
# An AWS_* line with an empty value counts as unset (older examples shipped
# `AWS_ACCESS_KEY_ID=`); say which, so they can go.
empty_aws="$(grep -E "^[[:space:]]*(export[[:space:]]+)?AWS_[A-Z0-9_]*[[:space:]]*=[[:space:]]*[\"']?[[:space:]]*[\"']?[[:space:]]*\$" "$env_file" \
    | sed -E 's/^[[:space:]]*(export[[:space:]]+)?//; s/=.*//' | tr '\n' ' ' || true)"
if [[ -n "$empty_aws" ]]; then
    echo "bootstrap.sh: warning: $env_file has empty settings: ${empty_aws% } (ignored; remove those" \
        "lines — the keys belong in /etc/materia/r2.env)" >&2
fi
# The R2 keys: root's alone; systemd passes them to the bucket units as a
# credential (LoadCredential=r2:/etc/materia/r2.env). Never overwritten.
if [[ ! -e "$r2_file" ]]; then
    install -m 0600 infra/r2.env.example "$r2_file"
    staged || chown root:root "$r2_file"
    echo "wrote $ROOT/etc/materia/r2.env (0600, root only): fill in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
fi
if grep -Eq "^[[:space:]]*(export[[:space:]]+)?AWS_SECRET_ACCESS_KEY[[:space:]]*=[[:space:]]*[\"']?[^\"'[:space:]]" "$env_file"; then
    echo "bootstrap.sh: warning: $ROOT/etc/materia/materia.env holds AWS_SECRET_ACCESS_KEY, readable by the" \
        "service user: move the AWS_* keys to /etc/materia/r2.env" >&2
fi

install -d -m 0755 "$ROOT/etc/systemd/system"
for unit in materia-supervisor.service materia-backup.service materia-backup.timer \
    materia-drill.service materia-drill.timer materia-alert@.service materia-serve.service; do
    install -m 0644 "infra/$unit" "$ROOT/etc/systemd/system/$unit"
done
echo "installed $("$ROOT/usr/local/bin/materia" --version) and the units"

SYSTEMCTL="${SYSTEMCTL:-}"
if [[ -z "$SYSTEMCTL" ]] && ! staged; then
    SYSTEMCTL=systemctl
fi
if [[ -n "$SYSTEMCTL" && $START -eq 1 ]]; then
    "$SYSTEMCTL" daemon-reload
    "$SYSTEMCTL" enable materia-supervisor.service materia-serve.service
    # The backup and its drill need the bucket: enabled only once it is set —
    # its URL, no endpoint placeholder left (none at all is AWS S3), and keys
    # (`materia status` says when no backup has run).
    mirror_url="$(setting MATERIA_MIRROR_URL)"
    endpoint="$(setting AWS_ENDPOINT "$env_file" "$r2_file")$(setting AWS_ENDPOINT_URL "$env_file" "$r2_file")"
    key_id="$(setting AWS_ACCESS_KEY_ID "$env_file" "$r2_file")"
    if [[ -n "$mirror_url" && "$endpoint" != *ACCOUNT_ID* && -n "$key_id" && "$key_id" != FILL_IN ]]; then
        "$SYSTEMCTL" enable materia-backup.timer materia-drill.timer
        "$SYSTEMCTL" start materia-backup.timer materia-drill.timer
    else
        "$SYSTEMCTL" disable materia-backup.timer materia-drill.timer >/dev/null 2>&1 || true
        echo "bootstrap.sh: the backup and drill timers are NOT enabled: set MATERIA_MIRROR_URL and" \
            "AWS_ENDPOINT in $env_file and the keys in $r2_file, then run bootstrap.sh again" >&2
    fi
    # The supervisor picks up the new binary on restart: between cycles, never
    # during one. A cycle holds the run lock (flock) from start to end; wait
    # for it, and restart while holding it so no cycle starts in between. The
    # lock is under the LANDING_DIR the units run with.
    landing="$(setting LANDING_DIR)"
    lock="$ROOT${landing:-/data/materia/landing}/.materia/run.lock"
    if [[ -e "$lock" ]]; then
        echo "restarting the supervisor once no cycle runs (waiting for $lock)"
        flock "$lock" "$SYSTEMCTL" restart materia-supervisor.service
    else
        "$SYSTEMCTL" restart materia-supervisor.service
    fi
    "$SYSTEMCTL" restart materia-serve.service
    staged || systemctl --no-pager status materia-supervisor.service || true
fi
