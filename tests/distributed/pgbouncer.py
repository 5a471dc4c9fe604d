"""Start Debian's PgBouncer in front of the test PostgreSQL server, on a free loopback port.

The config goes to a temporary folder; the process runs in the foreground (stopped by the
caller). `scripts/ensure_pgbouncer.sh` (run by `scripts/bootstrap.sh`) installs the binary.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from lakery.testing.s3_server import free_port

__all__ = ["find_pgbouncer", "start_pgbouncer"]

CONFIG = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
ignore_startup_parameters = extra_float_digits
"""


def find_pgbouncer() -> str | None:
    """The pgbouncer binary, or None."""
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None
    )


def start_pgbouncer(
    postgres_url: str, folder: Path, *, pool_size: int = 2
) -> tuple[subprocess.Popen[bytes], str]:
    """PgBouncer in transaction mode in front of `postgres_url`'s server; return the process
    and `postgres_url` pointed at it. `pool_size` server connections per database and user.

    ``max_prepared_statements = 0``: prepared statements are not tracked (PgBouncer before
    1.21 never does), the setting lakery's ``statement_cache_size=0`` is for.
    """
    binary = find_pgbouncer()
    if binary is None:
        raise RuntimeError("pgbouncer is not installed: run scripts/ensure_pgbouncer.sh")
    url = make_url(postgres_url)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # read by the user pgbouncer runs as (not root)
    user = url.username or "postgres"
    (folder / "userlist.txt").write_text(f'"{user}" ""\n')
    for _ in range(5):  # another process may take the port between the probe and the bind
        port = free_port()
        config = folder / "pgbouncer.ini"
        config.write_text(
            CONFIG.format(
                host=url.host or "127.0.0.1",
                port=url.port or 5432,
                listen_port=port,
                folder=folder,
                pool_size=pool_size,
            )
        )
        if _version(binary) >= (1, 21):
            with config.open("a") as file:
                file.write("max_prepared_statements = 0\n")
        config.chmod(0o644)
        (folder / "userlist.txt").chmod(0o644)
        command = [binary, str(config)]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            command[1:1] = ["-u", _unprivileged_user()]
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=(folder / "pgbouncer.log").open("wb")
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return process, url.set(port=port).render_as_string(hide_password=False)
            except OSError:
                time.sleep(0.05)
        process.kill()
        process.wait()
    log = (folder / "pgbouncer.log").read_text(errors="replace")
    raise RuntimeError(f"could not start pgbouncer: {log[-2000:]}")


def _version(binary: str) -> tuple[int, ...]:
    output = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    first = output.stdout.split()[1]  # "PgBouncer 1.18.0"
    return tuple(int(part) for part in first.split(".")[:2])


def _unprivileged_user() -> str:
    for name in ("postgres", "pgbouncer", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("no unprivileged user to run pgbouncer as")
