"""A local Google Cloud Storage emulator (``gcp-storage-emulator``) for tests and docs.

It serves the GCS JSON API (uploads, resumable uploads, ranged downloads, listing,
metadata updates, rewrites) over real HTTP on 127.0.0.1, in memory, so
`lakery.extra.gcs.GCSStorage` and ``gcloud-aio-storage`` are exercised end to end.
Requests to it are anonymous. It comes from the package index (the ``dev`` group).

Where it differs from GCS (lakery does not rely on any of these):

- it ignores preconditions (``ifGenerationMatch``, ``ifMetagenerationMatch``,
  ``ifSourceGenerationMatch``): a create overwrites, a conditional delete deletes;
- a metadata update does not change an object's ``updated`` time;
- asked for the status of a resumable upload that holds no bytes, it answers
  ``Range: bytes=0-0`` (GCS sends no ``Range``);
- it hangs up on an empty simple upload (lakery sends empty values as resumable uploads);
- it does not cancel resumable upload sessions (``DELETE`` of the session URI).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time

from lakery.testing.s3_server import free_port
from lakery.testing.s3_server import stop_process

__all__ = ["start_gcs_emulator"]


def start_gcs_emulator(*, timeout: float = 30) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``gcp-storage-emulator`` in memory on a free 127.0.0.1 port; return it and
    its endpoint (``http://127.0.0.1:PORT``, for ``STORAGE_EMULATOR_HOST`` or
    ``GCSStorage(endpoint=...)``)."""
    for _ in range(5):  # another process may take the port between the probe and the bind
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gcp_storage_emulator",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--in-memory",
                "--quiet",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=tempfile.gettempdir(),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return process, f"http://127.0.0.1:{port}"
            except OSError:
                time.sleep(0.05)
        stop_process(process)
    raise RuntimeError("could not start gcp-storage-emulator (pip install gcp-storage-emulator)")
