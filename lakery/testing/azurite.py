"""A local Azure Blob Storage emulator (Azurite) for tests and docs examples.

Azurite is a Node program from npm (``npm install azurite``); ``scripts/bootstrap.sh``
installs it into ``.venv/node``. It serves the Blob REST API over real HTTP on 127.0.0.1,
so `lakery.extra.azure.AzureBlobStorage` and the Azure SDK are exercised end to end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lakery.testing.s3_server import free_port
from lakery.testing.s3_server import stop_process

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "azurite_command",
    "azurite_connection_string",
    "start_azurite",
]

AZURITE_ACCOUNT = "devstoreaccount1"
"""Azurite's well-known development account."""
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
"""The published key of Azurite's development account (not a secret)."""


def azurite_command() -> str | None:
    """The ``azurite-blob`` executable: ``$LAKERY_AZURITE``, then ``.venv/node`` (where
    ``scripts/bootstrap.sh`` installs it), then the ``PATH``; None if there is none."""
    configured = os.environ.get("LAKERY_AZURITE")
    if configured:
        return configured
    for root in (Path(sys.prefix), Path(__file__).parents[2] / ".venv"):
        candidate = root / "node" / "node_modules" / ".bin" / "azurite-blob"
        if candidate.exists():
            return str(candidate)
    return shutil.which("azurite-blob")


def azurite_connection_string(endpoint: str, account: str = AZURITE_ACCOUNT, key: str = "") -> str:
    """The connection string of `account` at an Azurite blob endpoint
    (``http://127.0.0.1:PORT``); `key` defaults to the development account's."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key or AZURITE_KEY};"
        f"BlobEndpoint={endpoint}/{account};"
    )


def start_azurite(
    *, accounts: str | None = None, timeout: float = 30
) -> tuple[subprocess.Popen[bytes], str]:
    """Start Azurite's blob service in memory on a free 127.0.0.1 port; return it and its
    endpoint (``http://127.0.0.1:PORT``; an account's URL is ``<endpoint>/<account>``).

    Args:
        accounts: ``"name1:key1;name2:key2"`` (Azurite's ``AZURITE_ACCOUNTS``) to serve
            these accounts instead of the development account.
        timeout: seconds to wait for it to listen.
    """
    command = azurite_command()
    if command is None:
        msg = "Azurite is not installed: run scripts/bootstrap.sh (npm install azurite)"
        raise RuntimeError(msg)
    env = {**os.environ}
    if accounts is not None:
        env["AZURITE_ACCOUNTS"] = accounts
    for _ in range(5):  # another process may take the port between the probe and the bind
        port = free_port()
        process = subprocess.Popen(
            [
                command,
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=tempfile.gettempdir(),  # where Azurite may write its debug log
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return process, f"http://127.0.0.1:{port}"
            except OSError:
                time.sleep(0.05)
        stop_process(process)
    raise RuntimeError("could not start Azurite")
