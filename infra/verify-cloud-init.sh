#!/usr/bin/env bash
# Checks infra/cloud-init.yaml offline: cloud-init's own schema validation
# (Debian package cloud-init), then the install script it writes run in
# bootstrap.sh's staged mode — the files cloud-init writes placed under a
# staging root, the repository as the source, the built binary as the release.
#
#   infra/verify-cloud-init.sh          # binary: $MATERIA_BIN or the release build
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cloud-init >/dev/null; then
    # A missing tool fails the check: it never passes silently.
    echo "verify-cloud-init.sh: cloud-init is not installed (Debian: cloud-init)" >&2
    exit 1
fi
cloud-init schema --config-file infra/cloud-init.yaml
bin="${MATERIA_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/materia/target}/release/materia}"
[[ -x "$bin" ]] || { echo "verify-cloud-init.sh: no binary at $bin" >&2; exit 1; }
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
# write_files, as cloud-init writes them (path, content, permissions), under the
# stage. Debian's python3 has PyYAML (cloud-init depends on it).
/usr/bin/python3 - infra/cloud-init.yaml "$stage" <<'PY'
import os, sys, yaml
config, stage = sys.argv[1], sys.argv[2]
doc = yaml.safe_load(open(config))
assert "materia-install" in " ".join(map(str, doc["runcmd"][-1])), doc["runcmd"]
for f in doc["write_files"]:
    path = stage + f["path"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as out:
        out.write(f["content"])
    os.chmod(path, int(str(f.get("permissions", "0644")), 8))
PY
# The bucket's inputs, filled in as an operator would: they reach materia.env.
sed -i -e 's|^MATERIA_MIRROR_URL=$|MATERIA_MIRROR_URL=s3://materia-raw/landing-ci|' \
    -e 's|^AWS_ENDPOINT=$|AWS_ENDPOINT=https://ci-account.r2.cloudflarestorage.com|' \
    "$stage/etc/materia/install.env"
# The install script, as runcmd runs it, against the staged tree.
ROOT="$stage" MATERIA_INSTALL_ENV="$stage/etc/materia/install.env" MATERIA_SRC="$PWD" \
    MATERIA_BIN="$bin" "$stage/usr/local/sbin/materia-install" --no-start
grep -q '^MATERIA_MIRROR_URL=s3://materia-raw/landing-ci$' "$stage/etc/materia/materia.env"
grep -q '^AWS_ENDPOINT=https://ci-account.r2.cloudflarestorage.com$' "$stage/etc/materia/materia.env"
"$stage/usr/local/bin/materia" --version
for f in etc/systemd/system/materia-supervisor.service etc/materia/materia.env data/materia/landing; do
    [[ -e "$stage/$f" ]] || { echo "verify-cloud-init.sh: the install left no $f" >&2; exit 1; }
done
# The keys cloud-init wrote stay as written (never replaced by the template), root-only.
grep -q '^AWS_SECRET_ACCESS_KEY=FILL_IN$' "$stage/etc/materia/r2.env"
[[ "$(stat -c %a "$stage/etc/materia/r2.env")" == 600 ]]
echo "cloud-init.yaml verified: schema, and its install in bootstrap.sh's staged mode"
