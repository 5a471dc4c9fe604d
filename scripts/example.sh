#!/usr/bin/env bash
# Runs the example: saves and loads storables on the embedded default
# (an SQLite file and local files under .lakery/), then prints what it stored.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python examples/quickstart.py "$@"
