#!/usr/bin/env bash
# What the end-to-end stack test (tests/test_local_stack.py) needs beyond `make setup`:
#   * Debian's PostgreSQL server (the stack's metadata and MLflow databases) and Chromium
#     (the browser check; Playwright drives /usr/bin/chromium, it downloads no browser);
#   * requirements-e2e.lock in .venv (requirements-e2e.txt resolved under constraints.txt and
#     requirements.lock, with the sha256 of every file; `make lock`).
# Idempotent and quick when nothing changed: a stamp in .venv records what was installed.
# Run after `make setup`; apt-get runs as root (through sudo when you are not root).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.e2e-installed"
DEBS=(postgresql chromium fonts-liberation)

[ -x "$VENV/bin/pip" ] || { echo "setup-e2e: $VENV is missing; run 'make setup' first" >&2; exit 1; }

# What this set-up installs, as one line: a change to any part makes the script run again.
want="$(cat requirements-e2e.lock "$0" | sha256sum | cut -d' ' -f1)"

missing_debs=()
for pkg in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing_debs+=("$pkg")
done

if [ ${#missing_debs[@]} -eq 0 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    echo "setup-e2e: up to date"
    exit 0
fi

if [ ${#missing_debs[@]} -gt 0 ]; then
    echo "setup-e2e: apt-get install ${missing_debs[*]}"
    SUDO=()
    [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" > /dev/null
fi

# The server binaries live under /usr/lib/postgresql/<major>/bin; the test finds them there.
ls /usr/lib/postgresql/*/bin/pg_ctl > /dev/null
test -x /usr/bin/chromium

"$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes -r requirements-e2e.lock
echo "$want" > "$STAMP"
echo "setup-e2e: done"
