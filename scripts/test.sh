#!/usr/bin/env bash
# Lints (ruff), type-checks (mypy, configured in pyproject.toml) and runs the whole test suite
# (SQLite, PostgreSQL, a local S3 API server, Dagster); stops at the first that fails.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k registry`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check --quiet .
.venv/bin/mypy  # lakery and lakery_dagster; its cache is .venv/.mypy_cache
exec .venv/bin/python -m pytest "$@"
