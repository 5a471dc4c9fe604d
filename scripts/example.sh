#!/usr/bin/env bash
# Runs the example Dagster project (example_project/): materializes every asset and daily
# partition on the embedded default (an SQLite file and local files under .lakery/example/),
# prints a line per step, then reads everything back through lakery and prints where it
# lives and the command that opens the Dagster UI. Safe to run again.
# Extra arguments go to the runner, e.g. `bash scripts/example.sh --data /tmp/lakery-example`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m example_project.run "$@"
