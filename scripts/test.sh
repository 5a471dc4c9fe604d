#!/usr/bin/env bash
# Runs the whole test suite (SQLite, PostgreSQL, a local S3 API server, Dagster).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k registry`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check --quiet .
exec .venv/bin/python -m pytest "$@"
