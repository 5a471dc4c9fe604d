#!/usr/bin/env bash
# Installs Debian's PgBouncer (/usr/sbin/pgbouncer) when it is missing: the connection
# pooler that tests/distributed/test_pgbouncer.py starts (in transaction mode, on a free
# loopback port, with a config in a temporary folder). Only the binary is used: the
# package's own service is not needed.
# Needs root (or sudo) and apt-get; prints why and exits 1 when it cannot install.
set -euo pipefail
if [ -x /usr/sbin/pgbouncer ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_pgbouncer: /usr/sbin/pgbouncer is missing and there is no apt-get to install it" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo -n"
  else
    echo "ensure_pgbouncer: installing pgbouncer needs root: run 'apt-get install -y pgbouncer'" >&2
    exit 1
  fi
fi
echo "ensure_pgbouncer: installing Debian's pgbouncer with apt-get ..." >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q pgbouncer >&2 || {
  $sudo apt-get update -q >&2
  $sudo apt-get install -y -q pgbouncer >&2
}
[ -x /usr/sbin/pgbouncer ]
