#!/usr/bin/env bash
# Runs the example Dagster project (example_project/): materializes every asset and daily
# partition on the embedded default (an SQLite file and local files under .lakery/example/),
# prints a line per step, then reads everything back through lakery and prints where it
# lives and the command that opens the Dagster UI. Safe to run again.
# Extra arguments go to the runner, e.g. `bash scripts/example.sh --data /tmp/lakery-example`.
#
# `bash scripts/example.sh --distributed [--workers 3] [--days N]`: the same pipeline on a
# distributed deployment (example_project/distributed.py, docs/deploying.md): the Dagster
# instance on PostgreSQL, 3 dagster-celery workers on the Redis broker, lakery on
# PostgreSQL + S3 (a moto server). Needs PostgreSQL on 127.0.0.1:5432 and Redis on :6379.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ "${1:-}" = "--distributed" ]; then
  shift
  export PATH="$PWD/.venv/bin:$PATH"  # dagster-celery starts `celery`
  exec .venv/bin/python -m example_project.distributed "$@"
fi
exec .venv/bin/python -m example_project.run "$@"
