#!/usr/bin/env bash
# Checks the systemd units with `systemd-analyze verify` against a staged
# install of the binary (CI runs it when systemd-analyze is present).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null; then
    # A missing tool fails the check: it never passes silently.
    echo "verify-units.sh: systemd-analyze is not installed (Debian: systemd)" >&2
    exit 1
fi
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
ROOT="$stage" infra/bootstrap.sh --no-start >/dev/null
units=(infra/materia-supervisor.service infra/materia-backup.service infra/materia-backup.timer
    infra/materia-drill.service infra/materia-drill.timer infra/materia-alert@.service
    infra/materia-serve.service)
# systemd-analyze resolves ExecStart= on the host: point it at the staged binary.
for u in "${units[@]}"; do
    sed "s|/usr/local/bin/materia|$stage/usr/local/bin/materia|g" "$u" > "$stage/$(basename "$u")"
done
# A user it can resolve: the units name `materia`, which this host may lack.
sed -i "s|^User=materia|User=$(id -un)|; s|^Group=materia|Group=$(id -gn)|" "$stage"/*.service
# The template is verified as an instance, as OnFailure= starts it.
cp "$stage/materia-alert@.service" "$stage/materia-alert@materia-backup.service.service"
out="$(systemd-analyze verify --man=no "$stage"/materia-supervisor.service "$stage"/materia-backup.service \
    "$stage"/materia-backup.timer "$stage"/materia-drill.service "$stage"/materia-drill.timer \
    "$stage"/materia-serve.service "$stage/materia-alert@materia-backup.service.service" 2>&1 || true)"
# Not fatal here: facts of the CI container, not of the units.
filtered="$(grep -v -e 'Failed to connect to bus' -e 'ProtectHome' -e 'Cannot add dependency job' -e 'System has not been booted with systemd' <<<"$out" || true)"
if [[ -n "$filtered" ]]; then
    echo "$filtered" >&2
    exit 1
fi
# Secrets: the R2 keys reach only the units that talk to the bucket, as a
# systemd credential from a root-only file; the service's env file has none.
for u in materia-supervisor.service materia-backup.service materia-drill.service; do
    grep -qx 'LoadCredential=r2:/etc/materia/r2.env' "infra/$u" \
        || { echo "verify-units.sh: $u lacks LoadCredential=r2:/etc/materia/r2.env" >&2; exit 1; }
done
for u in materia-serve.service materia-alert@.service; do
    if grep -q '^LoadCredential=' "infra/$u"; then
        echo "verify-units.sh: $u must not get the R2 credential" >&2
        exit 1
    fi
done
if grep -Eq '^[[:space:]]*AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY)=' infra/materia.env.example; then
    echo "verify-units.sh: materia.env.example holds an AWS key (they belong in r2.env)" >&2
    exit 1
fi
mode="$(stat -c %a "$stage/etc/materia/r2.env")"
[[ "$mode" == 600 ]] || { echo "verify-units.sh: the staged r2.env is mode $mode, not 600" >&2; exit 1; }
echo "systemd units verified (R2 keys: a root-only credential for supervisor, backup, drill)"
