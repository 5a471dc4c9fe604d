#!/usr/bin/env bash
# Creates .venv (Python >= 3.11) and installs lakery with every extra and the test tools
# (the `dev` dependency group), and Debian's Chromium for the viewer's browser test when it
# is missing (scripts/ensure_chromium.sh), Debian's PgBouncer for the PgBouncer test
# (scripts/ensure_pgbouncer.sh) and Azurite (npm) into .venv/node for the Azure tests; a
# failure of any of these is only a warning (the tests that need them say so).
# Re-installs only when pyproject.toml changed. Used by scripts/example.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "lakery needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  exit 1
}

if [ ! -x .venv/bin/python ]; then
  "$(pick_python)" -m venv .venv
fi

stamp=.venv/.lakery-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "Installing lakery and its dependencies into .venv ..." >&2
  # uv 0.6.7 is the first with `uv pip install --group` (PEP 735 dependency groups).
  .venv/bin/python -m pip install --quiet --disable-pip-version-check 'uv>=0.6.7'
  # lakery with every extra, editable, plus the `dev` group of pyproject.toml (the test,
  # lint and docs tools; read from ./pyproject.toml).
  .venv/bin/python -m uv pip install --quiet --python .venv/bin/python -e '.[all]' --group dev
  echo "$wanted" >"$stamp"
fi

if [ ! -x /usr/bin/chromium ]; then
  bash scripts/ensure_chromium.sh ||
    echo "bootstrap: warning: no Chromium; the viewer's browser test will say so" >&2
fi

# Azurite, the Azure Blob Storage emulator of lakery.extra.azure's tests, from npm into
# .venv/node (with the machine's Node); lakery.testing.azurite finds it there.
azurite_version=3.35.0
if command -v npm >/dev/null 2>&1; then
  if ! grep -qs "\"version\": \"$azurite_version\"" .venv/node/node_modules/azurite/package.json; then
    echo "Installing Azurite $azurite_version into .venv/node ..." >&2
    mkdir -p .venv/node
    npm install --prefix .venv/node --no-audit --no-fund --silent "azurite@$azurite_version" ||
      echo "bootstrap: warning: could not install Azurite; the Azure tests will say so" >&2
  fi
else
  echo "bootstrap: warning: no npm; the Azure tests need Azurite and will say so" >&2
fi

if [ ! -x /usr/sbin/pgbouncer ] && ! command -v pgbouncer >/dev/null 2>&1; then
  bash scripts/ensure_pgbouncer.sh ||
    echo "bootstrap: warning: no PgBouncer; tests/distributed/test_pgbouncer.py will say so" >&2
fi
